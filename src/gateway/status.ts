import { readFileSync } from "node:fs";
import { parseHostPort } from "../util/hostport.js";
import { run } from "../util/run.js";
import { parseWgDump, type TunnelState, tunnelState } from "../wireguard/dump.js";
import type { DataPath, GatewayState, RouteEntry, RuleEntry } from "./model.js";
import { parseNftTable } from "./nft.js";
import { killSwitchMissing } from "./plan.js";
import { isTunnelDefault, isUnreachable, ourRules } from "./routes.js";
import type { AgentReport } from "./runtime.js";
import { findUserspacePid } from "./wireguard.js";

/** Reads back what is really there (links, rules, routes, nft, wg) — the input of every plan. */

async function json<T>(cmd: string, args: string[]): Promise<T | null> {
  const r = await run(cmd, args, { allowFail: true });
  if (r.code !== 0 || !r.stdout.trim()) return null;
  return JSON.parse(r.stdout) as T;
}

interface IpLink {
  flags: string[];
  mtu: number;
  linkinfo?: { info_kind?: string };
  addr_info?: { local: string; prefixlen: number }[];
}

export async function observe(p: DataPath): Promise<GatewayState> {
  const [links, dump, rules4, rules6, routes4, routes6, nft] = await Promise.all([
    json<IpLink[]>("ip", ["-d", "-j", "address", "show", "dev", p.ifname]),
    run("wg", ["show", p.ifname, "dump"], { allowFail: true }),
    json<RuleEntry[]>("ip", ["-4", "-j", "rule", "show"]),
    json<RuleEntry[]>("ip", ["-6", "-j", "rule", "show"]),
    json<RouteEntry[]>("ip", ["-4", "-j", "route", "show", "table", String(p.table)]),
    json<RouteEntry[]>("ip", ["-6", "-j", "route", "show", "table", String(p.table)]),
    run("nft", ["list", "table", "inet", p.nftTable], { allowFail: true }),
  ]);
  const l = links?.[0];
  const kind = l?.linkinfo?.info_kind;
  let srcValidMark: string | null = null;
  try {
    srcValidMark = readFileSync("/proc/sys/net/ipv4/conf/all/src_valid_mark", "utf8").trim();
  } catch {
    // no IPv4 sysctls (unusual); up will try to set it and report the failure
  }
  // The primary exit's rules use P, P+1 and P+2; another exit's only P.
  const last = p.primary ? p.rulePriority + 2 : p.rulePriority;
  const ours = (r: RuleEntry) => r.priority >= p.rulePriority && r.priority <= last;
  return {
    link: l
      ? {
          kind: kind === "wireguard" ? "kernel" : kind === "tun" ? "userspace" : "other",
          up: l.flags.includes("UP"),
          mtu: l.mtu,
          addresses: (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`),
        }
      : null,
    userspacePid: findUserspacePid(p.ifname),
    wg: dump.code === 0 ? (parseWgDump(dump.stdout, p.ifname)[0] ?? null) : null,
    rules4: (rules4 ?? []).filter(ours),
    rules6: (rules6 ?? []).filter(ours),
    routes4: routes4 ?? [],
    routes6: routes6 ?? [],
    nft: nft.code === 0 ? parseNftTable(nft.stdout) : null,
    srcValidMark,
  };
}

/** The source address the kernel picks towards `endpoint` (HOST:PORT of the exit), or null (no route). */
export async function sourceTowards(endpoint: string): Promise<string | null> {
  const hp = parseHostPort(endpoint);
  if (typeof hp === "string") return null;
  const r = await json<{ prefsrc?: string }[]>("ip", ["-j", "route", "get", hp.host]);
  return r?.[0]?.prefsrc ?? null;
}

export interface GatewayStatus {
  interface: string;
  present: boolean;
  implementation: "kernel" | "userspace" | null;
  linkUp: boolean;
  peer: {
    publicKey: string;
    endpoint: string | null;
    latestHandshake: number;
    handshakeAgeSeconds: number | null;
    rxBytes: number;
    txBytes: number;
  } | null;
  /** All our ip rules present (fwmark, client subnets, uid), per family. */
  rule: { ipv4: boolean; ipv6: boolean };
  route: { tunnel4: boolean; tunnel6: boolean; unreachable4: boolean; unreachable6: boolean };
  nft: { present: boolean; killSwitchRejects: number | null };
  killSwitchArmed: boolean;
  /** The parts of the kill switch that are missing, in words (empty when armed). */
  killSwitchMissing: string[];
  verdict: TunnelState;
}

/** Pure: the report `status` prints. Down unless the interface is up with a recent handshake. */
export function summarize(p: DataPath, s: GatewayState, nowSeconds: number): GatewayStatus {
  const peer = s.wg?.peers[0];
  const route = {
    tunnel4: s.routes4.some(isTunnelDefault(p.ifname)),
    tunnel6: s.routes6.some(isTunnelDefault(p.ifname)),
    unreachable4: s.routes4.some(isUnreachable),
    unreachable6: s.routes6.some(isUnreachable),
  };
  const missing = killSwitchMissing(p, s);
  const usable = !!s.link?.up && route.tunnel4;
  return {
    interface: p.ifname,
    present: s.link !== null,
    implementation: s.link && s.link.kind !== "other" ? s.link.kind : null,
    linkUp: !!s.link?.up,
    peer: peer
      ? {
          publicKey: peer.publicKey,
          endpoint: peer.endpoint,
          latestHandshake: peer.latestHandshake,
          handshakeAgeSeconds: peer.latestHandshake ? nowSeconds - peer.latestHandshake : null,
          rxBytes: peer.rxBytes,
          txBytes: peer.txBytes,
        }
      : null,
    rule: {
      ipv4: ourRules(p).every((r) => r.fam !== "-4" || s.rules4.some(r.matches)),
      ipv6: ourRules(p).every((r) => r.fam !== "-6" || s.rules6.some(r.matches)),
    },
    route,
    nft: { present: s.nft !== null, killSwitchRejects: s.nft?.rejected ?? null },
    killSwitchArmed: missing.length === 0,
    killSwitchMissing: missing,
    verdict: usable && peer ? tunnelState(peer.latestHandshake, nowSeconds) : "down",
  };
}

/** Human-readable lines for `gateway status`; `agent` is the running agent's report, or null. */
export function formatStatus(st: GatewayStatus, agent: AgentReport | null): string {
  const yes = (b: boolean) => (b ? "yes" : "no");
  const lines = [
    `verdict:          ${st.verdict}`,
    `interface:        ${st.interface} ${st.present ? `(${st.implementation ?? "not WireGuard"}, ${st.linkUp ? "up" : "down"})` : "(absent)"}`,
  ];
  if (st.peer)
    lines.push(
      `peer:             ${st.peer.publicKey} at ${st.peer.endpoint ?? "(no endpoint)"}`,
      `handshake:        ${st.peer.handshakeAgeSeconds === null ? "never" : `${st.peer.handshakeAgeSeconds} s ago`}`,
      `transfer:         ${st.peer.rxBytes} B received, ${st.peer.txBytes} B sent`,
    );
  lines.push(
    `ip rules:         v4 ${yes(st.rule.ipv4)}, v6 ${yes(st.rule.ipv6)}`,
    `tunnel route:     v4 ${yes(st.route.tunnel4)}, v6 ${yes(st.route.tunnel6)}`,
    `fail-closed route: v4 ${yes(st.route.unreachable4)}, v6 ${yes(st.route.unreachable6)}`,
    `nft table:        ${st.nft.present ? `present (${st.nft.killSwitchRejects} kill-switch rejects)` : "absent"}`,
    `kill switch:      ${st.killSwitchArmed ? "armed" : `NOT armed (missing: ${st.killSwitchMissing.join("; ")})`}`,
    `agent:            ${agent ? `${agent.state} (pid ${agent.pid}, ${Object.values(agent.repairs).reduce((a, b) => a + b, 0)} repair(s), ${agent.failures} failure(s))` : "not running (nothing repairs drift: wg-egress gateway run)"}`,
  );
  return `${lines.join("\n")}\n`;
}
