import ipaddr from "ipaddr.js";
import type { ExitSpec } from "../config/exits.js";
import type { ProxyConfig } from "../config/proxy-schema.js";
import type { InterfaceAddress } from "../policy/addresses.js";
import { UsageError } from "../util/errors.js";
import type { HostPort } from "../util/hostport.js";
import type { WgInterface } from "../wireguard/dump.js";

/**
 * The gateway's data path as data: what is wanted (DataPath, UpSpec) and what is there (GatewayState).
 * A plan is made per DataPath — one exit's tunnel with its own interface, table, mark, rule priorities
 * and nft table — so each exit has its own plan (and agent) and its own kill switch.
 */

/** Subnets the proxy's clients live in (network addresses), per family. */
export interface ClientSubnets {
  v4: string[];
  v6: string[];
}

export const NO_CLIENTS: ClientSubnets = { v4: [], v6: [] };

/** What `down`, `status` and the kill switch need: where our objects are. */
export interface DataPath {
  ifname: string;
  fwmark: number;
  table: number;
  /** Our rules use rulePriority, +1 and +2. */
  rulePriority: number;
  /** The proxy's uid: its connections are marked, and its route lookups start in our table. */
  uid: number;
  /** Without a tunnel IPv6 address, marked IPv6 is rejected instead of routed. */
  address6?: string;
  /**
   * The proxy's replies to these subnets (and its own queries to a resolver there) stay on the LAN;
   * everything else it sends goes into the tunnel, also to connected subnets outside them (the WAN's).
   */
  clients: ClientSubnets;
  /** Our nft table for this exit (the first exit's is `wg-egress`). */
  nftTable: string;
  /**
   * The first exit: the proxy's uid is marked and its route lookups start here (what it sends unbound,
   * e.g. DNS, goes here). The others are reached only by source address.
   */
  primary: boolean;
  /**
   * With several exits: this exit's tunnel addresses. The proxy binds its connections to them; a packet
   * with one of them as source is routed into this table and may leave only through this tunnel.
   * Empty with one exit (today's data path, unchanged).
   */
  sources: string[];
  /** The other exits' sources: the primary never marks those (they are theirs). */
  otherSources: string[];
}

/** Everything `up` needs; the private key itself never enters a plan (only its file name). */
export interface UpSpec extends DataPath {
  implementation: "auto" | "kernel" | "userspace";
  address: string;
  mtu: number;
  listenPort?: number;
  privateKeyFile: string;
  /** Derived from the private key by the caller; compared with the running interface. */
  publicKey: string;
  peer: { publicKey: string; endpoint: HostPort; persistentKeepalive: number; allowedIps: string[] };
}

/** An exit's tunnel addresses without prefix (v4, then v6). */
export const sourcesOf = (x: ExitSpec): string[] =>
  [x.address, x.address6].filter((a): a is string => !!a).map((a) => ipaddr.parseCIDR(a)[0].toString());

/** The data path of exit `x` among `all` the exits. */
export function dataPathOf(
  x: ExitSpec,
  all: readonly ExitSpec[],
  uid: number,
  clients: ClientSubnets = NO_CLIENTS,
): DataPath {
  const several = all.length > 1;
  return {
    ifname: x.interface,
    fwmark: x.fwmark,
    table: x.table,
    rulePriority: x.rulePriority,
    uid,
    address6: x.address6,
    clients,
    nftTable: x.nftTable,
    primary: x.primary,
    sources: several ? sourcesOf(x) : [],
    otherSources: several && x.primary ? all.filter((o) => o !== x).flatMap(sourcesOf) : [],
  };
}

/** Fails with one line naming the missing key (nothing is applied before this passes). */
export function upSpecOf(
  x: ExitSpec,
  all: readonly ExitSpec[],
  implementation: UpSpec["implementation"],
  uid: number,
  publicKey: string,
  clients = NO_CLIENTS,
): UpSpec {
  const key = (k: string) =>
    all.length > 1 || x.name !== "default" ? `exits[${x.index}].${k}` : `gateway.${k}`;
  if (!x.peer.publicKey)
    throw new UsageError(
      `${key("peer.publicKey")} is missing: set it to the exit's public key (wg-egress pubkey)`,
    );
  if (!x.peer.endpoint)
    throw new UsageError(`${key("peer.endpoint")} is missing: set it to the exit's HOST:PORT`);
  return {
    ...dataPathOf(x, all, uid, clients),
    implementation,
    address: x.address,
    mtu: x.mtu,
    listenPort: x.listenPort,
    privateKeyFile: x.privateKeyFile,
    publicKey,
    peer: {
      publicKey: x.peer.publicKey,
      endpoint: x.peer.endpoint,
      persistentKeepalive: x.peer.persistentKeepalive,
      allowedIps: x.peer.allowedIps,
    },
  };
}

/** "10.1.0.1/24" or "10.1.0.7" → "10.1.0.0/24" / "10.1.0.7/32" (the form `ip rule` and nft print). */
export function networkOf(cidr: string): string {
  const [addr, len] = cidr.includes("/")
    ? ipaddr.parseCIDR(cidr)
    : [ipaddr.parse(cidr), cidr.includes(":") ? 128 : 32];
  const net =
    addr.kind() === "ipv4"
      ? ipaddr.IPv4.networkAddressFromCIDR(`${addr}/${len}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${addr}/${len}`);
  return `${net.toString()}/${len}`;
}

const isLoopback = (cidr: string) => ipaddr.parseCIDR(cidr)[0].range() === "loopback";

/**
 * The proxy's client subnets: proxy.allowClients plus the subnet of each listen address (found on the
 * local interfaces), without loopback (local anyway). A wildcard listen address names no subnet: list
 * the clients in proxy.allowClients then. A /0 would take all of the proxy's traffic off the tunnel.
 */
export function clientSubnets(
  proxy: Pick<ProxyConfig, "listen" | "allowClients">,
  ifaces: readonly InterfaceAddress[],
): ClientSubnets {
  const all = new Set<string>();
  for (const c of proxy.allowClients) {
    const net = networkOf(c);
    if (net.endsWith("/0"))
      throw new UsageError(
        `proxy.allowClients ${c}: the gateway keeps the proxy's traffic to its client subnets off the tunnel, and ${c} is every address; list the client subnets instead`,
      );
    all.add(net);
  }
  for (const l of proxy.listen) {
    if (!ipaddr.isValid(l.host)) continue;
    const host = ipaddr.process(l.host).toString();
    for (const a of ifaces)
      if (ipaddr.isValid(a.address) && ipaddr.process(a.address).toString() === host)
        all.add(networkOf(a.cidr));
  }
  const nets = [...all].filter((c) => !isLoopback(c)).sort();
  return { v4: nets.filter((c) => !c.includes(":")), v6: nets.filter((c) => c.includes(":")) };
}

/** One entry of `ip -j rule show`. */
export interface RuleEntry {
  priority: number;
  fwmark?: string;
  table?: string;
  uid_start?: number;
  uid_end?: number;
  dst?: string;
  dstlen?: number;
  suppress_prefixlen?: number;
  src?: string;
  srclen?: number;
}

export interface RouteEntry {
  dst: string;
  type?: string;
  dev?: string;
  metric?: number;
}

export interface NftChain {
  name: string;
  /** The rule lines, as nft prints them (without the chain's type/hook line). */
  rules: string[];
}

/** Our nft table as `nft list table` shows it (or as we render it): one parser for both. */
export interface NftTable {
  hash: string | null;
  chains: NftChain[];
  rejected: number;
}

/** What is really there (read by status.ts); null = absent. */
export interface GatewayState {
  link: { kind: "kernel" | "userspace" | "other"; up: boolean; mtu: number; addresses: string[] } | null;
  /** The wireguard-go process serving our interface, if any. */
  userspacePid: number | null;
  wg: WgInterface | null;
  /** Our rules' priority range only. */
  rules4: RuleEntry[];
  rules6: RuleEntry[];
  routes4: RouteEntry[];
  routes6: RouteEntry[];
  nft: NftTable | null;
  srcValidMark: string | null;
}

/** An empty state: what `--dry-run` plans against when it cannot read the real one (not root). */
export const NOTHING: GatewayState = {
  link: null,
  userspacePid: null,
  wg: null,
  rules4: [],
  rules6: [],
  routes4: [],
  routes6: [],
  nft: null,
  srcValidMark: null,
};

/** What a step repairs: the agent counts repairs by it (metric label `what`). */
export type Part = "sysctl" | "nft" | "route" | "rule" | "link" | "wireguard" | "address" | "endpoint";

export type Step = { why: string; part: Part } & (
  | { kind: "run"; cmd: "ip" | "nft" | "wg"; args: string[]; input?: string }
  /** `record`: the value before our first change, kept for the interface so `down --purge` can restore it. */
  | { kind: "sysctl"; key: string; value: string; record?: { ifname: string; was: string } }
  | { kind: "create-link"; ifname: string; implementation: UpSpec["implementation"] }
  /** `wg syncconf <if> FILE`; apply adds the private key (from privateKeyFile) in a short-lived 0600 file. */
  | { kind: "wg-config"; ifname: string; conf: string; privateKeyFile: string }
  | { kind: "stop-userspace"; ifname: string; pid: number }
);
