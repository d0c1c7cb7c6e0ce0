import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { UsageError } from "../util/errors.js";
import { formatHostPort, type HostPort, parseHostPort } from "../util/hostport.js";
import type { WgInterface } from "../wireguard/dump.js";
import type { DataPath, GatewayState, Step, UpSpec } from "./model.js";
import { nftCurrent, nftMissing, renderRuleset } from "./nft.js";
import {
  type Family,
  isOurRule,
  isStaleRule,
  isTunnelDefault,
  isUnreachable,
  ourRules,
  ruleArgsOf,
  unreachableRouteArgs,
} from "./routes.js";

/**
 * Config + observed state → ordered steps. Pure: nothing here runs a command, so `--dry-run` prints
 * exactly what `up`/`down` would do, the agent repairs with the same plan, and idempotence is testable
 * (a plan made from the state that `up` produced is empty).
 *
 * Order as in wg-quick, firewall first as in gluetun: the kill switch (nft table, fail-closed routes,
 * rules) exists before any route could carry marked traffic, so a failure half-way fails closed, and no
 * step ever removes a part of it on the way up.
 */

const SRC_VALID_MARK = "net.ipv4.conf.all.src_valid_mark";

const family = (cidr: string): Family => (cidr.includes(":") ? "-6" : "-4");
const families = (s: GatewayState) =>
  [
    ["-4", s.rules4, s.routes4],
    ["-6", s.rules6, s.routes6],
  ] as const;

/** The parts of the kill switch that are not there, in words; empty = armed. */
export function killSwitchMissing(p: DataPath, s: GatewayState): string[] {
  const out = nftMissing(p, s.nft);
  for (const [fam, rules, routes] of families(s)) {
    const v = fam === "-4" ? "IPv4" : "IPv6";
    if (!routes.some(isUnreachable)) out.push(`${v} unreachable default route in table ${p.table}`);
    for (const rule of ourRules(p))
      if (rule.fam === fam && !rules.some(rule.matches)) out.push(`${v} rule: ${rule.why}`);
  }
  return out;
}

/** The kill-switch parts: our table (marking + rejects), the unreachable routes, the rules. */
export const killSwitchArmed = (p: DataPath, s: GatewayState) => killSwitchMissing(p, s).length === 0;

/** Steps that arm the kill switch or repair it; empty when it is armed and current. */
export function planKillSwitch(p: DataPath, s: GatewayState): Step[] {
  const steps: Step[] = [];
  if (s.srcValidMark !== "1")
    steps.push({
      kind: "sysctl",
      part: "sysctl",
      key: SRC_VALID_MARK,
      value: "1",
      record: s.srcValidMark === null ? undefined : { ifname: p.ifname, was: s.srcValidMark },
      why: "reverse-path checks use the restored mark",
    });
  if (!nftCurrent(p, s.nft))
    steps.push({
      kind: "run",
      part: "nft",
      cmd: "nft",
      args: ["-f", "-"],
      input: renderRuleset(p),
      why: `load table inet ${p.nftTable} atomically (marking, kill switch, masquerade)`,
    });
  for (const [fam, , routes] of families(s))
    if (!routes.some(isUnreachable))
      steps.push({
        kind: "run",
        part: "route",
        cmd: "ip",
        args: unreachableRouteArgs(fam, "replace", p.table),
        why: `table ${p.table} fails closed when the tunnel route is gone`,
      });
  // New rules first, then the stale ones go: no moment with fewer rules than before.
  for (const rule of ourRules(p)) {
    const rules = rule.fam === "-4" ? s.rules4 : s.rules6;
    if (!rules.some(rule.matches))
      steps.push({
        kind: "run",
        part: "rule",
        cmd: "ip",
        args: [rule.fam, "rule", "add", ...rule.args],
        why: rule.why,
      });
  }
  for (const [fam, rules] of families(s))
    for (const r of rules.filter((r) => isStaleRule(p, fam, r)))
      steps.push({
        kind: "run",
        part: "rule",
        cmd: "ip",
        args: [fam, "rule", "del", ...ruleArgsOf(r)],
        why: "remove a rule of ours that is no longer wanted",
      });
  return steps;
}

/** The `wg syncconf` text without the private key line (apply adds it). */
export function renderWgConf(spec: UpSpec): string {
  return `[Interface]
${spec.listenPort ? `ListenPort = ${spec.listenPort}\n` : ""}# Never the egress mark: the tunnel's own UDP would be routed into the tunnel.
FwMark = off

[Peer]
PublicKey = ${spec.peer.publicKey}
Endpoint = ${formatHostPort(spec.peer.endpoint)}
PersistentKeepalive = ${spec.peer.persistentKeepalive}
AllowedIPs = ${spec.peer.allowedIps.join(", ")}
`;
}

const normCidr = (c: string) => {
  const [addr, len] = c.includes("/") ? ipaddr.parseCIDR(c) : [ipaddr.parse(c), c.includes(":") ? 128 : 32];
  return `${addr.toNormalizedString()}/${len}`;
};
const sameSet = (a: string[], b: string[]) => {
  const x = a.map(normCidr).sort();
  const y = b.map(normCidr).sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
};
/** Is the endpoint wg reports (IP:PORT) the configured IP endpoint, whatever the IPv6 spelling? */
const sameEndpoint = (live: string, want: HostPort) => {
  const hp = parseHostPort(live);
  return (
    typeof hp !== "string" &&
    hp.port === want.port &&
    ipaddr.isValid(want.host) &&
    ipaddr.parse(hp.host).toString() === ipaddr.parse(want.host).toString()
  );
};

/** The endpoint when its host is a name (wg resolved it once; the agent re-resolves it), else null. */
export function endpointName(spec: UpSpec): HostPort | null {
  return isIP(spec.peer.endpoint.host) === 0 ? spec.peer.endpoint : null;
}

/** Does the running WireGuard config equal the wanted one? (A hostname endpoint cannot be compared: wg resolved it.) */
export function wgMatches(spec: UpSpec, wg: WgInterface | null): boolean {
  if (!wg || wg.publicKey !== spec.publicKey || wg.fwmark) return false;
  if (spec.listenPort && wg.listenPort !== spec.listenPort) return false;
  if (wg.peers.length !== 1) return false;
  const [p] = wg.peers;
  return (
    p.publicKey === spec.peer.publicKey &&
    (p.persistentKeepalive ?? 0) === spec.peer.persistentKeepalive &&
    sameSet(p.allowedIps, spec.peer.allowedIps) &&
    (endpointName(spec) !== null || (p.endpoint !== null && sameEndpoint(p.endpoint, spec.peer.endpoint)))
  );
}

/** Steps that bring up the tunnel itself (interface, WireGuard, addresses, the tunnel route). */
export function planTunnel(spec: UpSpec, s: GatewayState): Step[] {
  const steps: Step[] = [];
  const table = String(spec.table);
  if (s.link && s.link.kind === "other")
    throw new UsageError(
      `interface ${spec.ifname} exists and is not WireGuard: remove it or set gateway.interface`,
    );
  if (!s.link)
    steps.push({
      kind: "create-link",
      part: "link",
      ifname: spec.ifname,
      implementation: spec.implementation,
      why: "create the WireGuard interface",
    });

  if (!s.link || !wgMatches(spec, s.wg))
    steps.push({
      kind: "wg-config",
      part: "wireguard",
      ifname: spec.ifname,
      conf: renderWgConf(spec),
      privateKeyFile: spec.privateKeyFile,
      why: "WireGuard key, peer and endpoint",
    });

  const wanted = [spec.address, spec.address6].filter((a): a is string => !!a);
  const have = s.link?.addresses ?? [];
  for (const a of wanted)
    if (!have.some((h) => normCidr(h) === normCidr(a)))
      steps.push({
        kind: "run",
        part: "address",
        cmd: "ip",
        args: [family(a), "address", "replace", a, "dev", spec.ifname],
        why: "tunnel address",
      });
  for (const h of have)
    if (!wanted.some((a) => normCidr(a) === normCidr(h)) && !h.toLowerCase().startsWith("fe80:"))
      steps.push({
        kind: "run",
        part: "address",
        cmd: "ip",
        args: [family(h), "address", "del", h, "dev", spec.ifname],
        why: "address no longer configured",
      });

  if (!s.link?.up || s.link.mtu !== spec.mtu)
    steps.push({
      kind: "run",
      part: "link",
      cmd: "ip",
      args: ["link", "set", "dev", spec.ifname, "mtu", String(spec.mtu), "up"],
      why: "MTU and link up",
    });

  // Link down/up deletes this route and nothing puts it back by itself: always check it.
  const tunnelRoute = (fam: Family, address: string): Step => ({
    kind: "run",
    part: "route",
    cmd: "ip",
    args: [
      fam,
      "route",
      "replace",
      "default",
      "dev",
      spec.ifname,
      "src",
      address.split("/")[0],
      "table",
      table,
    ],
    why: `marked IPv${fam === "-4" ? 4 : 6} goes into the tunnel`,
  });
  if (!s.link?.up || !s.routes4.some(isTunnelDefault(spec.ifname)))
    steps.push(tunnelRoute("-4", spec.address));
  const has6 = s.link?.up === true && s.routes6.some(isTunnelDefault(spec.ifname));
  if (spec.address6 && !has6) steps.push(tunnelRoute("-6", spec.address6));
  if (!spec.address6 && has6)
    steps.push({
      kind: "run",
      part: "route",
      cmd: "ip",
      args: ["-6", "route", "del", "default", "dev", spec.ifname, "table", table],
      why: "no tunnel IPv6: marked IPv6 must hit the unreachable route",
    });
  return steps;
}

/** Everything `up` does: the kill switch first, then the tunnel. Empty when nothing differs. */
export function planUp(spec: UpSpec, s: GatewayState): Step[] {
  return [...planKillSwitch(spec, s), ...planTunnel(spec, s)];
}

/**
 * WireGuard resolves a hostname endpoint once. When the handshake has gone stale, point the peer at the
 * name's current address (`resolved`, looked up by the caller) unless it already uses one of them.
 */
export function planEndpoint(spec: UpSpec, wg: WgInterface | null, resolved: readonly string[]): Step[] {
  const name = endpointName(spec);
  const peer = wg?.peers.find((p) => p.publicKey === spec.peer.publicKey);
  if (!name || !peer || !resolved.length) return [];
  const current = peer.endpoint ? parseHostPort(peer.endpoint) : null;
  const same = (ip: string) =>
    typeof current === "object" &&
    current !== null &&
    current.port === name.port &&
    ipaddr.parse(current.host).toString() === ipaddr.parse(ip).toString();
  if (resolved.some(same)) return [];
  const endpoint = formatHostPort({ host: resolved[0], port: name.port });
  return [
    {
      kind: "run",
      part: "endpoint",
      cmd: "wg",
      args: ["set", spec.ifname, "peer", spec.peer.publicKey, "endpoint", endpoint],
      why: `${name.host} now resolves to ${resolved[0]} (handshake stale)`,
    },
  ];
}

/**
 * The home address changed (DHCP, a new line): WireGuard keeps sending from the address it cached until
 * a handshake times out (about 15 s). Setting the endpoint again drops that cache, so the next packet
 * leaves from the new address and the exit follows at once. `was`/`now`: the source towards the
 * endpoint at the last check and now; `addressGone`: an address was removed since (the source may look
 * the same to us while WireGuard still holds the removed one).
 */
export function planRoam(
  spec: UpSpec,
  wg: WgInterface | null,
  was: string | null,
  now: string | null,
  addressGone = false,
): Step[] {
  const peer = wg?.peers.find((p) => p.publicKey === spec.peer.publicKey);
  if (!peer?.endpoint || !now || (!addressGone && (!was || was === now))) return [];
  return [
    {
      kind: "run",
      part: "endpoint",
      cmd: "wg",
      args: ["set", spec.ifname, "peer", peer.publicKey, "endpoint", peer.endpoint],
      why:
        was && was !== now
          ? `the home address changed (${was} → ${now}): send from the new one now`
          : `an address was removed: send from ${now} now`,
    },
  ];
}

export interface DownOptions {
  /** Also remove the kill switch (nft table, fail-closed routes, rules) and restore src_valid_mark. */
  purge?: boolean;
  /** src_valid_mark before our first `up` (recorded then), restored by purge; null = we did not change it. */
  srcValidMarkWas?: string | null;
}

/**
 * Steps that take the tunnel down. By default the kill switch stays: the proxy's connections keep
 * failing at once instead of leaving via the home line. With purge, exactly what `up` created goes too,
 * found by name, priority, mark and table; other rules, routes and tables are never touched.
 */
/**
 * src_valid_mark when exits are purged: each exit's record holds the value its first `up` saw, so the
 * host's own value is the one that is not our 1 (if every record says 1, it was 1). Restore it only
 * when no other exit still needs the 1; else hand it to one that stays, for its own purge later.
 */
export function srcValidMarkOnPurge(
  purged: readonly (string | undefined)[],
  remaining: readonly (string | undefined)[],
): { restore: string | null; handOver: string | null } {
  const seen = purged.filter((v): v is string => v !== undefined);
  const original = seen.find((v) => v !== "1") ?? seen[0] ?? null;
  const stays = remaining.some((v) => v !== undefined);
  return stays ? { restore: null, handOver: original } : { restore: original, handOver: null };
}

export function planDown(p: DataPath, s: GatewayState, opts: DownOptions = {}): Step[] {
  const steps: Step[] = [];
  if (s.userspacePid !== null)
    steps.push({
      kind: "stop-userspace",
      part: "link",
      ifname: p.ifname,
      pid: s.userspacePid,
      why: "stop wireguard-go",
    });
  else if (s.link && s.link.kind !== "other")
    steps.push({
      kind: "run",
      part: "link",
      cmd: "ip",
      args: ["link", "del", "dev", p.ifname],
      why: "remove the interface",
    });
  if (!opts.purge) return steps;

  for (const [fam, rules, routes] of families(s)) {
    for (const r of rules.filter((r) => isOurRule(p, r)))
      steps.push({
        kind: "run",
        part: "rule",
        cmd: "ip",
        args: [fam, "rule", "del", ...ruleArgsOf(r)],
        why: "remove our rule",
      });
    if (routes.some(isUnreachable))
      steps.push({
        kind: "run",
        part: "route",
        cmd: "ip",
        args: unreachableRouteArgs(fam, "del", p.table),
        why: "our fail-closed route",
      });
  }
  if (s.nft)
    steps.push({
      kind: "run",
      part: "nft",
      cmd: "nft",
      args: ["delete", "table", "inet", p.nftTable],
      why: "our nftables table",
    });
  if (opts.srcValidMarkWas != null && opts.srcValidMarkWas !== s.srcValidMark)
    steps.push({
      kind: "sysctl",
      part: "sysctl",
      key: SRC_VALID_MARK,
      value: opts.srcValidMarkWas,
      why: "restore the value from before our first up",
    });
  return steps;
}

/** Shell-like text of a step for `--dry-run` and the repair log (the private key is shown as where it comes from). */
export function describeStep(step: Step): string {
  const why = `# ${step.why}`;
  switch (step.kind) {
    case "run":
      return step.input === undefined
        ? `${why}\n${step.cmd} ${step.args.join(" ")}`
        : `${why}\n${step.cmd} ${step.args.join(" ")} <<'EOF'\n${step.input}EOF`;
    case "sysctl":
      return `${why}\nsysctl -w ${step.key}=${step.value}`;
    case "create-link": {
      const kernel = `ip link add dev ${step.ifname} type wireguard`;
      const user = `wireguard-go ${step.ifname}`;
      const cmd =
        step.implementation === "kernel"
          ? kernel
          : step.implementation === "userspace"
            ? user
            : `${kernel} || ${user}`;
      return `${why}\n${cmd}`;
    }
    case "wg-config": {
      const conf = step.conf.replace(
        "[Interface]\n",
        `[Interface]\nPrivateKey = <contents of ${step.privateKeyFile}>\n`,
      );
      return `${why}\nwg syncconf ${step.ifname} <(0600 file) <<'EOF'\n${conf}EOF`;
    }
    case "stop-userspace":
      return `${why}\nkill ${step.pid}  # wireguard-go ${step.ifname}`;
  }
}

/** One line for the repair log: the command without its input. */
export function stepCommand(step: Step): string {
  return describeStep(step)
    .split("\n")[1]
    .replace(/ <<'EOF'$/, "");
}
