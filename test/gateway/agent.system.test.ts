import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { expectedChains, NFT_TABLE } from "../../src/gateway/nft.js";
import { RUNTIME_DIR } from "../../src/gateway/runtime.js";
import { findUserspacePid } from "../../src/gateway/wireguard.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";
import { MAIN } from "../support/cli.js";
import { dataPath } from "../support/datapath.js";
import { type Daemon, freshNamespace, startIn, stop } from "../support/netns.js";
import { waitFor } from "../support/poll.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

before(() => requireTools("wg", "wireguard-go", "nft"));

/**
 * The real `gateway run` in a throwaway namespace: it applies, then every break we make is repaired by
 * itself (and logged as one JSON line per repair); `down` and a second agent are refused while it runs;
 * a DNS-name endpoint is re-resolved; SIGTERM stops it and the kill switch stays. The exit is absent
 * (no handshake): everything here is about the gateway's own state.
 */

const NS = "wgetest-ag";
const IF = "wgetest-ag0"; // wireguard-go sockets are host-wide: a name nothing else uses
const dir = tempDir("wgetest-ag-");
const config = join(dir, "config.yaml");
/** `ip netns exec` puts this file over /etc/hosts for the processes it starts: the exit's name lives here. */
const HOSTS = `/etc/netns/${NS}/hosts`;
const PEER = publicKeyOf(generatePrivateKey());

const sh = (argv: string[]) => execFileSync("ip", ["netns", "exec", NS, ...argv], { encoding: "utf8" });
const cli = (args: string[]) =>
  spawnSync("ip", ["netns", "exec", NS, process.execPath, MAIN, ...args, "--config", config], {
    encoding: "utf8",
    timeout: 30_000,
  });
const status = () => JSON.parse(cli(["gateway", "status", "--json"]).stdout);
let agent: Daemon | undefined;

/** The agent's log lines (JSON) since `from`. */
const logLines = (from = 0) =>
  agent!
    .output()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .slice(from)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** Everything repaired: the kill switch armed, the tunnel present and up with its route. */
const healthy = () => {
  const s = status();
  return s.killSwitchArmed && s.present && s.linkUp && s.route.tunnel4 && s.agent?.state === "ok";
};

before(() => {
  freshNamespace(NS);
  mkdirSync(`/etc/netns/${NS}`, { recursive: true });
  writeFileSync(HOSTS, "127.0.0.1 localhost\n192.0.2.10 exit.wgetest\n");
  const keyFile = join(dir, "gateway.key");
  writeFileSync(keyFile, `${generatePrivateKey()}\n`, { mode: 0o600 });
  writeFileSync(
    config,
    JSON.stringify({
      gateway: {
        interface: IF,
        privateKeyFile: keyFile,
        peer: { publicKey: PEER, endpoint: "exit.wgetest:51820" },
      },
    }),
  );
});

after(async () => {
  await stop(agent);
  const pid = findUserspacePid(IF);
  if (pid !== null) process.kill(pid, "SIGTERM");
  spawnSync("ip", ["netns", "exec", NS, "ip", "link", "del", IF]);
  spawnSync("ip", ["netns", "del", NS]);
  rmSync(`/etc/netns/${NS}`, { recursive: true, force: true });
  for (const f of [`${IF}.json`, `${IF}.agent.json`]) rmSync(join(RUNTIME_DIR, f), { force: true });
});

test("the agent applies, then repairs every break by itself, one log line per repair", {
  timeout: 240_000,
}, async () => {
  assert.equal(cli(["gateway", "up", "--killswitch-only"]).status, 0);
  agent = startIn(NS, [process.execPath, MAIN, "gateway", "run", "--config", config]);
  await waitFor("the agent up and healthy", 30_000, healthy, 200);
  // Its output arrives while we wait: read it the same way.
  await waitFor("the apply lines", 5_000, () =>
    logLines().some((l) => l.event === "apply" && l.what === "link"),
  );
  const pid = findUserspacePid(IF);
  const breaks: [string, string, () => unknown][] = [
    [
      "link flap",
      "route",
      () => {
        sh(["ip", "link", "set", IF, "down"]);
        sh(["ip", "link", "set", IF, "up"]);
      },
    ],
    ["link down", "link", () => sh(["ip", "link", "set", IF, "down"])],
    [
      "tunnel route deleted",
      "route",
      () => sh(["ip", "route", "del", "default", "dev", IF, "table", "51820"]),
    ],
    [
      "unreachable route deleted",
      "route",
      () =>
        sh(["ip", "-6", "route", "del", "unreachable", "default", "metric", "4294967295", "table", "51820"]),
    ],
    ["fwmark rule deleted", "rule", () => sh(["ip", "rule", "del", "priority", "5182"])],
    ["uid rule deleted", "rule", () => sh(["ip", "-6", "rule", "del", "priority", "5184"])],
    ["address deleted", "address", () => sh(["ip", "address", "flush", "dev", IF])],
    ["egress mark on the WireGuard socket", "wireguard", () => sh(["wg", "set", IF, "fwmark", "0xca6c"])],
    ["nft ruleset flushed", "nft", () => sh(["nft", "flush", "ruleset"])],
    ...expectedChains(dataPath({ ifname: IF })).map(({ name }): [string, string, () => unknown] => [
      `chain ${name} deleted`,
      "nft",
      () => sh(["nft", "delete", "chain", "inet", NFT_TABLE, name]),
    ]),
    ["wireguard-go killed", "link", () => process.kill(findUserspacePid(IF) ?? pid!, "SIGKILL")],
  ];
  for (const [what, part, brk] of breaks) {
    const from = logLines().length;
    brk();
    await waitFor(
      `the agent repairing "${what}"`,
      20_000,
      () => logLines(from).some((l) => l.event === "repair" && l.what === part) && healthy(),
      100,
    );
    const repairs = logLines(from).filter((l) => l.event === "repair");
    for (const r of repairs) {
      assert.equal(typeof r.cmd, "string", what);
      assert.equal(typeof r.step, "string", what);
      assert.doesNotMatch(JSON.stringify(r), /PrivateKey = [A-Za-z0-9+/]{43}=/);
    }
  }
  const report = status().agent;
  assert.ok(
    report.repairs.nft >= 8 && report.repairs.route >= 3 && report.repairs.rule >= 2,
    JSON.stringify(report),
  );
  assert.equal(
    report.failures,
    0,
    JSON.stringify(logLines().filter((l) => l.event === "repair-failed" || Number(l.level) >= 50)),
  );
});

test("while the agent runs, down and a second agent are refused", () => {
  const down = cli(["gateway", "down"]);
  assert.equal(down.status, 1);
  assert.match(down.stderr, /the gateway agent \(pid \d+\) is running and would bring wgetest-ag0 back/);
  const second = cli(["gateway", "run"]);
  assert.equal(second.status, 1);
  assert.match(second.stderr, /another gateway agent \(pid \d+\) already serves wgetest-ag0/);
  assert.equal(status().killSwitchArmed, true);
});

test("a DNS-name endpoint is looked up again while the handshake is stale", {
  timeout: 120_000,
}, async () => {
  assert.match(sh(["wg", "show", IF, "endpoints"]), /\t192\.0\.2\.10:51820/);
  const from = logLines().length;
  // Same file (the bind mount follows the inode): the name now points elsewhere.
  writeFileSync(HOSTS, "127.0.0.1 localhost\n192.0.2.11 exit.wgetest\n");
  await waitFor(
    "the new address",
    90_000,
    () => /\t192\.0\.2\.11:51820/.test(sh(["wg", "show", IF, "endpoints"])),
    500,
  );
  // The agent logs the repair once `wg set` has returned, and its line may still be in the pipe (this
  // process reads it only between polls): wait for it rather than race it.
  const endpointRepair = () => logLines(from).some((l) => l.event === "repair" && l.what === "endpoint");
  await waitFor("the endpoint repair's log line", 5_000, endpointRepair).catch(() => undefined);
  assert.ok(endpointRepair(), JSON.stringify(logLines(from)));
});

test("SIGTERM: the agent stops watching, the kill switch stays", async () => {
  await stop(agent);
  assert.equal(agent!.child.exitCode, 0, agent!.output());
  await waitFor("the last log line", 5_000, () =>
    logLines().some((l) => /the kill switch stays armed/.test(String(l.msg))),
  );
  const s = status();
  assert.equal(s.killSwitchArmed, true);
  assert.equal(s.agent, null);
  assert.ok(!existsSync(join(RUNTIME_DIR, `${IF}.agent.json`)));
  // Nothing repairs now: a flushed ruleset stays flushed (and down is allowed again).
  sh(["nft", "flush", "ruleset"]);
  assert.equal(status().killSwitchArmed, false);
  assert.equal(cli(["gateway", "down", "--purge"]).status, 0);
});

test("a repair that keeps failing is tried again once at once, then counted and backed off; the kill switch is armed all the same", {
  timeout: 90_000,
}, async () => {
  writeFileSync(
    config,
    JSON.stringify({
      gateway: {
        interface: IF,
        implementation: "userspace",
        privateKeyFile: join(dir, "gateway.key"),
        peer: { publicKey: PEER, endpoint: "exit.wgetest:51820" },
      },
    }),
  );
  // wireguard-go cannot make its TUN device where /dev/net/tun is /dev/null (a mount of this agent's
  // own: the host's device is untouched), so creating the link fails at every attempt.
  agent = startIn(NS, [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount --bind /dev/null /dev/net/tun && exec "$@"',
    "sh",
    process.execPath,
    MAIN,
    "gateway",
    "run",
    "--config",
    config,
  ]);
  const ofLink = (event: string) => logLines().filter((l) => l.event === event && l.what === "link");
  await waitFor(
    "two failed attempts after the retry",
    30_000,
    () => ofLink("repair-failed").length >= 2,
    200,
  );
  assert.equal(ofLink("repair-retry").length, 1, agent.output());
  const lines = logLines();
  const retryAt = lines.findIndex((l) => l.event === "repair-retry");
  assert.ok(retryAt < lines.findIndex((l) => l.event === "repair-failed"), "the retry comes first");
  // What went wrong, without wireguard-go's framed notice about kernel WireGuard.
  assert.match(String(ofLink("repair-failed")[0].error), /failed \(exit 1\): ERROR: .*TUN device/);
  assert.doesNotMatch(String(ofLink("repair-failed")[0].error), /│/);
  const [first, second] = ofLink("repair-failed").map((l) => Number(l.retryInSeconds));
  assert.ok(second > first, `backoff grows: ${first} s, then ${second} s`);
  const s = status();
  assert.equal(s.agent.state, "failing");
  assert.ok(s.agent.failures >= 2, JSON.stringify(s.agent));
  assert.equal(s.killSwitchArmed, true);
  assert.equal(spawnSync("ip", ["netns", "exec", NS, "ip", "link", "show", IF]).status, 1);
  await stop(agent);
  assert.equal(cli(["gateway", "down", "--purge"]).status, 0);
});
