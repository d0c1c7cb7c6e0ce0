import { readFileSync } from "node:fs";
import { run } from "../util/run.js";
import { parseWgDump, type TunnelState, tunnelState } from "../wireguard/dump.js";
import {
  type DataPath,
  type GatewayState,
  killSwitchArmed,
  NFT_TABLE,
  ourRules,
  REJECT_COUNTER,
  type RouteEntry,
  type RuleEntry,
  UNREACHABLE_METRIC,
} from "./plan.js";
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

/** Parses `nft list table inet wg-egress` (text: the JSON of nft 1.0.6 omits table comments). */
export function parseNftTable(text: string): GatewayState["nft"] {
  return {
    hash: /comment "[^"]*sha256:([0-9a-f]+)"/.exec(text)?.[1] ?? null,
    chains: [...text.matchAll(/^\s*chain (\S+) \{/gm)].map((m) => m[1]),
    rejected: Number(new RegExp(`counter ${REJECT_COUNTER} \\{\\s*packets (\\d+)`).exec(text)?.[1] ?? 0),
  };
}

export async function observe(p: DataPath): Promise<GatewayState> {
  const [links, dump, rules4, rules6, routes4, routes6, nft] = await Promise.all([
    json<IpLink[]>("ip", ["-d", "-j", "address", "show", "dev", p.ifname]),
    run("wg", ["show", p.ifname, "dump"], { allowFail: true }),
    json<RuleEntry[]>("ip", ["-4", "-j", "rule", "show"]),
    json<RuleEntry[]>("ip", ["-6", "-j", "rule", "show"]),
    json<RouteEntry[]>("ip", ["-4", "-j", "route", "show", "table", String(p.table)]),
    json<RouteEntry[]>("ip", ["-6", "-j", "route", "show", "table", String(p.table)]),
    run("nft", ["list", "table", "inet", NFT_TABLE], { allowFail: true }),
  ]);
  const l = links?.[0];
  const kind = l?.linkinfo?.info_kind;
  let srcValidMark: string | null = null;
  try {
    srcValidMark = readFileSync("/proc/sys/net/ipv4/conf/all/src_valid_mark", "utf8").trim();
  } catch {
    // no IPv4 sysctls (unusual); up will try to set it and report the failure
  }
  const ours = (r: RuleEntry) => r.priority >= p.rulePriority && r.priority <= p.rulePriority + 2;
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
  /** All our ip rules present (fwmark and the two uid rules), per family. */
  rule: { ipv4: boolean; ipv6: boolean };
  route: { tunnel4: boolean; tunnel6: boolean; unreachable4: boolean; unreachable6: boolean };
  nft: { present: boolean; killSwitchRejects: number | null };
  killSwitchArmed: boolean;
  verdict: TunnelState;
}

/** Pure: the report `status` prints. Down unless the interface is up with a recent handshake. */
export function summarize(p: DataPath, s: GatewayState, nowSeconds: number): GatewayStatus {
  const peer = s.wg?.peers[0];
  const isDefault = (dev: boolean) => (r: RouteEntry) =>
    r.dst === "default" &&
    (dev
      ? r.dev === p.ifname && (r.type ?? "unicast") === "unicast"
      : r.type === "unreachable" && r.metric === UNREACHABLE_METRIC);
  const route = {
    tunnel4: s.routes4.some(isDefault(true)),
    tunnel6: s.routes6.some(isDefault(true)),
    unreachable4: s.routes4.some(isDefault(false)),
    unreachable6: s.routes6.some(isDefault(false)),
  };
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
      ipv4: ourRules(p).every((r) => s.rules4.some(r.matches)),
      ipv6: ourRules(p).every((r) => s.rules6.some(r.matches)),
    },
    route,
    nft: { present: s.nft !== null, killSwitchRejects: s.nft?.rejected ?? null },
    killSwitchArmed: killSwitchArmed(p, s),
    verdict: usable && peer ? tunnelState(peer.latestHandshake, nowSeconds) : "down",
  };
}

/** Human-readable lines for `gateway status`. */
export function formatStatus(st: GatewayStatus): string {
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
    `kill switch:      ${st.killSwitchArmed ? "armed" : "NOT armed"}`,
  );
  return `${lines.join("\n")}\n`;
}
