import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { NFT_TABLE } from "../gateway/nft.js";
import { unreachableRouteArgs } from "../gateway/routes.js";
import { findUserspacePid } from "../gateway/wireguard.js";
import { errorMessage } from "../util/errors.js";
import { labDown, labLeftovers } from "./down.js";
import { MAIN_JS, PROBE_JS, pidsInNamespace } from "./processes.js";
import {
  ADDR,
  CONTROL_PORT,
  EXIT_CONNTRACK_TIMEOUT,
  GW_IF,
  HTTP_PORT,
  LEAK_COUNTER,
  LEAK_TABLE,
  LINE_PORT,
  NS,
  OWN_COUNTER,
  PROXY_LAN_DNS_PORT,
  PROXY_NO_KEEPALIVE_PORT,
  PROXY_PORT,
  PROXY_UID,
} from "./topology.js";
import {
  AGENT_LOG,
  agentPids,
  cli,
  inNs,
  LAN_DNS_LOG,
  probeConnect,
  SERVERS_LOG,
  startAgent,
  stopAgent,
  waitFor,
} from "./up.js";

/**
 * The end-to-end scenarios against a running lab. Each returns a note or throws with what was
 * seen; every wait is bounded. Throughout, the leak counter in wgelab-inet (every packet from the home
 * line except WireGuard's own UDP and the gateway's own requests) must not move, except in the control
 * that removes our kill switch on purpose. The last scenario tears the lab down and checks nothing is left.
 */

/** Self-repair and recovery must take less than this (the bound). */
const RECOVERY_MS = 10_000;

interface Fetch {
  proxyPort?: number;
  /** Let the proxy resolve the name (socks5h). */
  hostname?: boolean;
  maxTime?: number;
}

/** What the echo server at `url` saw as our source, fetched by curl from `ns` (through the proxy when given). */
async function whoAmI(ns: string, url: string, f: Fetch = {}): Promise<string | null> {
  const maxTime = f.maxTime ?? 5;
  const via = f.proxyPort
    ? [f.hostname ? "--socks5-hostname" : "--socks5", `${ADDR.gwLan}:${f.proxyPort}`]
    : [];
  const r = await inNs(ns, ["curl", "-sS", "--max-time", String(maxTime), ...via, url], {
    allowFail: true,
    timeoutMs: (maxTime + 5) * 1000,
  });
  return r.code === 0 ? r.stdout.trim() : null;
}

const ECHO = `http://${ADDR.server}/`;
const viaProxy = (maxTime = 5) => whoAmI(NS.pod, ECHO, { proxyPort: PROXY_PORT, maxTime });
const proxyWorks = async () => (await viaProxy(2)) === ADDR.exitPublic;

function expectEqual(what: string, got: unknown, want: unknown): void {
  if (got !== want) throw new Error(`${what}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
}

async function counter(name: string): Promise<number> {
  const r = await inNs(NS.inet, ["nft", "list", "counter", "inet", LEAK_TABLE, name]);
  const m = /packets (\d+)/.exec(r.stdout);
  if (!m) throw new Error(`cannot read counter ${name}: ${r.stdout}`);
  return Number(m[1]);
}
const leakCount = () => counter(LEAK_COUNTER);

const isProxy = (argv: string[]) => argv.includes(MAIN_JS) && argv.includes("proxy");
/** The proxies must survive every break (recovery without restarting them). */
const proxyPids = () => pidsInNamespace(NS.gw, isProxy).join(",");

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function status(): Promise<{
  present: boolean;
  killSwitchArmed: boolean;
  route: { tunnel4: boolean };
}> {
  const r = await cli(NS.gw, ["gateway", "status", "--json"], { allowFail: true });
  return JSON.parse(r.stdout);
}

/** Waits (bounded) until the pod gets out through the exit again; returns how long it took from `t0`. */
async function recovered(what: string, t0: number, timeoutMs = 30_000): Promise<number> {
  await waitFor(`recovery after "${what}"`, timeoutMs, proxyWorks);
  return Date.now() - t0;
}

async function startAgentAndRecover(what: string): Promise<string> {
  const t0 = Date.now();
  startAgent();
  return `${what}: agent started, recovered in ${seconds(await recovered(what, t0))}`;
}

async function viaExit(): Promise<string> {
  expectEqual("pod via proxy sees", await viaProxy(), ADDR.exitPublic);
  const own0 = await counter(OWN_COUNTER);
  expectEqual(
    "gateway's own traffic sees",
    await whoAmI(NS.gw, `http://${ADDR.server}:${CONTROL_PORT}/`),
    ADDR.gwWan,
  );
  // The counters must see the home line at all, or "0 leaked" would prove nothing.
  if ((await counter(OWN_COUNTER)) === own0)
    throw new Error("the counters did not see the gateway's own request");
  return `pod sees ${ADDR.exitPublic}, gateway sees ${ADDR.gwWan}`;
}

/** The DNS servers' logs: which source asked for `name`. */
export function askedBy(log: string, name: string): string[] {
  return readFileSync(log, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { dns: string; from: string })
    .filter((q) => q.dns === name)
    .map((q) => q.from);
}

async function dns(): Promise<string> {
  const name = () => `n${randomBytes(4).toString("hex")}.wgelab.example`;
  const atExit = name();
  expectEqual(
    `socks5h ${atExit} (the exit's resolver) sees`,
    await whoAmI(NS.pod, `http://${atExit}/`, { proxyPort: PROXY_PORT, hostname: true }),
    ADDR.exitPublic,
  );
  const sources = [...new Set(askedBy(SERVERS_LOG, atExit))];
  expectEqual(`the internet's DNS server was asked for ${atExit} by`, sources.join(","), ADDR.exitPublic);
  const onLan = name();
  expectEqual(
    `socks5h ${onLan} (the LAN resolver) sees`,
    await whoAmI(NS.pod, `http://${onLan}/`, { proxyPort: PROXY_LAN_DNS_PORT, hostname: true }),
    ADDR.exitPublic,
  );
  expectEqual(
    `the LAN resolver was asked for ${onLan} by`,
    [...new Set(askedBy(LAN_DNS_LOG, onLan))].join(","),
    ADDR.gwLan,
  );
  expectEqual(`the internet's DNS server asked for ${onLan}`, askedBy(SERVERS_LOG, onLan).length, 0);
  return `exit's resolver: asked from ${ADDR.exitPublic}; LAN resolver ${ADDR.lanDns}: asked from ${ADDR.gwLan} on the LAN`;
}

async function wanSubnet(): Promise<string> {
  const url = `http://${ADDR.inetHome}/`;
  expectEqual(
    `${url} (on the home WAN's subnet) through the proxy sees`,
    await whoAmI(NS.pod, url, { proxyPort: PROXY_PORT }),
    ADDR.exitPublic,
  );
  // Without the agent and with the nft table flushed, routing alone keeps the proxy off the WAN.
  await stopAgent();
  await inNs(NS.gw, ["nft", "flush", "ruleset"]);
  const route = (await inNs(NS.gw, ["ip", "route", "get", ADDR.inetHome, "uid", String(PROXY_UID)])).stdout;
  if (!route.includes(`dev ${GW_IF}`))
    throw new Error(`without nft the proxy's route to ${ADDR.inetHome} is: ${route.trim()}`);
  for (const u of [url, ECHO]) {
    const seen = await whoAmI(NS.pod, u, { proxyPort: PROXY_PORT, maxTime: 3 });
    if (seen === ADDR.gwWan) throw new Error(`nft flushed: ${u} through the proxy saw the home address`);
  }
  return `sees ${ADDR.exitPublic}; with nft flushed and no agent the proxy's route is still ${GW_IF}, nothing left via the WAN; ${await startAgentAndRecover("nft flushed")}`;
}

async function idle(port: number, secs: number) {
  const r = await inNs(
    NS.pod,
    [
      process.execPath,
      PROBE_JS,
      "idle",
      ADDR.gwLan,
      String(port),
      ADDR.server,
      String(LINE_PORT),
      String(secs),
    ],
    { allowFail: true, timeoutMs: (secs + 30) * 1000 },
  );
  return r.stdout.trim();
}

async function idleSurvival(): Promise<string> {
  const secs = Math.round(EXIT_CONNTRACK_TIMEOUT * 2.5);
  const [withKa, without] = await Promise.all([idle(PROXY_PORT, secs), idle(PROXY_NO_KEEPALIVE_PORT, secs)]);
  expectEqual(`line after ${secs} s idle with keepalive`, withKa, "PING wgelab");
  expectEqual(`line after ${secs} s idle without keepalive (proves keepalive matters)`, without, "timeout");
  return `idle ${secs} s, exit conntrack timeout ${EXIT_CONNTRACK_TIMEOUT} s`;
}

async function forbidden(): Promise<string> {
  const targets: [string, number][] = [
    ["127.0.0.1", HTTP_PORT],
    [ADDR.gwLan, PROXY_PORT],
    ["169.254.169.254", HTTP_PORT],
  ];
  for (const [ip, port] of targets)
    expectEqual(`SOCKS reply for ${ip}:${port}`, await probeConnect(PROXY_PORT, ip, port), 2);
  return targets.map(([ip]) => ip).join(", ");
}

/** The agent's repair lines so far. */
const repairLines = () =>
  readFileSync(AGENT_LOG, "utf8")
    .split("\n")
    .filter((l) => l.includes('"event":"repair"'));

/** Kills wireguard-go (with kernel WireGuard there is no daemon: the interface is deleted instead). */
async function killWireguard(): Promise<void> {
  const pid = findUserspacePid(GW_IF);
  if (pid === null) await inNs(NS.gw, ["ip", "link", "del", GW_IF]);
  else process.kill(pid, "SIGKILL");
}

const breaks: { name: string; brk: () => Promise<unknown> }[] = [
  {
    name: "link flap",
    brk: async () => {
      await inNs(NS.gw, ["ip", "link", "set", GW_IF, "down"]);
      await inNs(NS.gw, ["ip", "link", "set", GW_IF, "up"]);
    },
  },
  { name: "wireguard-go killed", brk: killWireguard },
  {
    name: "tunnel route deleted",
    brk: () => inNs(NS.gw, ["ip", "route", "del", "default", "dev", GW_IF, "table", "51820"]),
  },
  // The uid rule: without it the proxy's first route lookup is main's (the kill switch then refuses).
  { name: "ip rule deleted", brk: () => inNs(NS.gw, ["ip", "-4", "rule", "del", "priority", "5184"]) },
  { name: "nft ruleset flushed", brk: () => inNs(NS.gw, ["nft", "flush", "ruleset"]) },
];

async function selfRepair(): Promise<string> {
  const proxies = proxyPids();
  const notes: string[] = [];
  for (const b of breaks) {
    const before = repairLines().length;
    const t0 = Date.now();
    await b.brk();
    await waitFor(
      `the agent repairing "${b.name}"`,
      RECOVERY_MS,
      async () => repairLines().length > before && (await proxyWorks()),
    );
    const worked = Date.now() - t0;
    const lines = repairLines()
      .slice(before)
      .map((l) => JSON.parse(l) as { what: string; time: number });
    const repaired = Math.max(...lines.map((l) => l.time)) - t0;
    const st = await status();
    if (!st.killSwitchArmed || !st.route.tunnel4) throw new Error(`after "${b.name}": ${JSON.stringify(st)}`);
    notes.push(
      `${b.name}: repaired (${[...new Set(lines.map((l) => l.what))].join(", ")}) ${seconds(repaired)} after the break, proxy working after ${seconds(worked)}`,
    );
  }
  expectEqual("proxy PIDs (not restarted)", proxyPids(), proxies);
  return notes.join("; ");
}

/** With the agent stopped (SIGTERM, as systemctl stop): the kill switch stays and every break fails closed. */
const outages: { name: string; brk: () => Promise<unknown>; undo?: () => Promise<unknown> }[] = [
  { name: "tunnel interface down", brk: () => inNs(NS.gw, ["ip", "link", "set", GW_IF, "down"]) },
  { name: "wireguard-go killed", brk: killWireguard },
  {
    name: "exit unreachable",
    brk: () => inNs(NS.inet, ["ip", "link", "set", "vps0", "down"]),
    undo: () => inNs(NS.inet, ["ip", "link", "set", "vps0", "up"]),
  },
];

async function killSwitch(): Promise<string> {
  const proxies = proxyPids();
  const notes: string[] = [];
  for (const o of outages) {
    await stopAgent();
    if (agentPids().length) throw new Error("the agent did not stop on SIGTERM");
    if (!(await status()).killSwitchArmed) throw new Error("the kill switch went with the agent");
    await o.brk();
    const t0 = Date.now();
    for (let i = 0; i < 2; i++) {
      const seen = await viaProxy(4);
      if (seen !== null) throw new Error(`${o.name}: a proxied request succeeded and saw ${seen}`);
    }
    const failedIn = (Date.now() - t0) / 2;
    await o.undo?.();
    notes.push(`${o.name}: request failed in ${seconds(failedIn)}; ${await startAgentAndRecover(o.name)}`);
  }
  expectEqual("proxy PIDs (not restarted)", proxyPids(), proxies);
  return notes.join("; ");
}

/**
 * Control: without our kill switch (no unreachable route, no nft table: the seed design) the same break
 * leaks the home address — so the zero counts elsewhere are the kill switch's doing.
 */
async function seedLeakControl(): Promise<string> {
  await stopAgent();
  await inNs(NS.gw, ["ip", ...unreachableRouteArgs("-4", "del", 51820)]);
  await inNs(NS.gw, ["nft", "delete", "table", "inet", NFT_TABLE]);
  await inNs(NS.gw, ["ip", "link", "set", GW_IF, "down"]);
  const before = await leakCount();
  const seen = await viaProxy(4);
  const leaked = (await leakCount()) - before;
  expectEqual("control without kill switch: the pod sees", seen, ADDR.gwWan);
  if (leaked === 0) throw new Error("the leak counter did not count the control's leak");
  return `leaked ${seen} (${leaked} packets counted) as expected; ${await startAgentAndRecover("control")}`;
}

async function downWithProxy(): Promise<string> {
  const refusedWhileAgent = await cli(NS.gw, ["gateway", "down"], { allowFail: true });
  if (refusedWhileAgent.code !== 1 || !/agent .* is running/.test(refusedWhileAgent.stderr))
    throw new Error(`down while the agent runs: exit ${refusedWhileAgent.code}: ${refusedWhileAgent.stderr}`);
  await stopAgent();
  await cli(NS.gw, ["gateway", "down"]);
  const st = await status();
  if (st.present || !st.killSwitchArmed) throw new Error(`after down: ${JSON.stringify(st)}`);
  const t0 = Date.now();
  const seen = await viaProxy(4);
  if (seen !== null) throw new Error(`after down a proxied request saw ${seen}`);
  const failedIn = Date.now() - t0;
  const purge = await cli(NS.gw, ["gateway", "down", "--purge"], { allowFail: true });
  if (purge.code !== 1 || !new RegExp(`uid ${PROXY_UID} still run`).test(purge.stderr))
    throw new Error(`down --purge with the proxy running: exit ${purge.code}: ${purge.stderr}`);
  if (!(await status()).killSwitchArmed) throw new Error("the refused --purge changed something");
  return `refused while the agent runs; after down the proxy's request failed in ${seconds(failedIn)}; --purge refused (proxy running); ${await startAgentAndRecover("down")}`;
}

/** The home line gets a new address (as from DHCP): the tunnel follows by itself. */
async function wanIpChange(): Promise<string> {
  const change = async (from: string, to: string) => {
    await inNs(NS.gw, ["ip", "address", "del", `${from}/24`, "dev", "wan0"]);
    await inNs(NS.gw, ["ip", "address", "add", `${to}/24`, "dev", "wan0"]);
    await inNs(NS.gw, ["ip", "route", "replace", "default", "via", ADDR.inetHome]);
  };
  const t0 = Date.now();
  await change(ADDR.gwWan, "198.51.100.3");
  const ms = await recovered("WAN IP change", t0, 60_000);
  const t1 = Date.now();
  await change("198.51.100.3", ADDR.gwWan);
  const back = await recovered("WAN IP change back", t1, 60_000);
  return `the proxy works again ${seconds(ms)} after the home address changed (and ${seconds(back)} after it changed back)`;
}

async function downClean(): Promise<string> {
  await labDown();
  const left = await labLeftovers();
  if (left.length) throw new Error(`left behind: ${left.join(", ")}`);
  return "no namespace, interface, process, socket, runtime file or state dir left";
}

interface Scenario {
  name: string;
  run: () => Promise<string>;
  /** Removes the kill switch on purpose: must leak (it checks that itself). */
  leaks?: boolean;
}

export const SCENARIOS: Scenario[] = [
  { name: "1 pod egress via the exit, gateway via home WAN", run: viaExit },
  { name: "2 names resolved at the exit, or by a LAN resolver when configured", run: dns },
  { name: "3 a destination on the WAN's own subnet goes through the tunnel", run: wanSubnet },
  { name: "4 forbidden destinations refused", run: forbidden },
  { name: "5 idle connection survival (keepalive on vs off)", run: idleSurvival },
  { name: "6 the agent repairs by itself within 10 s", run: selfRepair },
  { name: "7 agent stopped: the kill switch stays and fails closed, no leak", run: killSwitch },
  { name: "8 control: the seed design without our kill switch leaks", run: seedLeakControl, leaks: true },
  { name: "9 gateway down with the proxy running", run: downWithProxy },
  { name: "10 home WAN IP change", run: wanIpChange },
  { name: "11 lab down leaves nothing behind", run: downClean },
];

/** Runs every scenario, printing PASS/FAIL lines; true when all passed. */
export async function runScenarios(
  out: (line: string) => void,
  only?: (name: string) => boolean,
): Promise<boolean> {
  let ok = true;
  for (const s of SCENARIOS) {
    if (only && !only(s.name)) continue;
    const t0 = Date.now();
    const last = s === SCENARIOS.at(-1);
    const before = last ? 0 : await leakCount().catch(() => 0);
    try {
      const note = await s.run();
      const leaked = last ? 0 : (await leakCount()) - before;
      if (leaked && !s.leaks) throw new Error(`${leaked} packet(s) from the home line leaked (${note})`);
      out(`PASS ${s.name} (${seconds(Date.now() - t0)}): ${note}${last || s.leaks ? "" : "; 0 leaked"}`);
    } catch (e) {
      ok = false;
      out(`FAIL ${s.name} (${seconds(Date.now() - t0)}): ${errorMessage(e)}`);
    }
  }
  return ok;
}
