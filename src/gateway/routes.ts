import ipaddr from "ipaddr.js";
import type { DataPath, RouteEntry, RuleEntry } from "./model.js";
import { networkOf } from "./model.js";
import { hex } from "./nft.js";

/**
 * Our policy routing: the ip rules and the routes of our table, as arguments and as predicates over
 * what `ip -j rule/route show` prints. PURE.
 *
 * Rules, in priority order, each per family:
 *   P    fwmark → our table: where marked packets are re-routed (the seed's rule);
 *   P+1  the proxy's uid to a client subnet → main: its replies to clients (and its queries to a resolver
 *        there) stay on the LAN. Only the client subnets: not every connected route, so the WAN's subnet
 *        and the rest of the LAN go through the tunnel like everything else;
 *   P+2  the proxy's uid → our table: its connect() already picks the tunnel (and the tunnel address as
 *        source) and fails AT ONCE on the unreachable route when the tunnel is gone. Routing alone keeps
 *        the proxy off the WAN even when the nft table is flushed.
 * With several exits, each exit also has `from <its tunnel address> → its table` (at P): the proxy
 * binds a connection to the chosen exit's address. The exits after the first have only P (fwmark and
 * source rules), below the first's P, so a bound connection is routed before the uid rules are reached.
 */

export type Family = "-4" | "-6";

/** The catch-all route in our table: never removed while we are up, so lookups never fall through to main. */
export const UNREACHABLE_METRIC = 4294967295;

/** `ip <fam> route <verb> …` for the fail-closed catch-all route of our table. */
export function unreachableRouteArgs(fam: Family, verb: "replace" | "del", table: string | number): string[] {
  return [
    fam,
    "route",
    verb,
    "unreachable",
    "default",
    "metric",
    String(UNREACHABLE_METRIC),
    "table",
    String(table),
  ];
}

export const isUnreachable = (r: RouteEntry) =>
  r.dst === "default" && r.type === "unreachable" && r.metric === UNREACHABLE_METRIC;
export const isTunnelDefault = (ifname: string) => (r: RouteEntry) =>
  r.dst === "default" && (r.type ?? "unicast") === "unicast" && r.dev === ifname;

/** One of our `ip rule`s: its family, its arguments (after add/del) and how to recognise it. */
export interface OurRule {
  fam: Family;
  args: string[];
  matches: (r: RuleEntry) => boolean;
  why: string;
}

const isUid = (p: DataPath) => (r: RuleEntry) =>
  r.uid_start === p.uid && r.uid_end === p.uid && r.fwmark === undefined;
const dstOf = (r: RuleEntry) => (r.dst && r.dstlen !== undefined ? networkOf(`${r.dst}/${r.dstlen}`) : null);
/** The rule's source as a plain address (a host; `ip` prints /32 and /128 without the length). */
const srcOf = (r: RuleEntry) =>
  r.src &&
  r.src !== "all" &&
  ipaddr.isValid(r.src) &&
  (r.srclen === undefined || r.srclen === (r.src.includes(":") ? 128 : 32))
    ? ipaddr.parse(r.src).toString()
    : null;
const famOf = (ip: string): Family => (ip.includes(":") ? "-6" : "-4");

export function ourRules(p: DataPath): OurRule[] {
  const uid = `${p.uid}-${p.uid}`;
  const out: OurRule[] = [];
  for (const fam of ["-4", "-6"] as const) {
    out.push({
      fam,
      args: ["priority", String(p.rulePriority), "fwmark", hex(p.fwmark), "lookup", String(p.table)],
      matches: (r) =>
        r.priority === p.rulePriority &&
        r.fwmark !== undefined &&
        Number(r.fwmark) === p.fwmark &&
        Number(r.table) === p.table,
      why: `marked packets use table ${p.table}`,
    });
    for (const ip of p.sources.filter((s) => famOf(s) === fam))
      out.push({
        fam,
        args: ["priority", String(p.rulePriority), "from", ip, "lookup", String(p.table)],
        matches: (r) =>
          r.priority === p.rulePriority &&
          srcOf(r) === ip &&
          r.fwmark === undefined &&
          r.uid_start === undefined &&
          Number(r.table) === p.table,
        why: `connections bound to ${ip} use table ${p.table} (this exit's tunnel, or fail)`,
      });
    if (!p.primary) continue;
    for (const cidr of fam === "-4" ? p.clients.v4 : p.clients.v6)
      out.push({
        fam,
        args: ["priority", String(p.rulePriority + 1), "uidrange", uid, "to", cidr, "lookup", "main"],
        matches: (r) =>
          r.priority === p.rulePriority + 1 &&
          isUid(p)(r) &&
          r.table === "main" &&
          dstOf(r) === cidr &&
          r.suppress_prefixlen === undefined,
        why: `the proxy's replies to its clients in ${cidr} stay on the LAN`,
      });
    out.push({
      fam,
      args: ["priority", String(p.rulePriority + 2), "uidrange", uid, "lookup", String(p.table)],
      matches: (r) =>
        r.priority === p.rulePriority + 2 &&
        isUid(p)(r) &&
        r.dst === undefined &&
        Number(r.table) === p.table &&
        r.suppress_prefixlen === undefined,
      why: `the proxy's connections start in table ${p.table} (fail at once when the tunnel is gone)`,
    });
  }
  return out;
}

/**
 * A rule in our priority range with our uid (the primary's), our mark and table, or a source address
 * into our table: ours, whichever version added it.
 */
export function isOurRule(p: DataPath, r: RuleEntry): boolean {
  return (
    (p.primary && r.uid_start === p.uid && r.uid_end === p.uid) ||
    (r.fwmark !== undefined && Number(r.fwmark) === p.fwmark && Number(r.table) === p.table) ||
    (srcOf(r) !== null && r.fwmark === undefined && Number(r.table) === p.table)
  );
}

/**
 * Ours but not wanted now: an older version's rule or a removed client subnet's. Others' rules in our
 * priority range are never touched.
 */
export function isStaleRule(p: DataPath, fam: Family, r: RuleEntry): boolean {
  return isOurRule(p, r) && !ourRules(p).some((w) => w.fam === fam && w.matches(r));
}

/** `ip rule del` arguments that select exactly this observed rule. */
export function ruleArgsOf(r: RuleEntry): string[] {
  const dst = dstOf(r);
  return [
    "priority",
    String(r.priority),
    ...(srcOf(r) ? ["from", srcOf(r)!] : []),
    ...(r.uid_start !== undefined ? ["uidrange", `${r.uid_start}-${r.uid_end}`] : []),
    ...(dst ? ["to", dst] : []),
    ...(r.fwmark !== undefined ? ["fwmark", r.fwmark] : []),
    "lookup",
    r.table ?? "main",
    ...(r.suppress_prefixlen !== undefined ? ["suppress_prefixlength", String(r.suppress_prefixlen)] : []),
  ];
}

/** Is `ip` (an address) inside one of the client subnets? Those are reached on the LAN, unmarked. */
export function inClientSubnets(p: DataPath, ip: string): boolean {
  if (!ipaddr.isValid(ip)) return false;
  const a = ipaddr.process(ip);
  return [...p.clients.v4, ...p.clients.v6].some((c) => {
    const [net, len] = ipaddr.parseCIDR(c);
    return net.kind() === a.kind() && a.match(net, len);
  });
}
