import ipaddr from "ipaddr.js";
import type { ExitConfig } from "../config/exit-schema.js";
import { type CheckResult, fail, pass, skip, warn } from "../doctor/check.js";
import { errorMessage } from "../util/errors.js";
import { parseWgDump } from "../wireguard/dump.js";
import { EXIT_NFT_TABLE } from "./host.js";
import { runOverSsh, type SshTarget, shellQuote } from "./ssh-install.js";

/**
 * `wg-egress exit check`: the VPS side of the seed's runbook (`ssh root@vps`, wg show, masquerade,
 * ip_forward), read-only, over SSH. One script collects everything (never the private key: the interface
 * line of `wg show dump` is cut on the exit); the verdicts are PURE and each comes with its fix.
 */

export interface ExitExpectation {
  /** The exit's and the gateway's public keys as the store (or the config) knows them; unknown = not compared. */
  exitPublicKey?: string;
  gatewayPublicKey?: string;
  /** A name the exit should resolve (its own updates need DNS). */
  resolveName: string;
  /** How to re-apply the exit's setup, for the fixes. */
  install: string;
}

const SECTIONS = ["wg", "link", "fwd4", "fwd6", "nft", "route", "resolv", "resolve", "now"];

/** PURE: the read-only collector run on the exit. */
export function checkScript(exit: ExitConfig, resolveName: string): string {
  const i = shellQuote(exit.interface);
  return `export LC_ALL=C
echo "== wg"; wg show ${i} dump 2>/dev/null | sed '1s/^[^[:space:]]*/(hidden)/'
echo "== link"; ip -j address show dev ${i} 2>/dev/null
echo "== fwd4"; cat /proc/sys/net/ipv4/ip_forward 2>&1
echo "== fwd6"; cat /proc/sys/net/ipv6/conf/all/forwarding 2>&1
echo "== nft"; nft list table inet ${EXIT_NFT_TABLE} 2>&1
echo "== route"; ip -j route show default 2>/dev/null
echo "== resolv"; cat /etc/resolv.conf 2>&1
echo "== resolve"; timeout 5 getent ahostsv4 ${shellQuote(resolveName)} 2>&1 | head -n 3
echo "== now"; date +%s
`;
}

export type Collected = Record<string, string>;

export function parseCollected(text: string): Collected {
  const out: Collected = {};
  let current: string | undefined;
  for (const line of text.split("\n")) {
    const m = /^== (\S+)$/.exec(line);
    if (m && SECTIONS.includes(m[1])) {
      current = m[1];
      out[current] = "";
    } else if (current) out[current] += `${line}\n`;
  }
  for (const k of Object.keys(out)) out[k] = out[k].trim();
  return out;
}

interface IpAddr {
  ifname: string;
  flags: string[];
  addr_info?: { local: string; prefixlen: number }[];
}

function json<T>(text: string | undefined): T | null {
  try {
    return text ? (JSON.parse(text) as T) : null;
  } catch {
    return null;
  }
}

/** `wg show dump` as collected (the private key cut on the exit); null when there is no such interface. */
function wgOf(exit: ExitConfig, c: Collected) {
  try {
    return c.wg ? (parseWgDump(c.wg, exit.interface)[0] ?? null) : null;
  } catch {
    return null;
  }
}

function interfaceCheck(exit: ExitConfig, c: Collected, want: ExitExpectation): CheckResult {
  const name = "exit interface";
  const link = json<IpAddr[]>(c.link)?.[0];
  const wg = wgOf(exit, c);
  if (!link || !wg) return fail(name, `no WireGuard interface ${exit.interface} on the exit`, want.install);
  const problems: string[] = [];
  if (!link.flags.includes("UP")) problems.push("it is down");
  if (wg.listenPort !== exit.listenPort)
    problems.push(`it listens on UDP ${wg.listenPort}, not ${exit.listenPort}`);
  const [addr, len] = ipaddr.parseCIDR(exit.address);
  if (!link.addr_info?.some((a) => a.local === addr.toString() && a.prefixlen === len))
    problems.push(`it lacks the address ${exit.address}`);
  if (want.exitPublicKey && wg.publicKey !== want.exitPublicKey)
    problems.push(
      `its key ${wg.publicKey} is not the stored exit key ${want.exitPublicKey} (the gateway cannot handshake)`,
    );
  if (problems.length) return fail(name, `${exit.interface}: ${problems.join("; ")}`, want.install);
  return pass(name, `${exit.interface} is up, UDP ${wg.listenPort}, ${exit.address}, key ${wg.publicKey}`);
}

function peerOf(exit: ExitConfig, c: Collected, want: ExitExpectation) {
  const peers = wgOf(exit, c)?.peers ?? [];
  const gw = want.gatewayPublicKey ? peers.find((p) => p.publicKey === want.gatewayPublicKey) : peers[0];
  return { peers, gw };
}

function peerCheck(exit: ExitConfig, c: Collected, want: ExitExpectation): CheckResult {
  const name = "gateway peer";
  const { peers, gw } = peerOf(exit, c, want);
  if (!gw)
    return fail(
      name,
      peers.length
        ? `the gateway's key ${want.gatewayPublicKey} is not among the peers (${peers.map((p) => p.publicKey).join(", ")})`
        : `${exit.interface} has no peer`,
      want.install,
    );
  const wantIps = [...exit.gatewayAllowedIps].sort().join(",");
  if ([...gw.allowedIps].sort().join(",") !== wantIps)
    return fail(
      name,
      `the gateway peer's allowed IPs are ${gw.allowedIps.join(", ") || "none"}, not ${exit.gatewayAllowedIps.join(", ")}: its traffic is dropped`,
      want.install,
    );
  const others = peers.filter((p) => p !== gw).map((p) => p.publicKey);
  if (others.length)
    return warn(
      name,
      `the gateway ${gw.publicKey} (${wantIps}) and other peer(s): ${others.join(", ")}`,
      `not ours (a rotation cut short?): ${want.install} leaves only the gateway`,
    );
  return pass(name, `only the gateway ${gw.publicKey}, allowed ${wantIps}`);
}

function handshakeCheck(exit: ExitConfig, c: Collected, want: ExitExpectation): CheckResult {
  const name = "handshake (exit's view)";
  const { gw } = peerOf(exit, c, want);
  if (!gw) return skip(name, "no gateway peer (see 'gateway peer')");
  const fix = `run wg-egress doctor on the gateway: is the tunnel up, with the stored keys, and does UDP ${exit.listenPort} reach ${exit.interface} (the Hetzner firewall, exit.listenPort)?`;
  if (!gw.latestHandshake) return fail(name, "no handshake with the gateway ever", fix);
  const age = Number(c.now) - gw.latestHandshake;
  const from = gw.endpoint ? ` from ${gw.endpoint}` : "";
  if (age < 150) return pass(name, `latest handshake ${age} s ago${from}`);
  if (age < 300) return warn(name, `latest handshake ${age} s ago${from} (stale: > 150 s)`, fix);
  return fail(name, `latest handshake ${age} s ago${from} (down: > 300 s)`, fix);
}

function forwardingCheck(exit: ExitConfig, c: Collected, want: ExitExpectation): CheckResult {
  const name = "IP forwarding";
  const off = [
    c.fwd4 !== "1" && "net.ipv4.ip_forward",
    exit.address6 && c.fwd6 !== "1" && "net.ipv6.conf.all.forwarding",
  ].filter(Boolean);
  if (off.length)
    return fail(
      name,
      `${off.join(" and ")} = 0: the exit does not forward the tunnel's traffic`,
      `sysctl -w ${off.map((k) => `${k}=1`).join(" ")} now; ${want.install} makes it stick`,
    );
  return pass(name, `net.ipv4.ip_forward = 1${exit.address6 ? ", IPv6 forwarding on" : ""}`);
}

function masqueradeCheck(exit: ExitConfig, c: Collected, want: ExitExpectation): CheckResult {
  const name = "masquerade";
  const nft = c.nft ?? "";
  const rule = new RegExp(`iifname "${exit.interface}" oifname "${exit.publicInterface}" masquerade`);
  if (!/^table inet /m.test(nft))
    return fail(name, `no nft table inet ${EXIT_NFT_TABLE}: nothing masquerades the tunnel`, want.install);
  if (!rule.test(nft))
    return fail(name, `no rule masquerades ${exit.interface} out of ${exit.publicInterface}`, want.install);
  const routes = json<{ dev: string }[]>(c.route) ?? [];
  const dev = routes[0]?.dev;
  if (dev && dev !== exit.publicInterface)
    return fail(
      name,
      `the default route leaves via ${dev}, but the masquerade is on ${exit.publicInterface}: proxied traffic leaves unmasqueraded`,
      `set exit.publicInterface: ${dev}, then ${want.install}`,
    );
  if (!dev)
    return warn(
      name,
      `masquerade out of ${exit.publicInterface}, but the exit has no default route`,
      "check the exit's network (ip route)",
    );
  return pass(name, `${exit.interface} → ${exit.publicInterface} masqueraded; default route via ${dev}`);
}

function firewallCheck(exit: ExitConfig, c: Collected, want: ExitExpectation): CheckResult {
  const name = "firewall";
  const nft = c.nft ?? "";
  if (!/^table inet /m.test(nft))
    return fail(name, `no nft table inet ${EXIT_NFT_TABLE} on the exit`, want.install);
  const missing = [
    !/hook input priority filter; policy drop;/.test(nft) && "input policy drop",
    !new RegExp(`udp dport ${exit.listenPort} accept`).test(nft) &&
      `UDP ${exit.listenPort} (WireGuard) allowed`,
    !/tcp dport 22 accept/.test(nft) && "SSH allowed",
    !/hook forward priority filter; policy drop;/.test(nft) && "forward policy drop",
  ].filter(Boolean);
  if (missing.length)
    return fail(name, `table inet ${EXIT_NFT_TABLE} lacks: ${missing.join(", ")}`, want.install);
  return pass(name, `input and forward drop by default; UDP ${exit.listenPort} and SSH allowed`);
}

function resolverCheck(c: Collected, want: ExitExpectation): CheckResult {
  const name = "resolver";
  const servers = [...(c.resolv ?? "").matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]);
  const ip = /^(\d+\.\d+\.\d+\.\d+)\s/m.exec(c.resolve ?? "")?.[1];
  const via = servers.length ? `via ${servers.join(", ")}` : "with no nameserver in /etc/resolv.conf";
  if (ip) return pass(name, `the exit resolves ${want.resolveName} (${ip}) ${via}`);
  return warn(
    name,
    `the exit cannot resolve ${want.resolveName} ${via}`,
    "fix /etc/resolv.conf on the exit (its security updates need DNS)",
  );
}

/** PURE: every verdict from what the script collected. */
export function exitChecks(exit: ExitConfig, c: Collected, want: ExitExpectation): CheckResult[] {
  return [
    interfaceCheck(exit, c, want),
    peerCheck(exit, c, want),
    handshakeCheck(exit, c, want),
    forwardingCheck(exit, c, want),
    masqueradeCheck(exit, c, want),
    firewallCheck(exit, c, want),
    resolverCheck(c, want),
  ];
}

export async function checkExit(
  exit: ExitConfig,
  target: SshTarget,
  want: ExitExpectation,
): Promise<CheckResult[]> {
  let text: string;
  try {
    text = await runOverSsh(target, checkScript(exit, want.resolveName), {
      what: "the check",
      timeoutMs: 60_000,
    });
  } catch (e) {
    return [
      fail(
        "ssh",
        errorMessage(e),
        `check exit.ssh.target (${target.target}), the key (exit.ssh.identityFile) and that the exit's firewall admits SSH from here (wg-egress exit update-home-ip)`,
      ),
    ];
  }
  return [pass("ssh", `logged into ${target.target}`), ...exitChecks(exit, parseCollected(text), want)];
}
