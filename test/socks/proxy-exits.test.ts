/** Several exits, the proxy's side: each connection is bound to its exit's tunnel address, by route. */
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";
import {
  curl,
  EXIT_ADDRESS,
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

const EXITS = LOOPBACK_EXITS;
const ADDRESS = EXIT_ADDRESS;

let proxy: ProxyProcess;
let server: Server;
let serverPort: number;
let runDir: string;

/** Answers with the source address the connection came from: the exit it was bound to. */
before(async () => {
  server = createServer((s) => {
    s.on("error", () => {});
    s.end(`${s.remoteAddress}\n`);
  });
  serverPort = await listen(server);
  const dir = tempDir();
  runDir = join(dir, "run");
  mkdirSync(runDir);
  const config = writeConfig(dir, {
    exits: EXITS,
    pools: { irc: ["hel", "ams"] },
    routes: {
      default: "fra",
      rules: [
        { users: ["alice"], to: "fra" },
        { users: ["bob"], to: "hel" },
        { users: ["carol"], ports: [serverPort], to: "irc" },
      ],
    },
    proxy: {
      users: [
        { name: "alice", password: "a" },
        { name: "bob", password: "b" },
        { name: "carol", password: "c" },
        { name: "dave", password: "d" },
      ],
      destinations: { allow: ["127.0.0.1/32", "::1/128"] },
    },
  });
  proxy = await startProxy(["--config", config, "--metrics", "127.0.0.1:0"], {
    env: { WG_EGRESS_RUN_DIR: runDir },
  });
});

after(async () => {
  await proxy.stop();
  server.close();
});

const via = (user: string, path = "socks5") =>
  curl(["-x", `${path}://${user}:${user[0]}@127.0.0.1:${proxy.port}`, `telnet://127.0.0.1:${serverPort}`]);

const health = (exit: string, state: "up" | "down", checkedAt?: number) =>
  writeHealth(runDir, EXITS.find((e) => e.name === exit)!, state, checkedAt);

test("each user's connection leaves from its exit's tunnel address; the rest take the default", async () => {
  assert.equal((await via("alice")).stdout.trim(), ADDRESS.fra);
  assert.equal((await via("bob")).stdout.trim(), ADDRESS.hel);
  assert.equal((await via("dave")).stdout.trim(), ADDRESS.fra, "no rule: the default");
  const line = await proxy.waitLog((l) => l.msg === "connection closed" && l.user === "bob");
  assert.equal(line.exit, "hel");
});

test("a pool uses a healthy member, sticks to it, and refuses at once when none is healthy", async () => {
  health("hel", "up");
  health("ams", "up");
  await new Promise((r) => setTimeout(r, 1100)); // the proxy re-reads health once a second
  const first = (await via("carol")).stdout.trim();
  assert.ok([ADDRESS.hel, ADDRESS.ams].includes(first), first);
  for (let i = 0; i < 3; i++) assert.equal((await via("carol")).stdout.trim(), first, "sticky");
  const [mine, other] = first === ADDRESS.hel ? ["hel", "ams"] : ["ams", "hel"];
  health(mine, "down");
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await via("carol")).stdout.trim(), ADDRESS[other], "moved to the healthy member");
  assert.equal((await via("bob")).stdout.trim(), ADDRESS.hel, "a single-exit route never moves");
  health(other, "down");
  await new Promise((r) => setTimeout(r, 1100));
  const r = await via("carol");
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /SOCKS5 connection to 127\.0\.0\.1\. \(3\)/, "reply 0x03, network unreachable");
  const refused = await proxy.waitLog((l) => l.msg === "connection closed" && l.result === "no_exit");
  assert.match(String(refused.why), /no healthy exit in pool irc/);
  // HTTP CONNECT gets 503
  const h = await curl([
    "-p",
    "-x",
    `http://carol:c@127.0.0.1:${proxy.port}`,
    "-o",
    "/dev/null",
    "-w",
    "%{http_connect}",
    `http://127.0.0.1:${serverPort}/`,
  ]);
  assert.equal(h.stdout, "503");
  // restored: back to the member it had
  health(mine, "up");
  health(other, "up");
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await via("carol")).stdout.trim(), first, "new connections go back");
});

test("an exit without an IPv6 tunnel address refuses IPv6 destinations instead of leaving elsewhere", async () => {
  const r = await curl(["-x", `socks5://alice:a@127.0.0.1:${proxy.port}`, "telnet://[::1]:9/"]);
  assert.equal(r.stdout, "");
  const line = await proxy.waitLog(
    (l) => l.msg === "connection closed" && /IPv6 tunnel address/.test(String(l.why)),
  );
  assert.equal(line.exit, "fra");
});

test("UDP ASSOCIATE: each datagram leaves from the user's exit too", async () => {
  const udp = await udpAssociation(proxy.port, "bob", "b");
  assert.equal(await udp.ask(), ADDRESS.hel);
  udp.close();
});

test("metrics per exit: finished connections, bytes and open connections by exit", async () => {
  const at = String((await proxy.waitLog((l) => l.msg === "metrics listening")).address);
  const held = await RawClient.open(proxy.port);
  held.send([5, 1, 2]);
  await held.read(2);
  held.send([1, 5, ...Buffer.from("alice"), 1, ...Buffer.from("a")]);
  await held.read(2);
  held.send(ipv4Request(serverPort));
  assert.equal((await held.read(10))[1], 0);
  const text = await (await fetch(`http://${at}/metrics`)).text();
  const value = (series: string) => Number(new RegExp(`^${series} (\\d+)`, "m").exec(text)?.[1] ?? -1);
  assert.ok(value('wg_egress_proxy_exit_connections_total{exit="hel",result="ok"}') >= 1, text);
  assert.ok(value('wg_egress_proxy_exit_connections_total{exit="none",result="no_exit"}') >= 1);
  assert.ok(value('wg_egress_proxy_exit_bytes_total{exit="fra",direction="down"}') > 0);
  assert.equal(value('wg_egress_proxy_exit_open_connections{exit="fra"}'), 1, "alice's open connection");
  held.close();
});
