import { NFT_TABLE, unreachableRouteArgs } from "../gateway/plan.js";
import { findUserspacePid } from "../gateway/wireguard.js";
import { errorMessage } from "../util/errors.js";
import { labDown, labLeftovers } from "./down.js";
import { PROBE_JS, pidsInNamespace } from "./processes.js";
import {
  ADDR,
  EXIT_CONNTRACK_TIMEOUT,
  GW_IF,
  HTTP_PORT,
  LEAK_COUNTER,
  LEAK_TABLE,
  LINE_PORT,
  NS,
  PROXY_NO_KEEPALIVE_PORT,
  PROXY_PORT,
} from "./topology.js";
import { cli, inNs, probeConnect, waitFor } from "./up.js";

/**
 * The end-to-end scenarios against a running lab. Each returns nothing or throws with what was
 * seen; every wait is bounded. The last one tears the lab down and checks nothing is left.
 */

const URL = `http://${ADDR.server}/`;

/** What the echo server saw as our source, fetched by curl from `ns` (through the proxy when given). */
async function whoAmI(ns: string, proxyPort?: number, maxTime = 5): Promise<string | null> {
  const via = proxyPort ? ["--socks5", `${ADDR.gwLan}:${proxyPort}`] : [];
  const r = await inNs(ns, ["curl", "-sS", "--max-time", String(maxTime), ...via, URL], {
    allowFail: true,
    timeoutMs: (maxTime + 5) * 1000,
  });
  return r.code === 0 ? r.stdout.trim() : null;
}

function expectEqual(what: string, got: unknown, want: unknown): void {
  if (got !== want) throw new Error(`${what}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
}

async function viaExit(): Promise<string> {
  expectEqual("pod via proxy sees", await whoAmI(NS.pod, PROXY_PORT), ADDR.exitPublic);
  expectEqual("gateway's own traffic sees", await whoAmI(NS.gw), ADDR.gwWan);
  return `pod sees ${ADDR.exitPublic}, gateway sees ${ADDR.gwWan}`;
}

async function leakCount(): Promise<number> {
  const r = await inNs(NS.inet, ["nft", "list", "counter", "inet", LEAK_TABLE, LEAK_COUNTER]);
  const m = /packets (\d+)/.exec(r.stdout);
  if (!m) throw new Error(`cannot read the leak counter: ${r.stdout}`);
  return Number(m[1]);
}

/** The proxy process on PROXY_PORT must survive every break (recovery without restarting it). */
function proxyPids(): number[] {
  return pidsInNamespace(NS.gw).filter((pid) => pid !== findUserspacePid(GW_IF));
}

interface Break {
  name: string;
  brk: () => Promise<unknown>;
  repair: () => Promise<unknown>;
}

const breaks: Break[] = [
  {
    name: "tunnel interface down",
    brk: () => inNs(NS.gw, ["ip", "link", "set", GW_IF, "down"]),
    repair: () => cli(NS.gw, ["gateway", "up"]),
  },
  {
    // With kernel WireGuard there is no daemon to kill: the interface disappears instead.
    name: "wireguard-go killed (kernel: interface deleted)",
    brk: async () => {
      const pid = findUserspacePid(GW_IF);
      if (pid === null) await inNs(NS.gw, ["ip", "link", "del", GW_IF]);
      else process.kill(pid, "SIGKILL");
      await waitFor(
        "tunnel interface gone",
        5000,
        async () => (await inNs(NS.gw, ["ip", "link", "show", GW_IF], { allowFail: true })).code !== 0,
      );
    },
    repair: () => cli(NS.gw, ["gateway", "up"]),
  },
  {
    name: "exit unreachable",
    brk: () => inNs(NS.inet, ["ip", "link", "set", "vps0", "down"]),
    repair: () => inNs(NS.inet, ["ip", "link", "set", "vps0", "up"]),
  },
];

async function killSwitch(): Promise<string> {
  const proxiesBefore = proxyPids().join(",");
  // The counter must see the home address at all, or "0 leaked" would prove nothing.
  const c0 = await leakCount();
  expectEqual("gateway's own request", await whoAmI(NS.gw), ADDR.gwWan);
  if ((await leakCount()) === c0) throw new Error("the leak counter did not count the gateway's own request");
  const notes: string[] = [];
  for (const b of breaks) {
    await b.brk();
    const before = await leakCount();
    const t0 = Date.now();
    for (let i = 0; i < 2; i++) {
      const seen = await whoAmI(NS.pod, PROXY_PORT, 4);
      if (seen !== null) throw new Error(`${b.name}: a proxied request succeeded and saw ${seen}`);
    }
    const failedIn = (Date.now() - t0) / 2000;
    const leaked = (await leakCount()) - before;
    if (leaked !== 0)
      throw new Error(`${b.name}: ${leaked} packet(s) from the home WAN address reached the internet`);
    const t1 = Date.now();
    await b.repair();
    await waitFor(
      `recovery after "${b.name}"`,
      30_000,
      async () => (await whoAmI(NS.pod, PROXY_PORT, 2)) === ADDR.exitPublic,
    );
    notes.push(
      `${b.name}: request failed in ${failedIn.toFixed(1)} s, 0 leaked, recovered in ${((Date.now() - t1) / 1000).toFixed(1)} s`,
    );
  }
  expectEqual("proxy PIDs (not restarted)", proxyPids().join(","), proxiesBefore);
  notes.push(await seedLeakControl());
  return notes.join("; ");
}

/**
 * Control: without our kill switch (no unreachable route, no nft table: the seed design) the same break
 * leaks the home address — so the zero counts above are the kill switch's doing.
 */
async function seedLeakControl(): Promise<string> {
  await inNs(NS.gw, ["ip", ...unreachableRouteArgs("-4", "del", 51820)]);
  await inNs(NS.gw, ["nft", "delete", "table", "inet", NFT_TABLE]);
  await inNs(NS.gw, ["ip", "link", "set", GW_IF, "down"]);
  const seen = await whoAmI(NS.pod, PROXY_PORT, 4);
  await cli(NS.gw, ["gateway", "up"]);
  expectEqual("control without kill switch: the pod sees", seen, ADDR.gwWan);
  await waitFor(
    "recovery after the control",
    30_000,
    async () => (await whoAmI(NS.pod, PROXY_PORT, 2)) === ADDR.exitPublic,
  );
  return `control without kill switch leaked ${seen} as expected`;
}

async function idle(port: number, seconds: number) {
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
      String(seconds),
    ],
    {
      allowFail: true,
      timeoutMs: (seconds + 30) * 1000,
    },
  );
  return r.stdout.trim();
}

async function idleSurvival(): Promise<string> {
  const seconds = Math.round(EXIT_CONNTRACK_TIMEOUT * 2.5);
  const [withKa, without] = await Promise.all([
    idle(PROXY_PORT, seconds),
    idle(PROXY_NO_KEEPALIVE_PORT, seconds),
  ]);
  expectEqual(`line after ${seconds} s idle with keepalive`, withKa, "PING wgelab");
  expectEqual(
    `line after ${seconds} s idle without keepalive (proves keepalive matters)`,
    without,
    "timeout",
  );
  return `idle ${seconds} s, exit conntrack timeout ${EXIT_CONNTRACK_TIMEOUT} s`;
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

async function downClean(): Promise<string> {
  await labDown();
  const left = await labLeftovers();
  if (left.length) throw new Error(`left behind: ${left.join(", ")}`);
  return "no namespace, interface, process, socket or state dir left";
}

export const SCENARIOS: { name: string; run: () => Promise<string> }[] = [
  { name: "1 pod egress via the exit, gateway via home WAN", run: viaExit },
  { name: "4 forbidden destinations refused", run: forbidden },
  { name: "3 idle connection survival (keepalive on vs off)", run: idleSurvival },
  { name: "2 kill switch: fail closed, no leak, recovery", run: killSwitch },
  { name: "5 lab down leaves nothing behind", run: downClean },
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
    try {
      const note = await s.run();
      out(`PASS ${s.name} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${note}`);
    } catch (e) {
      ok = false;
      out(`FAIL ${s.name} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${errorMessage(e)}`);
    }
  }
  return ok;
}
