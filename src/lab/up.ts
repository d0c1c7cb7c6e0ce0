import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { stringify } from "yaml";
import { parseConfig } from "../config/load.js";
import { renderExitHost } from "../exit/host.js";
import { writeFileAtomic } from "../secrets/atomic.js";
import { OperationError } from "../util/errors.js";
import { run } from "../util/run.js";
import { generatePrivateKey, publicKeyOf } from "../wireguard/keys.js";
import { labDown } from "./down.js";
import { MAIN_JS, PROBE_JS, pidsInNamespace, SERVERS_JS, startDaemon, stopPids } from "./processes.js";
import {
  ADDR2,
  EXIT2_DIR,
  EXIT2_NS,
  secondExitCommands,
  secondExitSection,
  twoExitConfig,
} from "./second-exit.js";
import {
  ADDR,
  CONFIG_FILE,
  exitConntrackCommand,
  HTTP_PORT,
  labConfig,
  leakCounterRuleset,
  NS,
  networkCommands,
  PROXY_KEEPALIVE_SECONDS,
  PROXY_LAN_DNS_PORT,
  PROXY_NO_KEEPALIVE_PORT,
  PROXY_PORT,
  PROXY_UID,
  STATE_DIR,
} from "./topology.js";

export const SERVERS_LOG = `${STATE_DIR}/servers.log`;
export const LAN_DNS_LOG = `${STATE_DIR}/lan-dns.log`;

/** Runs argv inside a namespace through the one command runner. */
export function inNs(ns: string, argv: string[], opts: Parameters<typeof run>[2] = {}) {
  return run("ip", ["netns", "exec", ns, ...argv], opts);
}

/** The real CLI (`wg-egress …`) inside a namespace. */
export function cli(ns: string, args: string[], opts: Parameters<typeof run>[2] = {}) {
  return inNs(ns, [process.execPath, MAIN_JS, ...args, "--config", CONFIG_FILE], opts);
}

/** Our proxy as uid 400 in the gateway namespace: with keepalive or without (idle scenario), `extra` flags. */
export function startProxy(port: number, keepalive: boolean, extra: string[] = []): number {
  const argv = [
    "setpriv",
    `--reuid=${PROXY_UID}`,
    `--regid=${PROXY_UID}`,
    "--clear-groups",
    "--",
    process.execPath,
    MAIN_JS,
    "proxy",
    "--config",
    CONFIG_FILE,
    "--listen",
    `${ADDR.gwLan}:${port}`,
    ...(keepalive ? ["--keepalive", String(PROXY_KEEPALIVE_SECONDS)] : ["--no-keepalive"]),
    ...extra,
  ];
  return startDaemon(NS.gw, argv, `${STATE_DIR}/proxy-${port}.log`);
}

export const AGENT_LOG = `${STATE_DIR}/gateway.log`;
const isAgent = (exit?: string) => (argv: string[]) =>
  argv.includes(MAIN_JS) &&
  argv.includes("gateway") &&
  argv.includes("run") &&
  (exit === undefined || argv[argv.indexOf("--exit") + 1] === exit);

/**
 * The gateway agent, as the systemd unit runs it: `gateway run` (its log: AGENT_LOG); with two exits
 * one agent per exit (`--exit NAME`, its log gateway-NAME.log).
 */
export function startAgent(exit?: string): number {
  const argv = [process.execPath, MAIN_JS, "gateway", "run", "--config", CONFIG_FILE];
  if (exit === undefined) return startDaemon(NS.gw, argv, AGENT_LOG);
  return startDaemon(NS.gw, [...argv, "--exit", exit], `${STATE_DIR}/gateway-${exit}.log`);
}

/** The agents running (of one exit, when named). */
export const agentPids = (exit?: string) => pidsInNamespace(NS.gw, isAgent(exit));

/**
 * SIGTERM, as `systemctl stop` does: the agent stops watching and the kill switch stays. Lists again
 * after each round: a /proc scan can catch a process between fork and exec (it still shows the
 * agent's argv) or miss one mid-start, so one list is not proof that no agent is left.
 */
export async function stopAgent(exit?: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (let pids = agentPids(exit); pids.length; pids = agentPids(exit)) {
    if (Date.now() > deadline)
      throw new OperationError(`lab: the agent did not stop (PIDs ${pids.join(", ")})`);
    await stopPids(pids);
  }
}

/** Repeats `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline)
      throw new OperationError(`lab: ${what} not ready after ${timeoutMs / 1000} s (logs in ${STATE_DIR})`);
    await sleep(200);
  }
}

/** The SOCKS reply code for a CONNECT from the pod through the proxy on `port` (-1 = no reply). */
export async function probeConnect(port: number, dst: string, dstPort: number): Promise<number> {
  const r = await inNs(
    NS.pod,
    [process.execPath, PROBE_JS, "connect", ADDR.gwLan, String(port), dst, String(dstPort)],
    {
      allowFail: true,
      timeoutMs: 30_000,
    },
  );
  return /^\d+$/.test(r.stdout.trim()) ? Number(r.stdout.trim()) : -1;
}

/** `curl` from the pod through the proxy as `user` (password = name): what the echo server saw, or null. */
export async function echoAs(
  user: string,
  opts: { from?: string; maxTime?: number; name?: string } = {},
): Promise<string | null> {
  const maxTime = opts.maxTime ?? 5;
  const r = await inNs(
    NS.pod,
    [
      "curl",
      "-sS",
      "--max-time",
      String(maxTime),
      ...(opts.from ? ["--interface", opts.from] : []),
      // A name (every one is the server's address) is resolved by the proxy, through the user's exit.
      opts.name ? "--socks5-hostname" : "--socks5",
      `${ADDR.gwLan}:${PROXY_PORT}`,
      "--proxy-user",
      `${user}:${user}`,
      `http://${opts.name ?? ADDR.server}/`,
    ],
    { allowFail: true, timeoutMs: (maxTime + 5) * 1000 },
  );
  return r.code === 0 ? r.stdout.trim() : null;
}

/**
 * Builds the lab from scratch (whatever was there is removed first) and leaves it running. With
 * `exits: 2`, a second exit (second-exit.ts): `exits:` in the config, one agent per exit, and only the
 * proxy on PROXY_PORT, with users.
 */
export async function labUp(opts: { exits?: 1 | 2 } = {}): Promise<void> {
  const two = opts.exits === 2;
  if (process.getuid?.() !== 0) throw new OperationError("lab up creates network namespaces: run it as root");
  await labDown();
  mkdirSync(STATE_DIR, { recursive: true });
  chmodSync(STATE_DIR, 0o755); // the proxy (uid 400) reads the config; keys stay 0600 root

  const gwKey = generatePrivateKey();
  const exitKey = generatePrivateKey();
  writeFileAtomic(`${STATE_DIR}/gateway.key`, `${gwKey}\n`, 0o600);
  const exit2Key = generatePrivateKey();
  const one = labConfig({ gatewayPublic: publicKeyOf(gwKey), exitPublic: publicKeyOf(exitKey) });
  const raw = two ? twoExitConfig(one, publicKeyOf(exit2Key)) : one;
  writeFileSync(CONFIG_FILE, stringify(raw), { mode: 0o644 });
  const config = parseConfig(raw, CONFIG_FILE);

  for (const [cmd, ...args] of [...networkCommands(), ...(two ? secondExitCommands() : [])])
    await run(cmd, args);

  // The internet: servers and the leak counter; a resolver on the LAN.
  await inNs(NS.inet, ["nft", "-f", "-"], { input: leakCounterRuleset });
  startDaemon(NS.inet, [process.execPath, SERVERS_JS], SERVERS_LOG);
  startDaemon(NS.pod, [process.execPath, SERVERS_JS, "dns", ADDR.lanDns], LAN_DNS_LOG);

  // The exit: exactly the setup script a VPS gets, fed on stdin (it holds the exit's private key).
  const exit = renderExitHost(config.exit, { privateKey: exitKey });
  await inNs(NS.exit, ["sh", "-s"], {
    input: exit.setupScript,
    env: { ...process.env, WG_EGRESS_EXIT_DIR: `${STATE_DIR}/exit` },
  });
  if (two) {
    const section = parseConfig({ exit: secondExitSection(publicKeyOf(gwKey)) }).exit;
    const exit2 = renderExitHost(section, { privateKey: exit2Key });
    await inNs(EXIT2_NS, ["sh", "-s"], {
      input: exit2.setupScript,
      env: { ...process.env, WG_EGRESS_EXIT_DIR: EXIT2_DIR },
    });
  }
  for (const [cmd, ...args] of [
    exitConntrackCommand(NS.exit),
    ...(two ? [exitConntrackCommand(EXIT2_NS)] : []),
  ])
    await run(cmd, args);

  // The home gateway as its systemd unit runs it: the kill switch, then the agent; then the real proxy
  // as uid 400 (with the exit's resolver, the default), and one that resolves with the LAN's resolver.
  await cli(NS.gw, ["gateway", "up", "--killswitch-only"]);
  if (two) {
    startAgent("one");
    startAgent("two");
    startProxy(PROXY_PORT, true);
  } else {
    startAgent();
    startProxy(PROXY_PORT, true);
    startProxy(PROXY_NO_KEEPALIVE_PORT, false);
    startProxy(PROXY_LAN_DNS_PORT, true, ["--dns", ADDR.lanDns]);
  }

  await waitFor(
    "HTTP server",
    10_000,
    async () =>
      (await inNs(NS.gw, ["curl", "-sS", "--max-time", "2", `http://${ADDR.server}/`], { allowFail: true }))
        .code === 0,
  );
  if (two) {
    // The proxy needs passwords here (users route to exits).
    for (const [user, exit] of [
      ["alice", ADDR.exitPublic],
      ["bob", ADDR2.exitPublic],
    ])
      await waitFor(
        `${user} through ${exit}`,
        20_000,
        async () => (await echoAs(user, { maxTime: 2 })) === exit,
      );
    return;
  }
  for (const port of [PROXY_PORT, PROXY_NO_KEEPALIVE_PORT, PROXY_LAN_DNS_PORT])
    await waitFor(
      `proxy on port ${port} through the tunnel`,
      20_000,
      async () => (await probeConnect(port, ADDR.server, HTTP_PORT)) === 0,
    );
}
