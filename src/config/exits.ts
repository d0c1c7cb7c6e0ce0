import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import type { HostPort } from "../util/hostport.js";
import type { ExitEntry, RoutesConfig } from "./egress-schema.js";
import type { GatewayConfig } from "./gateway-schema.js";

/**
 * The exits of a config with every key filled in. PURE.
 *
 * The first exit is the primary one: it keeps today's data path (the proxy's uid is marked, and what
 * the proxy sends unbound goes there; with several exits even its DNS queries are bound, each to its
 * exit's address) and its nft table is `wg-egress`. Every other exit is selected by source address only: the proxy binds its connections to that exit's tunnel
 * address, and `from <address> lookup <table>` (ordered before the primary's rules) routes them there.
 */

export const DEFAULT_EXIT = "default";
/** Rule priorities of the exits after the first: the primary's priority minus this, times the index. */
export const PRIORITY_STEP = 10;

export interface ExitSpec {
  name: string;
  index: number;
  primary: boolean;
  interface: string;
  /** Tunnel address with prefix, e.g. 10.100.0.2/24; its address is the source the proxy binds to. */
  address: string;
  address6?: string;
  privateKeyFile: string;
  listenPort?: number;
  peer: { publicKey?: string; endpoint?: HostPort; persistentKeepalive: number; allowedIps: string[] };
  fwmark: number;
  table: number;
  rulePriority: number;
  mtu: number;
  /** The nft table holding this exit's marking and kill switch. */
  nftTable: string;
  /** Draining (exits[].drain): the replacement exit, and when the proxy closes what is still open (epoch ms). */
  drain?: { to?: string; deadline?: number };
}

export interface Problem {
  path: (string | number)[];
  message: string;
}

const hostOf = (cidr: string) => ipaddr.parseCIDR(cidr)[0].toNormalizedString();

/**
 * The exits of a config: `exits:` with the gateway section as the first exit's defaults, or the
 * gateway section alone as the one exit named "default". A later exit without an address gets ""
 * (reported by exitProblems).
 */
export function resolveExits(gw: GatewayConfig, exits: readonly ExitEntry[] | undefined): ExitSpec[] {
  const list: ExitEntry[] = exits?.length ? [...exits] : [{ name: DEFAULT_EXIT }];
  const base = {
    privateKeyFile: gw.privateKeyFile,
    listenPort: undefined as number | undefined,
    mtu: gw.mtu,
    persistentKeepalive: gw.peer.persistentKeepalive,
    allowedIps: gw.peer.allowedIps,
  };
  return list.map((e, i): ExitSpec => {
    const primary = i === 0;
    const peer = e.peer ?? {};
    return {
      name: e.name,
      index: i,
      primary,
      interface: e.interface ?? (primary ? gw.interface : `wge-${e.name}`),
      address: e.address ?? (primary ? gw.address : ""),
      address6: e.address6 ?? (primary ? gw.address6 : undefined),
      privateKeyFile: e.privateKeyFile ?? base.privateKeyFile,
      listenPort: e.listenPort ?? (primary ? gw.listenPort : base.listenPort),
      peer: {
        publicKey: peer.publicKey ?? (primary ? gw.peer.publicKey : undefined),
        endpoint: peer.endpoint ?? (primary ? gw.peer.endpoint : undefined),
        persistentKeepalive: peer.persistentKeepalive ?? base.persistentKeepalive,
        allowedIps: peer.allowedIps ?? base.allowedIps,
      },
      fwmark: e.fwmark ?? gw.fwmark + i,
      table: e.table ?? gw.table + i,
      rulePriority: e.rulePriority ?? (primary ? gw.rulePriority : gw.rulePriority - PRIORITY_STEP * i),
      mtu: e.mtu ?? base.mtu,
      nftTable: primary ? "wg-egress" : `wg-egress-${e.name}`,
      drain: e.drain && {
        to: e.drain.to,
        deadline: e.drain.deadline === undefined ? undefined : Date.parse(e.drain.deadline),
      },
    };
  });
}

/** The rule priorities an exit's rules use: the primary's three, one for each other exit. */
export const prioritiesOf = (x: ExitSpec): number[] =>
  x.primary ? [x.rulePriority, x.rulePriority + 1, x.rulePriority + 2] : [x.rulePriority];

/**
 * What makes a set of exits unusable together: every interface, table, mark, rule priority, tunnel
 * address and listen port is one exit's alone, and the other exits' rules come before the primary's
 * (its uid rule would otherwise send every bound connection into the primary's table).
 */
export function exitProblems(exits: readonly ExitSpec[], explicit: boolean): Problem[] {
  const out: Problem[] = [];
  const at = (x: ExitSpec, key: string): (string | number)[] =>
    explicit ? ["exits", x.index, key] : ["gateway", key];
  const seen = new Map<string, ExitSpec>();
  const claim = (x: ExitSpec, key: string, kind: string, value: string | number | undefined) => {
    if (value === undefined || value === "") return;
    const id = `${kind}:${value}`;
    const other = seen.get(id);
    if (other && other !== x)
      out.push({
        path: at(x, key),
        message: `exit ${x.name} uses ${kind} ${value}, as exit ${other.name} does: each exit needs its own (set ${key} on one of them)`,
      });
    else seen.set(id, x);
  };
  const primary = exits[0];
  for (const x of exits) {
    if (!x.address) {
      out.push({
        path: at(x, "address"),
        message: `exit ${x.name} has no tunnel address: set address (e.g. 10.100.${x.index}.2/24, the gateway's side of that exit's tunnel)`,
      });
      continue;
    }
    if (exits.some((o) => o.index < x.index && o.name === x.name)) {
      out.push({ path: at(x, "name"), message: `exit name ${x.name} is used twice` });
      continue;
    }
    claim(x, "interface", "interface", x.interface);
    claim(x, "table", "table", x.table);
    claim(x, "fwmark", "fwmark", `0x${x.fwmark.toString(16)}`);
    for (const p of prioritiesOf(x)) claim(x, "rulePriority", "rule priority", p);
    claim(x, "address", "tunnel address", hostOf(x.address));
    if (x.address6) claim(x, "address6", "tunnel address", hostOf(x.address6));
    claim(x, "listenPort", "listen port", x.listenPort);
    // A lookup into one of these would be main's (or the kernel's) table: the unreachable route that
    // keeps the exit fail-closed would land there.
    if ([0, 253, 254, 255].includes(x.table))
      out.push({
        path: at(x, "table"),
        message: `exit ${x.name} uses routing table ${x.table}, which the kernel reserves (0, 253 default, 254 main, 255 local): set table to another number`,
      });
    if (!x.primary && x.rulePriority >= primary.rulePriority)
      out.push({
        path: at(x, "rulePriority"),
        message: `exit ${x.name}'s rulePriority ${x.rulePriority} must be below the first exit's (${primary.rulePriority}): its rules must come first`,
      });
    if (!x.primary && x.rulePriority < 1)
      out.push({
        path: at(x, "rulePriority"),
        message: `exit ${x.name}'s derived rulePriority ${x.rulePriority} is below 1: set rulePriority`,
      });
  }
  return out;
}

/** Route targets and pool members that name nothing, and pools that shadow exits. */
export function routeProblems(
  exits: readonly ExitSpec[],
  pools: Record<string, string[]>,
  routes: RoutesConfig | undefined,
  authRequired: boolean,
): Problem[] {
  const out: Problem[] = [];
  const names = new Set(exits.map((x) => x.name));
  for (const [pool, members] of Object.entries(pools)) {
    if (names.has(pool))
      out.push({
        path: ["pools", pool],
        message: `pool ${pool} has the name of an exit: rename one of them`,
      });
    members.forEach((m, i) => {
      if (!names.has(m))
        out.push({
          path: ["pools", pool, i],
          message: `pool ${pool} names exit ${m}, which is not in exits (known: ${[...names].join(", ")})`,
        });
    });
  }
  const known = (t: string) => names.has(t) || t in pools;
  const targets = [...names, ...Object.keys(pools)].join(", ");
  if (routes?.default !== undefined && !known(routes.default))
    out.push({
      path: ["routes", "default"],
      message: `routes.default names ${routes.default}, which is neither an exit nor a pool (known: ${targets})`,
    });
  for (const x of exits) {
    const to = x.drain?.to;
    if (to === undefined) continue;
    const path = ["exits", x.index, "drain", "to"];
    if (to === x.name) out.push({ path, message: `exit ${x.name} drains to itself: name another exit` });
    else if (!names.has(to))
      out.push({
        path,
        message: `exit ${x.name} drains to ${to}, which is not an exit (known: ${[...names].join(", ")}; a pool is not a replacement)`,
      });
    else if (followDrain(exits, x.name).cycle)
      out.push({
        path,
        message: `exit ${x.name}'s drain replacements go round in a circle: end the chain at an exit that is not draining`,
      });
  }
  routes?.rules.forEach((r, i) => {
    if (!known(r.to))
      out.push({
        path: ["routes", "rules", i, "to"],
        message: `route rule ${i + 1} goes to ${r.to}, which is neither an exit nor a pool (known: ${targets})`,
      });
    // Without a password a user name proves nothing, so the proxy never matches one: say so instead
    // of sending those users through the default exit.
    if (r.users && !authRequired)
      out.push({
        path: ["routes", "rules", i, "users"],
        message: `route rule ${i + 1} matches users, but the proxy asks no password (no proxy.users or usersFile, or proxy.auth: none): add users, or route by clients`,
      });
  });
  return out;
}

/**
 * The DNS servers each exit's resolver queries (in the order of resolveExits): its own dnsServers,
 * else proxy.dns.servers (withExitDns already gave the later exits their own resolver when the proxy's
 * is the derived one at the first exit).
 */
export function exitDnsServers(
  exits: readonly ExitSpec[],
  entries: readonly ExitEntry[] | undefined,
  proxyServers: readonly string[],
): string[][] {
  return exits.map((x) => [...(entries?.[x.index]?.dnsServers ?? proxyServers)]);
}

/**
 * With several exits, each exit's names are resolved through its own tunnel: c-ares bound to the
 * exit's address. The system resolver (getaddrinfo) cannot be bound, and an IPv6 server cannot be
 * reached from an exit without an IPv6 tunnel address: both would send the queries elsewhere.
 */
export function dnsProblems(
  exits: readonly ExitSpec[],
  entries: readonly ExitEntry[] | undefined,
  proxyServers: readonly string[],
): Problem[] {
  if (exits.length < 2) return [];
  const out: Problem[] = [];
  const servers = exitDnsServers(exits, entries, proxyServers);
  const system = exits.filter((x) => servers[x.index].length === 0).map((x) => x.name);
  if (system.length > 0)
    out.push({
      path: ["proxy", "dns", "servers"],
      message: `with several exits each exit resolves names through its own tunnel, which the system resolver (proxy.dns.servers empty) cannot do: set proxy.dns.servers, or dnsServers on exit${system.length > 1 ? "s" : ""} ${system.join(", ")}`,
    });
  for (const x of exits) {
    const own = entries?.[x.index]?.dnsServers !== undefined;
    const path = own ? ["exits", x.index, "dnsServers"] : ["proxy", "dns", "servers"];
    if (x.address6 || servers[x.index].length === 0) continue;
    const v6 = servers[x.index].find((s) => isIP(s) === 6 || s.startsWith("["));
    if (v6 !== undefined)
      out.push({
        path,
        message: `exit ${x.name} has no address6, so it cannot query the IPv6 DNS server ${v6} through its tunnel: set address6, or use an IPv4 server (exits[${x.index}].dnsServers)`,
      });
  }
  return out;
}

/**
 * Follows exit `name`'s drain replacements (A drains to B, B to C): `end` is the first exit that does
 * not drain; without one, `cycle` says whether the chain came back to an exit already seen (else it
 * ended at an exit draining with no replacement, or at a name that is no exit).
 */
function followDrain(exits: readonly ExitSpec[], name: string): { end?: string; cycle: boolean } {
  const byName = new Map(exits.map((x) => [x.name, x]));
  const seen = new Set<string>();
  for (let at: string | undefined = name; at !== undefined; ) {
    if (seen.has(at)) return { cycle: true };
    const x = byName.get(at);
    if (!x) break;
    if (!x.drain) return { end: at, cycle: false };
    seen.add(at);
    at = x.drain.to;
  }
  return { cycle: false };
}

/**
 * Where new connections for exit `name` go: itself when it is not draining, else the end of its chain
 * of replacements (A drains to B, B to C: C), or undefined when the chain ends at an exit draining with
 * no replacement, names no exit, or goes round in a circle (refused: never a guess). PURE.
 */
export const replacementOf = (exits: readonly ExitSpec[], name: string): string | undefined =>
  followDrain(exits, name).end;
