import ipaddr from "ipaddr.js";
import type { GatewayConfig } from "../config/gateway-schema.js";
import type { ProxyConfig } from "../config/proxy-schema.js";
import type { InterfaceAddress } from "../policy/addresses.js";
import { UsageError } from "../util/errors.js";
import type { HostPort } from "../util/hostport.js";
import type { WgInterface } from "../wireguard/dump.js";

/**
 * The gateway's data path as data: what is wanted (DataPath, UpSpec) and what is there (GatewayState).
 * A plan is made per DataPath — one tunnel with its own interface, table, mark and rule priorities — so a
 * second exit is a second DataPath with its own plan.
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

export function dataPathOf(gw: GatewayConfig, uid: number, clients: ClientSubnets = NO_CLIENTS): DataPath {
  return {
    ifname: gw.interface,
    fwmark: gw.fwmark,
    table: gw.table,
    rulePriority: gw.rulePriority,
    uid,
    address6: gw.address6,
    clients,
  };
}

/** Fails with one line naming the missing key (nothing is applied before this passes). */
export function upSpecOf(gw: GatewayConfig, uid: number, publicKey: string, clients = NO_CLIENTS): UpSpec {
  if (!gw.peer.publicKey)
    throw new UsageError(
      "gateway.peer.publicKey is missing: set it to the exit's public key (wg-egress pubkey)",
    );
  if (!gw.peer.endpoint)
    throw new UsageError("gateway.peer.endpoint is missing: set it to the exit's HOST:PORT");
  return {
    ...dataPathOf(gw, uid, clients),
    implementation: gw.implementation,
    address: gw.address,
    mtu: gw.mtu,
    listenPort: gw.listenPort,
    privateKeyFile: gw.privateKeyFile,
    publicKey,
    peer: {
      publicKey: gw.peer.publicKey,
      endpoint: gw.peer.endpoint,
      persistentKeepalive: gw.peer.persistentKeepalive,
      allowedIps: gw.peer.allowedIps,
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
