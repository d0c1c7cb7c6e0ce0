import { createHash } from "node:crypto";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import type { GatewayConfig } from "../config/gateway-schema.js";
import { UserError } from "../util/errors.js";
import { formatHostPort, parseHostPort } from "../util/hostport.js";
import type { WgInterface } from "../wireguard/dump.js";

/**
 * The home gateway data path as data: config + observed state → ordered steps. Pure: nothing here runs
 * a command, so `--dry-run` prints exactly what `up`/`down` would do, and idempotence is testable
 * (a plan made from the state that `up` produced is empty).
 *
 * Order as in wg-quick, firewall first as in gluetun: the nft table (marking + kill switch) exists
 * before any route could carry marked traffic, so a failure half-way fails closed.
 */

/** Our nftables table (family inet). */
export const NFT_TABLE = "wg-egress";
/** Marked packets refused or dropped by the kill switch are counted here; `status` reads it. */
export const REJECT_COUNTER = "killswitch_rejects";
/** The catch-all route in our table: never removed while we are up, so lookups never fall through to main. */
export const UNREACHABLE_METRIC = 4294967295;

/** `ip <fam> route <verb> …` for the fail-closed catch-all route of our table. */
export function unreachableRouteArgs(
  fam: "-4" | "-6",
  verb: "replace" | "del",
  table: string | number,
): string[] {
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
export const NFT_CHAINS = [
  "mark_proxy",
  "restore_mark",
  "kill_switch",
  "snat_tunnel",
  "tunnel_in",
  "tunnel_fwd",
];

/** What `down` and `status` need: where our objects are. */
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
  peer: { publicKey: string; endpoint: string; persistentKeepalive: number; allowedIps: string[] };
}

export function dataPathOf(gw: GatewayConfig, uid: number): DataPath {
  return {
    ifname: gw.interface,
    fwmark: gw.fwmark,
    table: gw.table,
    rulePriority: gw.rulePriority,
    uid,
    address6: gw.address6,
  };
}

/** Fails with one line naming the missing key (nothing is applied before this passes). */
export function upSpecOf(gw: GatewayConfig, uid: number, publicKey: string): UpSpec {
  if (!gw.peer.publicKey)
    throw new UserError(
      "gateway.peer.publicKey is missing: set it to the exit's public key (wg-egress pubkey)",
    );
  if (!gw.peer.endpoint)
    throw new UserError("gateway.peer.endpoint is missing: set it to the exit's HOST:PORT");
  return {
    ...dataPathOf(gw, uid),
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

/** One entry of `ip -j rule show`. */
export interface RuleEntry {
  priority: number;
  fwmark?: string;
  table?: string;
  uid_start?: number;
  uid_end?: number;
  suppress_prefixlen?: number;
}

export interface RouteEntry {
  dst: string;
  type?: string;
  dev?: string;
  metric?: number;
}

/** What is really there (read by status.ts); null = absent. */
export interface GatewayState {
  link: { kind: "kernel" | "userspace" | "other"; up: boolean; mtu: number; addresses: string[] } | null;
  /** The wireguard-go process serving our interface, if any. */
  userspacePid: number | null;
  wg: WgInterface | null;
  rules4: RuleEntry[];
  rules6: RuleEntry[];
  routes4: RouteEntry[];
  routes6: RouteEntry[];
  nft: { hash: string | null; chains: string[]; rejected: number | null } | null;
  srcValidMark: string | null;
}

export type Step = { why: string } & (
  | { kind: "run"; cmd: "ip" | "nft"; args: string[]; input?: string }
  | { kind: "sysctl"; key: string; value: string }
  | { kind: "create-link"; ifname: string; implementation: UpSpec["implementation"] }
  /** `wg syncconf <if> FILE`; apply adds the private key (from privateKeyFile) in a short-lived 0600 file. */
  | { kind: "wg-config"; ifname: string; conf: string; privateKeyFile: string }
  | { kind: "stop-userspace"; ifname: string; pid: number }
);

const hex = (n: number) => `0x${n.toString(16)}`;
const family = (cidr: string) => (cidr.includes(":") ? "-6" : "-4");

/** The nft ruleset body; the marks and names come from the config. */
function rulesetBody(p: DataPath): string {
  const mark = hex(p.fwmark);
  const wg = JSON.stringify(p.ifname);
  const reject = `counter name ${REJECT_COUNTER} reject with icmpx type admin-prohibited`;
  return `  counter ${REJECT_COUNTER} {
  }

  # Mark only connections the proxy ORIGINATES: its replies to LAN clients are its packets too and must
  # not enter the tunnel. Loopback is not egress. The ct mark lets replies get the mark back.
  chain mark_proxy {
    type route hook output priority mangle; policy accept;
    meta skuid ${p.uid} oifname != "lo" ct direction original meta mark set ${mark}
    meta mark ${mark} ct mark set meta mark
  }

  # Replies from the tunnel carry the mark again, so strict rp_filter with src_valid_mark=1 accepts them.
  chain restore_mark {
    type filter hook prerouting priority mangle; policy accept;
    iifname ${wg} ct mark ${mark} meta mark set ct mark
  }

  # Kill switch, fast part: the proxy's connections are routed into the tunnel from their first lookup
  # (uid rules), so a marked packet headed anywhere else is refused at once and the proxy answers its
  # client immediately instead of hanging.${p.address6 ? "" : " No tunnel IPv6: marked IPv6 is refused."}
  # (In the output hook oifname is that first decision, not the re-route.)
  chain kill_switch {
    type filter hook output priority filter; policy accept;
${p.address6 ? "" : `    meta mark ${mark} meta nfproto ipv6 ${reject}\n`}    meta mark ${mark} oifname != ${wg} ${reject}
  }

  # Kill switch, final guard: after every re-route, nothing marked leaves except through the tunnel.
  chain leak_guard {
    type filter hook postrouting priority filter; policy accept;
    meta mark ${mark} oifname != ${wg} counter name ${REJECT_COUNTER} drop
  }

  # The source address was chosen before the mark re-routed the packet (the home WAN address); the exit
  # only accepts the tunnel address.
  chain snat_tunnel {
    type nat hook postrouting priority srcnat; policy accept;
    oifname ${wg} meta mark ${mark} masquerade
  }

  # The exit may answer but never open connections to the gateway or the LAN.
  chain tunnel_in {
    type filter hook input priority filter; policy accept;
    iifname ${wg} ct state established,related accept
    iifname ${wg} drop
  }

  chain tunnel_fwd {
    type filter hook forward priority filter; policy accept;
    iifname ${wg} ct state established,related accept
    iifname ${wg} drop
  }
`;
}

export function rulesetHash(p: DataPath): string {
  return createHash("sha256").update(rulesetBody(p)).digest("hex").slice(0, 16);
}

/**
 * The whole table as one `nft -f` transaction: create-if-missing, delete, recreate. Either all of it
 * applies or nothing changes, and there is no moment without the kill switch.
 */
export function renderRuleset(p: DataPath): string {
  return `table inet ${NFT_TABLE}
delete table inet ${NFT_TABLE}
table inet ${NFT_TABLE} {
  comment "managed by wg-egress; sha256:${rulesetHash(p)}"

${rulesetBody(p)}}
`;
}

/** The `wg syncconf` text without the private key line (apply adds it). */
export function renderWgConf(spec: UpSpec): string {
  return `[Interface]
${spec.listenPort ? `ListenPort = ${spec.listenPort}\n` : ""}# Never the egress mark: the tunnel's own UDP would be routed into the tunnel.
FwMark = off

[Peer]
PublicKey = ${spec.peer.publicKey}
Endpoint = ${spec.peer.endpoint}
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
const normEndpoint = (e: string) => {
  const hp = parseHostPort(e);
  return typeof hp === "string"
    ? e
    : formatHostPort({ host: ipaddr.parse(hp.host).toString(), port: hp.port });
};

/** Does the running WireGuard config equal the wanted one? (A hostname endpoint cannot be compared: wg resolved it.) */
export function wgMatches(spec: UpSpec, wg: WgInterface | null): boolean {
  if (!wg || wg.publicKey !== spec.publicKey || wg.fwmark) return false;
  if (spec.listenPort && wg.listenPort !== spec.listenPort) return false;
  if (wg.peers.length !== 1) return false;
  const [p] = wg.peers;
  const host = parseHostPort(spec.peer.endpoint);
  const endpointIsIp = typeof host !== "string" && isIP(host.host) !== 0;
  return (
    p.publicKey === spec.peer.publicKey &&
    (p.persistentKeepalive ?? 0) === spec.peer.persistentKeepalive &&
    sameSet(p.allowedIps, spec.peer.allowedIps) &&
    (!endpointIsIp || (p.endpoint !== null && normEndpoint(p.endpoint) === normEndpoint(spec.peer.endpoint)))
  );
}

/** One of our `ip rule`s: its arguments (after add/del) and how to recognise it in `ip -j rule show`. */
export interface OurRule {
  args: string[];
  matches: (r: RuleEntry) => boolean;
  why: string;
}

/**
 * Our rules, in priority order, each for IPv4 and IPv6:
 * - fwmark → our table: where marked packets are re-routed (the seed's rule);
 * - the proxy's uid → main, but never its default route (wg-quick's suppress_prefixlength 0): the proxy's
 *   replies to its clients keep using the LAN routes;
 * - the proxy's uid → our table: its connect() already picks the tunnel (and the tunnel address as
 *   source), and fails AT ONCE on the unreachable route when the tunnel is gone — the fast kill switch.
 */
export function ourRules(p: DataPath): OurRule[] {
  const uid = `${p.uid}-${p.uid}`;
  const isUid = (r: RuleEntry) => r.uid_start === p.uid && r.uid_end === p.uid && r.fwmark === undefined;
  return [
    {
      args: ["priority", String(p.rulePriority), "fwmark", hex(p.fwmark), "lookup", String(p.table)],
      matches: (r) =>
        r.priority === p.rulePriority &&
        r.fwmark !== undefined &&
        Number(r.fwmark) === p.fwmark &&
        Number(r.table) === p.table,
      why: `marked packets use table ${p.table}`,
    },
    {
      args: [
        "priority",
        String(p.rulePriority + 1),
        "uidrange",
        uid,
        "lookup",
        "main",
        "suppress_prefixlength",
        "0",
      ],
      matches: (r) =>
        r.priority === p.rulePriority + 1 && isUid(r) && r.table === "main" && r.suppress_prefixlen === 0,
      why: "the proxy's replies to LAN clients stay on the LAN",
    },
    {
      args: ["priority", String(p.rulePriority + 2), "uidrange", uid, "lookup", String(p.table)],
      matches: (r) =>
        r.priority === p.rulePriority + 2 &&
        isUid(r) &&
        Number(r.table) === p.table &&
        r.suppress_prefixlen === undefined,
      why: `the proxy's connections start in table ${p.table} (fail at once when the tunnel is gone)`,
    },
  ];
}

const isUnreachable = (r: RouteEntry) =>
  r.dst === "default" && r.type === "unreachable" && r.metric === UNREACHABLE_METRIC;
const isTunnelDefault = (ifname: string) => (r: RouteEntry) =>
  r.dst === "default" && (r.type ?? "unicast") === "unicast" && r.dev === ifname;

/** The kill-switch parts: our table (marking + rejects), the unreachable routes, the fwmark rules. */
export function killSwitchArmed(p: DataPath, s: GatewayState): boolean {
  const nftOk = s.nft !== null && NFT_CHAINS.every((c) => s.nft!.chains.includes(c));
  return (
    nftOk &&
    s.routes4.some(isUnreachable) &&
    s.routes6.some(isUnreachable) &&
    ourRules(p).every((rule) => s.rules4.some(rule.matches) && s.rules6.some(rule.matches))
  );
}

/** Steps that bring the observed state to the wanted one; empty when nothing differs. */
export function planUp(spec: UpSpec, s: GatewayState): Step[] {
  const steps: Step[] = [];
  const table = String(spec.table);
  if (s.link && s.link.kind === "other")
    throw new UserError(
      `interface ${spec.ifname} exists and is not WireGuard: remove it or set gateway.interface`,
    );

  if (s.srcValidMark !== "1")
    steps.push({
      kind: "sysctl",
      key: "net.ipv4.conf.all.src_valid_mark",
      value: "1",
      why: "reverse-path checks use the restored mark",
    });

  const nftCurrent =
    s.nft !== null && s.nft.hash === rulesetHash(spec) && NFT_CHAINS.every((c) => s.nft!.chains.includes(c));
  if (!nftCurrent)
    steps.push({
      kind: "run",
      cmd: "nft",
      args: ["-f", "-"],
      input: renderRuleset(spec),
      why: `load table inet ${NFT_TABLE} atomically (marking, kill switch, masquerade)`,
    });

  for (const [fam, routes] of [
    ["-4", s.routes4],
    ["-6", s.routes6],
  ] as const)
    if (!routes.some(isUnreachable))
      steps.push({
        kind: "run",
        cmd: "ip",
        args: unreachableRouteArgs(fam, "replace", table),
        why: `table ${table} fails closed when the tunnel route is gone`,
      });

  for (const rule of ourRules(spec))
    for (const [fam, rules] of [
      ["-4", s.rules4],
      ["-6", s.rules6],
    ] as const)
      if (!rules.some(rule.matches))
        steps.push({ kind: "run", cmd: "ip", args: [fam, "rule", "add", ...rule.args], why: rule.why });

  if (!s.link)
    steps.push({
      kind: "create-link",
      ifname: spec.ifname,
      implementation: spec.implementation,
      why: "create the WireGuard interface",
    });

  if (!s.link || !wgMatches(spec, s.wg))
    steps.push({
      kind: "wg-config",
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
        cmd: "ip",
        args: [family(a), "address", "replace", a, "dev", spec.ifname],
        why: "tunnel address",
      });
  for (const h of have)
    if (!wanted.some((a) => normCidr(a) === normCidr(h)) && !h.toLowerCase().startsWith("fe80:"))
      steps.push({
        kind: "run",
        cmd: "ip",
        args: [family(h), "address", "del", h, "dev", spec.ifname],
        why: "address no longer configured",
      });

  if (!s.link?.up || s.link.mtu !== spec.mtu)
    steps.push({
      kind: "run",
      cmd: "ip",
      args: ["link", "set", "dev", spec.ifname, "mtu", String(spec.mtu), "up"],
      why: "MTU and link up",
    });

  // Link down/up deletes this route and nothing puts it back by itself: always check it.
  const src = spec.address.split("/")[0];
  if (!s.link?.up || !s.routes4.some(isTunnelDefault(spec.ifname)))
    steps.push({
      kind: "run",
      cmd: "ip",
      args: ["-4", "route", "replace", "default", "dev", spec.ifname, "src", src, "table", table],
      why: "marked IPv4 goes into the tunnel",
    });
  const has6 = s.link?.up === true && s.routes6.some(isTunnelDefault(spec.ifname));
  if (spec.address6 && !has6)
    steps.push({
      kind: "run",
      cmd: "ip",
      args: [
        "-6",
        "route",
        "replace",
        "default",
        "dev",
        spec.ifname,
        "src",
        spec.address6.split("/")[0],
        "table",
        table,
      ],
      why: "marked IPv6 goes into the tunnel",
    });
  if (!spec.address6 && has6)
    steps.push({
      kind: "run",
      cmd: "ip",
      args: ["-6", "route", "del", "default", "dev", spec.ifname, "table", table],
      why: "no tunnel IPv6: marked IPv6 must hit the unreachable route",
    });
  return steps;
}

/**
 * Steps that remove exactly what `up` created, found by name, priority, mark and table; other rules,
 * routes and tables are never touched. With keepKillSwitch only the interface goes: marked traffic
 * keeps failing closed. Without it the proxy's traffic is no longer marked at all and leaves via the
 * home line — stop the proxy first if that matters.
 */
export function planDown(p: DataPath, s: GatewayState, keepKillSwitch = false): Step[] {
  const steps: Step[] = [];
  if (s.userspacePid !== null)
    steps.push({ kind: "stop-userspace", ifname: p.ifname, pid: s.userspacePid, why: "stop wireguard-go" });
  else if (s.link && s.link.kind !== "other")
    steps.push({
      kind: "run",
      cmd: "ip",
      args: ["link", "del", "dev", p.ifname],
      why: "remove the interface",
    });
  if (keepKillSwitch) return steps;

  const table = String(p.table);
  for (const rule of ourRules(p))
    for (const [fam, rules] of [
      ["-4", s.rules4],
      ["-6", s.rules6],
    ] as const)
      for (const _ of rules.filter(rule.matches))
        steps.push({
          kind: "run",
          cmd: "ip",
          args: [fam, "rule", "del", ...rule.args],
          why: `remove: ${rule.why}`,
        });
  for (const [fam, routes] of [
    ["-4", s.routes4],
    ["-6", s.routes6],
  ] as const)
    if (routes.some(isUnreachable))
      steps.push({
        kind: "run",
        cmd: "ip",
        args: unreachableRouteArgs(fam, "del", table),
        why: "our fail-closed route",
      });
  if (s.nft)
    steps.push({
      kind: "run",
      cmd: "nft",
      args: ["delete", "table", "inet", NFT_TABLE],
      why: "our nftables table",
    });
  return steps;
}

/** Shell-like text of a step for `--dry-run` (the private key is shown as where it comes from). */
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
