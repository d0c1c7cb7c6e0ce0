/**
 * Make-before-break replacement of an exit, the proxy's side, with the real CLI and real sockets:
 * `exit drain` edits the config and reloads the proxy; an idle connection on the draining exit keeps
 * relaying both ways, new connections go to the replacement, and at the deadline the proxy closes what
 * is left on the drained exit. Loopback addresses stand in for the exits' tunnel addresses.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { cli } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";
import {
  curl,
  LOOPBACK_EXIT_ADDRESS as EXIT_ADDRESS,
  ipv4Request,
  LOOPBACK_EXITS,
  listen,
  type ProxyProcess,
  RawClient,
  startProxy,
  udpAssociation,
  writeHealth,
} from "./proxy-helpers.js";

before(() => requireTools("curl"));

let proxy: ProxyProcess;
let servers: Server[];
/** Answers with the source address (the exit), then closes. */
let whoPort: number;
/** An IRC-like peer: says the source address, then echoes every line until the client leaves. */
let ircPort: number;
let runDir: string;
let config: string;
let metricsAt: string;

before(async () => {
  const who = createServer((s) => {
    s.on("error", () => {});
    s.end(`${s.remoteAddress}\n`);
  });
  const irc = createServer((s) => {
    s.on("error", () => {});
    s.write(`${s.remoteAddress}\n`);
    s.pipe(s);
  });
  servers = [who, irc];
  whoPort = await listen(who);
  ircPort = await listen(irc);
  // A free port for the metrics: the command reads it from the config, as the proxy does.
  const probe = createServer();
  const metricsPort = await listen(probe);
  probe.close();
  metricsAt = `127.0.0.1:${metricsPort}`;
  const dir = tempDir("wgetest-drain-");
  runDir = join(dir, "run");
  mkdirSync(runDir);
  config = writeConfig(dir, {
    exits: LOOPBACK_EXITS,
    pools: { irc: ["hel", "ams"] },
    routes: {
      default: "fra",
      rules: [
        { users: ["bob"], to: "hel" },
        { users: ["carol"], to: "irc" },
      ],
    },
    proxy: {
      users: ["alice", "bob", "carol"].map((name) => ({ name, password: name })),
      destinations: { allow: ["127.0.0.1/32"] },
      // Names are not asked for here: a server nobody queries.
      dns: { servers: ["127.0.0.1:9"] },
      metrics: metricsAt,
    },
  });
  for (const x of LOOPBACK_EXITS) health(x.name, "up");
  proxy = await startProxy(["--config", config], { env: { WG_EGRESS_RUN_DIR: runDir } });
});

after(async () => {
  await proxy?.stop();
  for (const s of servers ?? []) s.close();
});

const health = (exit: string, state: "up" | "down", checkedAt?: number) =>
  writeHealth(runDir, exit, state, checkedAt);

const drainCli = (args: string[]) =>
  cli(["exit", ...args, "--config", config, "--proxy-pid", String(proxy.child.pid)], {
    env: { WG_EGRESS_RUN_DIR: runDir },
    timeoutMs: 60_000,
  });

/** The source address a new connection as `user` leaves from: its exit. */
const via = async (user: string) =>
  (
    await curl(["-x", `socks5://${user}:${user}@127.0.0.1:${proxy.port}`, `telnet://127.0.0.1:${whoPort}`])
  ).stdout.split("\n")[0];

/** A relayed connection as `user`, kept open: its exit's address already read. */
async function hold(user: string): Promise<{ c: RawClient; from: string }> {
  const c = await RawClient.open(proxy.port);
  c.send([5, 1, 2]);
  await c.read(2);
  c.send([1, user.length, ...Buffer.from(user), user.length, ...Buffer.from(user)]);
  assert.equal((await c.read(2))[1], 0, "authenticated");
  c.send(ipv4Request(ircPort));
  assert.equal((await c.read(10))[1], 0, "connected");
  const from = String(await c.read(EXIT_ADDRESS.hel.length + 1)).trim();
  return { c, from };
}

async function pingPong(c: RawClient, word: string): Promise<void> {
  c.send(Buffer.from(`PING ${word}\n`));
  assert.equal(String(await c.read(`PING ${word}\n`.length)), `PING ${word}\n`);
}

const metrics = async () => (await fetch(`http://${metricsAt}/metrics`)).text();
const value = (text: string, series: string) =>
  Number(new RegExp(`^${series.replace(/[{}]/g, "\\$&")} (\\S+)`, "m").exec(text)?.[1] ?? Number.NaN);

test("drain refuses an unhealthy replacement or a route left without one, and puts the file back when the proxy cannot be told", async () => {
  const before = readFileSync(config, "utf8");
  health("ams", "down");
  const down = await drainCli(["drain", "hel", "--to", "ams"]);
  assert.equal(down.code, 1, down.stderr);
  assert.match(down.stderr, /exit ams is not healthy .*nothing was changed/);
  health("ams", "up");
  const none = await drainCli(["drain", "hel"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /exit hel is named by routes\.rules\[0\]: .*give --to EXIT/);
  const wait = await cli([
    "exit",
    "drain",
    "hel",
    "--to",
    "fra",
    "--wait",
    "--no-reload",
    "--config",
    config,
  ]);
  assert.equal(wait.code, 2);
  assert.match(wait.stderr, /--wait counts the exit's connections/);
  // The proxy cannot be told (that process is gone): the file is put back.
  const gone = spawnSync("true").pid;
  const lost = await cli(
    ["exit", "drain", "hel", "--to", "fra", "--proxy-pid", String(gone), "--config", config],
    {
      env: { WG_EGRESS_RUN_DIR: runDir },
    },
  );
  assert.equal(lost.code, 1);
  assert.match(lost.stderr, /cannot signal the proxy .*ESRCH; .* is back as it was/);
  assert.equal(readFileSync(config, "utf8"), before);
  assert.equal(value(await metrics(), 'wg_egress_proxy_exit_draining{exit="hel",to=""}'), 0);
});

test("an idle connection on the draining exit keeps relaying; new ones go to the replacement; the deadline closes it", async () => {
  health("fra", "up"); // fresh: the command checks the replacement's report
  assert.equal(await via("bob"), EXIT_ADDRESS.hel);
  const idle = await hold("bob");
  assert.equal(idle.from, EXIT_ADDRESS.hel);
  const udp = await udpAssociation(proxy.port, "bob", "bob");
  assert.equal(await udp.ask(), EXIT_ADDRESS.hel);
  const drained = await drainCli(["drain", "hel", "--to", "fra"]);
  assert.equal(drained.code, 0, drained.stderr);
  assert.match(drained.stdout, /exit hel drains: new connections go to fra/);
  assert.match(drained.stdout, /exit hel: 1 connection\(s\) open/);
  assert.match(readFileSync(config, "utf8"), /drain:\n\s+to: fra/);
  await proxy.waitLog((l) => l.msg === "config reloaded");

  // Established: data still flows both ways, on hel. New: bob to fra, the pool skips hel.
  await pingPong(idle.c, "after-drain");
  assert.equal(await via("bob"), EXIT_ADDRESS.fra);
  for (let i = 0; i < 3; i++) assert.equal(await via("carol"), EXIT_ADDRESS.ams);
  assert.equal(await via("alice"), EXIT_ADDRESS.fra);
  let text = await metrics();
  assert.equal(value(text, 'wg_egress_proxy_exit_draining{exit="hel",to="fra"}'), 1);
  assert.equal(value(text, 'wg_egress_proxy_exit_draining{exit="fra",to=""}'), 0);
  assert.equal(value(text, 'wg_egress_proxy_exit_open_connections{exit="hel"}'), 1);
  await pingPong(idle.c, "still");
  assert.equal(await udp.ask(), EXIT_ADDRESS.hel, "an established UDP association keeps its exit too");

  // A deadline: --wait returns once the proxy has closed what is left on hel.
  health("fra", "up");
  const waited = await drainCli(["drain", "hel", "--to", "fra", "--deadline", "3s", "--wait"]);
  assert.equal(waited.code, 0, waited.stderr);
  assert.match(waited.stdout, /the proxy closes what is left at 20/);
  assert.match(waited.stdout, /exit hel has no connections left/);
  await idle.c.untilClosed(10_000);
  await udp.c.untilClosed(10_000); // the association, by the exit its datagrams took
  udp.close();
  const line = await proxy.waitLog(
    (l) =>
      l.msg === "connection closed" && l.exit === "hel" && l.user === "bob" && l.result === "drain_deadline",
  );
  assert.equal(line.exit, "hel");
  await proxy.waitLog(
    (l) => l.msg === "exit drain deadline passed: closed its remaining connections" && l.closed === 2,
  );
  text = await metrics();
  assert.equal(value(text, 'wg_egress_proxy_exit_open_connections{exit="hel"}'), 0, "0, not absent");
  assert.ok(value(text, 'wg_egress_proxy_exit_drain_deadline_seconds{exit="hel"}') > 0);

  // The client reconnects and lands on the replacement; undrain brings hel back for new connections.
  const again = await hold("bob");
  assert.equal(again.from, EXIT_ADDRESS.fra);
  const undone = await drainCli(["undrain", "hel"]);
  assert.equal(undone.code, 0, undone.stderr);
  assert.doesNotMatch(readFileSync(config, "utf8"), /drain:/);
  assert.equal(await via("bob"), EXIT_ADDRESS.hel);
  await pingPong(again.c, "on-fra");
  again.c.close();
});
