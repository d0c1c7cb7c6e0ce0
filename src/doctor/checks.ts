import ipaddr from "ipaddr.js";
import type { DataPath } from "../gateway/model.js";
import { hex } from "../gateway/nft.js";
import type { AgentReport } from "../gateway/runtime.js";
import type { GatewayStatus } from "../gateway/status.js";
import { formatHostPort, type HostPort } from "../util/hostport.js";
import { type CheckResult, fail, pass, skip, warn } from "./check.js";

/**
 * PURE verdicts from what the gateway shows (`gateway status` data, `ss`, nft text, /etc files).
 * Each follows a step of the seed's troubleshooting section, with the fix spelled out.
 */

/** Stands for `--config FILE` in the fixes; runDoctor puts in the file in use (nothing for the default). */
export const CONFIG_ARG = " --config <file>";
const UP = `wg-egress gateway up${CONFIG_ARG}`;

export function interfaceCheck(st: GatewayStatus): CheckResult {
  const name = "tunnel interface";
  if (!st.present) return fail(name, `${st.interface} does not exist`, `create it: ${UP}`);
  if (!st.implementation)
    return fail(name, `${st.interface} exists but is not WireGuard`, "remove it or set gateway.interface");
  if (!st.linkUp)
    return fail(
      name,
      `${st.interface} (${st.implementation}) is down`,
      `ip link set ${st.interface} up, or ${UP}`,
    );
  return pass(name, `${st.interface} is up (${st.implementation})`);
}

export function handshakeCheck(st: GatewayStatus): CheckResult {
  const name = "tunnel handshake";
  const hint = "see 'exit reachable'; `wg show` on the exit should list this gateway's key";
  if (!st.present) return skip(name, `no interface ${st.interface} (see 'tunnel interface')`);
  if (!st.peer)
    return fail(name, `${st.interface} has no peer`, `set gateway.peer in the config, then ${UP}`);
  const age = st.peer.handshakeAgeSeconds;
  if (age === null) return fail(name, "no handshake ever", hint);
  if (age < 150) return pass(name, `latest handshake ${age} s ago`);
  if (age < 300) return warn(name, `latest handshake ${age} s ago (stale: > 150 s)`, hint);
  return fail(name, `latest handshake ${age} s ago (down: > 300 s)`, hint);
}

/** A recent handshake proves UDP reaches the exit and returns; otherwise the counters tell which way fails. */
export function exitReachableCheck(st: GatewayStatus, endpoint: string | undefined): CheckResult {
  const name = "exit reachable (UDP)";
  const where = st.peer?.endpoint ?? endpoint ?? "(no endpoint)";
  if (!st.present) return skip(name, `no interface ${st.interface} (see 'tunnel interface')`);
  if (!st.peer) return fail(name, "no peer configured", "set gateway.peer.endpoint and publicKey");
  const age = st.peer.handshakeAgeSeconds;
  if (age !== null && age < 150)
    return pass(name, `handshake with ${where} ${age} s ago: UDP works both ways`);
  const port = /:(\d+)$/.exec(where)?.[1] ?? "51820";
  const fix = `check that the exit runs (wg show on it), that its firewall (e.g. the Hetzner firewall) allows UDP ${port} in, and that gateway.peer.publicKey is the exit's key`;
  if (st.peer.txBytes > 0 && st.peer.rxBytes === 0)
    return fail(name, `sent ${st.peer.txBytes} B to ${where}, received nothing`, fix);
  return fail(
    name,
    `no recent handshake with ${where} (sent ${st.peer.txBytes} B, received ${st.peer.rxBytes} B)`,
    fix,
  );
}

export function routeCheck(st: GatewayStatus, p: DataPath): CheckResult {
  const name = "route table";
  if (!st.route.tunnel4)
    return fail(
      name,
      `no "default dev ${p.ifname}" in table ${p.table} (ip route show table ${p.table})`,
      `${UP} (re-adds it; an interface restart removes it)`,
    );
  return pass(
    name,
    `default dev ${p.ifname} in table ${p.table}${st.route.tunnel6 ? " (IPv4 and IPv6)" : " (IPv4)"}`,
  );
}

export function ruleCheck(st: GatewayStatus, p: DataPath): CheckResult {
  const name = "ip rule fwmark";
  const missing = [!st.rule.ipv4 && "IPv4", !st.rule.ipv6 && "IPv6"].filter(Boolean);
  // Another exit than the first is chosen by source address only (no uid rules).
  const want = p.primary
    ? `fwmark ${hex(p.fwmark)} lookup ${p.table} and uid ${p.uid} rules`
    : `from ${p.sources.join(", ")} lookup ${p.table} rules`;
  if (missing.length)
    return fail(
      name,
      `missing ${missing.join(" and ")} rules (want: priority ${p.rulePriority} ${p.primary ? `fwmark ${hex(p.fwmark)} lookup ${p.table}, and the uid ${p.uid} rules` : want.replace(/ rules$/, "")})`,
      UP,
    );
  return pass(name, `${want} present (IPv4 and IPv6)`);
}

/**
 * The rules of chain mark_proxy (from the shared nft parser): is the proxy's traffic marked with our mark?
 * The first exit marks what the proxy's uid originates; another exit what leaves with its source address.
 */
export function markRuleCheck(rules: readonly string[] | null, p: DataPath): CheckResult {
  const name = "nft mark rule";
  if (rules === null) return fail(name, `table inet ${p.nftTable} or its chain mark_proxy is missing`, UP);
  const markOf = (l: string) => Number(/meta mark set (0x[0-9a-f]+|\d+)/.exec(l)?.[1]);
  const by = p.primary ? "meta skuid " : "saddr ";
  const marks = rules.filter((l) => l.includes(by) && /meta mark set/.test(l));
  const ok = p.primary
    ? marks.some((l) => new RegExp(`meta skuid ${p.uid}\\b`).test(l) && markOf(l) === p.fwmark)
    : p.sources.every((ip) => marks.some((l) => l.includes(`saddr ${ip} `) && markOf(l) === p.fwmark));
  if (!ok)
    return fail(
      name,
      marks.length ? `marks other traffic: ${marks.join("; ")}` : "no rule marks the proxy's packets",
      p.primary
        ? `the proxy's uid is ${p.uid} and the mark ${hex(p.fwmark)}: check gateway.proxyUid/fwmark, then ${UP}`
        : `this exit's sources are ${p.sources.join(", ")} and its mark ${hex(p.fwmark)}: ${UP}`,
    );
  return pass(
    name,
    p.primary
      ? `meta skuid ${p.uid} … meta mark set ${hex(p.fwmark)}`
      : `saddr ${p.sources.join(", ")} … meta mark set ${hex(p.fwmark)}`,
  );
}

export function killSwitchCheck(st: GatewayStatus): CheckResult {
  const name = "kill switch";
  if (st.killSwitchArmed)
    return pass(
      name,
      `armed: unreachable default in the table, reject rule in chain kill_switch${st.nft.killSwitchRejects ? ` (${st.nft.killSwitchRejects} packets refused so far)` : ""}`,
    );
  return fail(
    name,
    `NOT armed, missing: ${st.killSwitchMissing.join(", ") || "some part"}; if the tunnel drops, the proxy's traffic may leave via the home line`,
    UP,
  );
}

/** Who repairs drift: without the agent a link flap or a flushed ruleset stays broken until someone runs `up`. */
export function agentCheck(agent: AgentReport | null): CheckResult {
  const name = "gateway agent";
  if (!agent)
    return warn(
      name,
      "no gateway agent runs: a link flap, a dead wireguard-go or a flushed ruleset stays broken (failing closed) until someone runs gateway up",
      "systemctl enable --now wg-egress-gateway (it runs wg-egress gateway run)",
    );
  const repairs = Object.entries(agent.repairs)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  const about = `pid ${agent.pid}, ${agent.state}; repairs: ${repairs || "none"}; ${agent.failures} failure(s)`;
  if (agent.state === "failing")
    return warn(name, about, "its log says what it cannot repair (journalctl -u wg-egress-gateway)");
  return pass(name, about);
}

export interface Listener {
  host: string;
  port: number;
  uid: number;
}

/** `ss -Hltne` lines → listening TCP sockets (ss prints uid: only when it is not 0). */
export function parseSsListeners(text: string): Listener[] {
  const out: Listener[] = [];
  for (const line of text.split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols[0] !== "LISTEN" || cols.length < 5) continue;
    const m = /^\[?(.*?)(?:%[^\]]*)?\]?:(\d+)$/.exec(cols[3]);
    if (!m) continue;
    out.push({ host: m[1], port: Number(m[2]), uid: Number(/\buid:(\d+)/.exec(line)?.[1] ?? 0) });
  }
  return out;
}

const WILDCARD = new Set(["0.0.0.0", "::", "*"]);
export const sameAddr = (a: string, b: string) => {
  if (a === b) return true;
  try {
    return ipaddr.process(a).toString() === ipaddr.process(b).toString();
  } catch {
    return false;
  }
};

/** The proxy must listen where configured, and not on every address (the seed's security note). */
export function proxyListenCheck(listeners: readonly Listener[], wanted: readonly HostPort[]): CheckResult {
  const name = "proxy listening";
  const missing = wanted.filter((w) => !listeners.some((l) => l.port === w.port && sameAddr(l.host, w.host)));
  const wideOpen = listeners.filter(
    (l) => WILDCARD.has(l.host) && wanted.some((w) => w.port === l.port && !WILDCARD.has(w.host)),
  );
  const shown = (hps: readonly HostPort[]) => hps.map(formatHostPort).join(", ");
  if (wideOpen.length)
    return fail(
      name,
      `something listens on ${shown(wideOpen)}: every network (also the WAN) reaches it`,
      `bind only to the LAN address (proxy.listen ${shown(wanted)}); stop the process listening on ${shown(wideOpen)} (ss -ltnp)`,
    );
  if (missing.length)
    return fail(
      name,
      `nothing listens on ${shown(missing)}`,
      `start the proxy (systemctl start wg-egress-proxy, or wg-egress proxy${CONFIG_ARG}); check its log`,
    );
  if (wanted.some((w) => WILDCARD.has(w.host)))
    return warn(
      name,
      `listening on ${shown(wanted)}: all addresses`,
      "set proxy.listen to the LAN address, e.g. 10.1.0.1:1080",
    );
  return pass(name, `listening on ${shown(wanted)} only`);
}

/** Only the marked uid's connections go through the tunnel: the listening socket must belong to it. */
export function proxyUserCheck(
  listeners: readonly Listener[],
  wanted: readonly HostPort[],
  uid: number,
  passwd: string | null,
): CheckResult {
  const name = "proxy user";
  const user = passwd
    ?.split("\n")
    .map((l) => l.split(":"))
    .find((f) => Number(f[2]) === uid && f[2] !== "")?.[0];
  const who = user ? `${user} (uid ${uid})` : `uid ${uid}`;
  const mine = listeners.filter((l) => wanted.some((w) => w.port === l.port && sameAddr(l.host, w.host)));
  const wrong = mine.filter((l) => l.uid !== uid);
  if (wrong.length)
    return fail(
      name,
      `the proxy runs as uid ${wrong.map((l) => l.uid).join(", ")}, not ${who}: its traffic is not marked and leaves via the home line`,
      `run the proxy as ${who} (systemd User=), or set gateway.proxyUid to its uid and re-run ${UP}`,
    );
  if (!user)
    return warn(
      name,
      `no user with uid ${uid} in /etc/passwd`,
      `create a system user with uid ${uid} (e.g. useradd -r -u ${uid} wg-egress-proxy)`,
    );
  return pass(name, mine.length ? `${who} owns the listening socket` : `${who} exists`);
}
