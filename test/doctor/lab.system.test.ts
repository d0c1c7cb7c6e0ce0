import assert from "node:assert/strict";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parse, stringify } from "yaml";
import type { CheckResult } from "../../src/doctor/check.js";
import { stopAgent } from "../../src/lab/up.js";
import { run } from "../../src/util/run.js";
import { MAIN } from "../support/cli.js";
import { acquireLabLock } from "../support/lablock.js";
import { curlIn, type Daemon, inNs, startIn, stop } from "../support/netns.js";
import { waitFor } from "../support/poll.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

before(() => requireTools("curl", "flock", "setpriv", "wg", "wireguard-go", "nft", "ss"));

/**
 * doctor and the exporter in the lab (wg-egress lab up): all green on the working path (the agent
 * running), then — the agent stopped, so that nothing repairs — each breakage from the issue is
 * diagnosed: tunnel down, ip rule missing, a LAN resolver that rejects the proxy, proxy bound to 0.0.0.0. The lab is shared with
 * the lab's own tests: hold /tmp/wgelab.lock throughout. The lab's proxies admit only the pod, so
 * doctor (on the gateway itself) tests its own instance of our proxy: same uid 400, default client
 * allow-list (the LAN subnet), port 1083.
 */

const GW = "wgelab-gw";
const LAB_CONFIG = "/run/wgelab/config.yaml";
const ECHO = "http://192.0.2.80/";
const dir = tempDir("wgetest-doctor-lab-");
// The proxy (uid 400) reads its config from here.
chmodSync(dir, 0o755);
let lock: { release: () => void } | undefined;
const daemons: Daemon[] = [];

/** wg-egress inside the gateway namespace. */
const cli = (args: string[], timeoutMs = 60_000) =>
  run("ip", ["netns", "exec", GW, process.execPath, MAIN, ...args], { allowFail: true, timeoutMs });
/** `wg-egress lab …` runs in the host namespace (it creates the namespaces). */
const lab = (cmd: "up" | "down") =>
  run(process.execPath, [MAIN, "lab", cmd], { allowFail: true, timeoutMs: 180_000 });

/** The lab's config with our proxy's listen address (and its resolvers). */
function configWith(listen: string, name: string, dnsServers?: string[]): string {
  const config = parse(readFileSync(LAB_CONFIG, "utf8"));
  config.proxy.listen = [listen];
  if (dnsServers) config.proxy.dns = { servers: dnsServers };
  const path = join(dir, name);
  writeFileSync(path, stringify(config), { mode: 0o644 });
  return path;
}
let ours = "";
const asProxyUser = ["setpriv", "--reuid", "400", "--regid", "400", "--clear-groups"];

async function doctor(config = ours): Promise<{ code: number; results: CheckResult[] }> {
  const r = await cli(["doctor", "--config", config, "--json", "--ip-echo-url", ECHO, "--timeout", "5"]);
  return { code: r.code, results: JSON.parse(r.stdout) };
}
const verdicts = (results: CheckResult[]) => Object.fromEntries(results.map((r) => [r.name, r.verdict]));
const failing = (results: CheckResult[]) => results.filter((r) => r.verdict === "fail").map((r) => r.name);

const EXPORTER = "127.0.0.1:19587";
const scrape = () => waitFor("the exporter", 10_000, () => curlIn(GW, `http://${EXPORTER}/metrics`));
const gauge = (text: string, name: string, labels = "") =>
  Number(new RegExp(`^${name}\\{interface="wgelab-gw0"${labels}\\} (\\S+)$`, "m").exec(text)?.[1]);

/** Repairs with the product itself, then waits (bounded) until doctor is green again. */
async function repair(): Promise<void> {
  const up = await cli(["gateway", "up", "--config", LAB_CONFIG]);
  assert.equal(up.code, 0, up.stderr);
  await waitFor("doctor to pass again", 60_000, async () => ((await doctor()).code === 0 ? true : null));
}

before(async () => {
  lock = await acquireLabLock();
  const up = await lab("up");
  assert.equal(up.code, 0, `lab up: ${up.stderr}`);
  ours = configWith("10.1.0.1:1083", "ours.yaml");
  daemons.push(startIn(GW, [...asProxyUser, process.execPath, MAIN, "proxy", "--config", ours]));
  await waitFor("our proxy on 10.1.0.1:1083", 15_000, async () => {
    const ss = await inNs(GW, "ss", ["-Hltn", "sport = :1083"]);
    return ss.stdout.includes("10.1.0.1:1083") ? true : null;
  });
  daemons.push(
    startIn(GW, [
      process.execPath,
      MAIN,
      "metrics",
      "--config",
      ours,
      "--listen",
      EXPORTER,
      "--ip-check-url",
      ECHO,
      "--ip-check-interval",
      "10",
    ]),
  );
});

after(async () => {
  for (const d of daemons.splice(0)) await stop(d);
  if (lock) {
    await lab("down");
    lock.release();
  }
});

test("the working lab passes every check, and the exit IP is the exit's", async () => {
  const { code, results } = await doctor();
  assert.deepEqual(failing(results), []);
  assert.equal(code, 0);
  const v = verdicts(results);
  for (const name of [
    "tunnel handshake",
    "route table",
    "ip rule fwmark",
    "nft mark rule",
    "kill switch",
    "gateway agent",
    "proxy listening",
    "DNS through the tunnel",
    "exit IP through the proxy",
  ])
    assert.equal(v[name], "pass", name);
  assert.match(
    results.find((r) => r.name === "DNS through the tunnel")!.evidence,
    /resolved by 10\.100\.0\.1 through the tunnel \(the exit's resolver\)/,
  );
  assert.match(
    results.find((r) => r.name === "exit IP through the proxy")!.evidence,
    /sees 203\.0\.113\.10 through the proxy/,
  );
});

test("the exporter on the real gateway: up, kill switch armed, exit IP check ok", async () => {
  const text = await waitFor("an IP check result", 20_000, async () => {
    const t = await scrape();
    return /^wg_egress_exit_ip_check_ok\{/m.test(t) ? t : null;
  });
  assert.equal(gauge(text, "wg_egress_tunnel_state", ',state="up"'), 1);
  assert.equal(gauge(text, "wg_egress_killswitch_armed"), 1);
  assert.equal(gauge(text, "wg_egress_exit_ip_check_ok"), 1);
  assert.equal(gauge(text, "wg_egress_agent_state", ',state="ok"'), 1);
  assert.match(
    text,
    /^wireguard_latest_handshake_delay_seconds\{interface="wgelab-gw0",public_key="[^"]+",allowed_ips="0\.0\.0\.0\/0,::\/0"\} \d+$/m,
  );
});

test("tunnel down: interface, route, DNS and exit IP fail (refused by the kill switch, not leaked)", async () => {
  await stopAgent();
  const down = await inNs(GW, "ip", ["link", "set", "wgelab-gw0", "down"]);
  assert.equal(down.code, 0, down.stderr);
  const { code, results } = await doctor();
  assert.equal(code, 1);
  const f = failing(results);
  for (const name of [
    "tunnel interface",
    "route table",
    "DNS through the tunnel",
    "exit IP through the proxy",
  ])
    assert.ok(f.includes(name), `${name} in ${f}`);
  assert.equal(verdicts(results)["gateway agent"], "warn");
  assert.doesNotMatch(results.find((r) => r.name === "exit IP through the proxy")!.evidence, /LEAK/);
  assert.equal(verdicts(results)["kill switch"], "pass");
  assert.equal(gauge(await scrape(), "wg_egress_tunnel_state", ',state="down"'), 1);
  const health = await inNs(GW, "curl", [
    "-s",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    `http://${EXPORTER}/healthz`,
  ]);
  assert.equal(health.stdout, "503");
  await repair();
});

test("ip rule missing: the rule check and the kill switch fail; the path fails closed", async () => {
  const del = await inNs(GW, "ip", ["-4", "rule", "del", "priority", "5182"]);
  assert.equal(del.code, 0, del.stderr);
  const { code, results } = await doctor();
  assert.equal(code, 1);
  // Without the fwmark rule the marked replies fail the reverse-path check (src_valid_mark): no leak, no answer.
  assert.deepEqual(failing(results).sort(), ["exit IP through the proxy", "ip rule fwmark", "kill switch"]);
  assert.match(results.find((r) => r.name === "ip rule fwmark")!.evidence, /missing IPv4 rules/);
  assert.doesNotMatch(results.find((r) => r.name === "exit IP through the proxy")!.evidence, /LEAK/);
  await repair();
});

test("a LAN resolver: a warning while it answers (it sees the names), a failure when it rejects the proxy", async () => {
  const lan = configWith("10.1.0.1:1083", "lan-dns.yaml", ["10.1.0.53"]);
  const dnsResult = async () => (await doctor(lan)).results.find((r) => r.name === "DNS through the tunnel")!;
  const answering = await dnsResult();
  assert.equal(answering.verdict, "warn", answering.evidence);
  assert.match(answering.evidence, /resolved by 10\.1\.0\.53 on the LAN: that resolver sees every name/);
  const reject = await inNs("wgelab-pod", "nft", [
    "add table inet wgetest-dns; add chain inet wgetest-dns in { type filter hook input priority 0; }; add rule inet wgetest-dns in udp dport 53 reject",
  ]);
  assert.equal(reject.code, 0, reject.stderr);
  try {
    const rejected = await dnsResult();
    assert.equal(rejected.verdict, "fail", rejected.evidence);
    assert.match(rejected.evidence, /10\.1\.0\.53 got no answer/);
    assert.match(rejected.fix!, /the LAN resolver 10\.1\.0\.53 does not answer the proxy/);
  } finally {
    await inNs("wgelab-pod", "nft", ["delete", "table", "inet", "wgetest-dns"]);
  }
});

test("proxy bound to 0.0.0.0: doctor says every network reaches it", async () => {
  // The config says LAN address 10.1.0.1:1082; the process (uid 400, like a real proxy) listens on all.
  const wrong = configWith("10.1.0.1:1082", "wrong.yaml");
  const wide = startIn(GW, [...asProxyUser, "microsocks", "-i", "0.0.0.0", "-p", "1082"]);
  daemons.push(wide);
  await waitFor("microsocks on 0.0.0.0:1082", 10_000, async () => {
    const ss = await inNs(GW, "ss", ["-Hltn", "sport = :1082"]);
    return ss.stdout.includes("0.0.0.0:1082") ? true : null;
  });
  const { code, results } = await doctor(wrong);
  assert.equal(code, 1);
  assert.deepEqual(failing(results), ["proxy listening"]);
  assert.match(results.find((r) => r.name === "proxy listening")!.evidence, /0\.0\.0\.0:1082.*every network/);
  await stop(wide);
});
