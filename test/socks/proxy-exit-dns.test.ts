/**
 * DNS per exit, the proxy's side (issue 13): each name is resolved by the resolver of the exit the
 * connection takes, its queries sent from that exit's tunnel address. Real processes: the proxy, curl,
 * two DNS responders on their own loopback addresses that answer differently and record the source
 * of every query. Loopback addresses stand in for the tunnel addresses (binding needs no privileges).
 */
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";
import {
  LOOPBACK_EXIT_ADDRESS as ADDRESS,
  curl,
  dnsStub,
  LOOPBACK_EXITS as EXITS,
  listen,
  type ProxyProcess,
  startProxy,
  udpSourceAs,
  writeHealth,
} from "./proxy-helpers.js";

before(() => requireTools("curl"));

/** Where a rule by destination sends connections: hel. */
const MOVED = "127.0.0.9";

let proxy: ProxyProcess;
let fraDns: Awaited<ReturnType<typeof dnsStub>>;
let otherDns: Awaited<ReturnType<typeof dnsStub>>;
const servers: Server[] = [];
let port: number;
let movedPort: number;
let runDir: string;

/** Answers with the source address of the connection: the exit it was bound to. */
async function whoAmIServer(host: string): Promise<number> {
  const s = createServer((c) => {
    c.on("error", () => {});
    c.end(`${c.remoteAddress}\n`);
  });
  servers.push(s);
  return listen(s, host);
}

before(async () => {
  port = await whoAmIServer("127.0.0.1");
  movedPort = await whoAmIServer(MOVED);
  // fra's resolver and the one hel and ams share: only the second knows only-b.test.
  fraDns = await dnsStub({ "name.test": "127.0.0.1", "moved.test": MOVED }, 0, "127.0.0.53");
  otherDns = await dnsStub(
    { "name.test": "127.0.0.1", "only-b.test": "127.0.0.1", "moved.test": MOVED },
    0,
    "127.0.0.54",
  );
  const dir = tempDir();
  runDir = join(dir, "run");
  mkdirSync(runDir);
  const config = writeConfig(dir, {
    exits: [
      { ...EXITS[0], dnsServers: [`127.0.0.53:${fraDns.port}`] },
      { ...EXITS[1], dnsServers: [`127.0.0.54:${otherDns.port}`] },
      { ...EXITS[2], dnsServers: [`127.0.0.54:${otherDns.port}`] },
    ],
    pools: { irc: ["hel", "ams"] },
    routes: {
      default: "fra",
      rules: [
        { destinations: [`${MOVED}/32`], to: "hel" },
        { users: ["alice"], to: "fra" },
        { users: ["bob"], to: "hel" },
        { users: ["carol"], to: "irc" },
      ],
    },
    proxy: {
      users: ["alice", "bob", "carol", "dave"].map((u) => ({ name: u, password: u[0] })),
      destinations: { allow: ["127.0.0.1/32", `${MOVED}/32`] },
      dns: { family: "ipv4only" },
    },
  });
  proxy = await startProxy(["--config", config, "--metrics", "127.0.0.1:0"], {
    env: { WG_EGRESS_RUN_DIR: runDir },
  });
});

after(async () => {
  await proxy?.stop();
  for (const s of servers) s.close();
  fraDns?.close();
  otherDns?.close();
});

/** curl as `user`, the name resolved by the proxy (socks5h). */
const via = (user: string, name: string, to = port) =>
  curl(["-x", `socks5h://${user}:${user[0]}@127.0.0.1:${proxy.port}`, `telnet://${name}:${to}`]);

/** The source addresses that asked `dns` for `name`. */
const askedBy = (dns: typeof fraDns, name: string) => [
  ...new Set(dns.queries.filter((q) => q.name === name).map((q) => q.from)),
];

const health = (exit: string, state: "up" | "down", checkedAt?: number) =>
  writeHealth(runDir, exit, state, checkedAt);

test("each user's names are asked by its exit's resolver, from its exit's tunnel address", async () => {
  assert.equal((await via("alice", "name.test")).stdout.trim(), ADDRESS.fra);
  assert.deepEqual(askedBy(fraDns, "name.test"), [ADDRESS.fra]);
  assert.deepEqual(askedBy(otherDns, "name.test"), [], "not asked by the other exit's resolver");
  assert.equal((await via("bob", "name.test")).stdout.trim(), ADDRESS.hel);
  assert.deepEqual(askedBy(otherDns, "name.test"), [ADDRESS.hel]);
  assert.deepEqual(askedBy(fraDns, "name.test"), [ADDRESS.fra], "fra's resolver did not see bob's name");
  // a name only exit two's resolver knows: bob reaches it, alice (fra's resolver) does not
  assert.equal((await via("bob", "only-b.test")).stdout.trim(), ADDRESS.hel);
  const r = await via("alice", "only-b.test");
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /\(4\)/, "reply 0x04: the name does not resolve at fra");
  assert.deepEqual(askedBy(fraDns, "only-b.test"), [ADDRESS.fra]);
  const line = await proxy.waitLog(
    (l) => l.msg === "connection closed" && l.user === "alice" && l.reply !== "succeeded",
  );
  assert.equal(line.exit, "fra", "the failed lookup names its exit");
  // HTTP CONNECT follows the same rule
  const h = await curl([
    "-p",
    "-x",
    `http://bob:b@127.0.0.1:${proxy.port}`,
    "-o",
    "/dev/null",
    "-w",
    "%{http_connect}",
    `http://only-b.test:${port}/`,
  ]);
  assert.equal(h.stdout, "200");
});

test("a pool member resolves its users' names; when it fails, the member they move to does", async () => {
  health("hel", "up");
  health("ams", "up");
  await new Promise((r) => setTimeout(r, 1100)); // the proxy re-reads health once a second
  const first = (await via("carol", "only-b.test")).stdout.trim();
  const [mine, other] = first === ADDRESS.hel ? ["hel", "ams"] : ["ams", "hel"];
  assert.equal(first, ADDRESS[mine]);
  const n = otherDns.queries.length;
  assert.equal((await via("carol", "name.test")).stdout.trim(), ADDRESS[mine]);
  assert.deepEqual(
    [...new Set(otherDns.queries.slice(n).map((q) => q.from))],
    [ADDRESS[mine]],
    "asked from the member's address",
  );
  health(mine, "down");
  await new Promise((r) => setTimeout(r, 1100));
  const m = otherDns.queries.length;
  assert.equal((await via("carol", "name.test")).stdout.trim(), ADDRESS[other]);
  assert.deepEqual([...new Set(otherDns.queries.slice(m).map((q) => q.from))], [ADDRESS[other]]);
  health(mine, "up");
});

test("a name whose address a rule sends to another exit is resolved again through that exit", async () => {
  assert.equal((await via("dave", "moved.test", movedPort)).stdout.trim(), ADDRESS.hel);
  assert.deepEqual(askedBy(fraDns, "moved.test"), [ADDRESS.fra], "first through dave's exit, the default");
  assert.deepEqual(askedBy(otherDns, "moved.test"), [ADDRESS.hel], "then through hel, whose answer is used");
});

test("UDP ASSOCIATE: a datagram to a name is resolved through the user's exit and leaves from it", async () => {
  const n = otherDns.queries.length;
  assert.equal(await udpSourceAs(proxy.port, "bob", "name.test"), ADDRESS.hel);
  assert.deepEqual(
    otherDns.queries.slice(n).map((q) => q.from),
    [ADDRESS.hel],
    "asked by hel's resolver from hel's address",
  );
});

test("metrics: name lookups by the exit that resolved them and their outcome", async () => {
  const at = String((await proxy.waitLog((l) => l.msg === "metrics listening")).address);
  const text = await (await fetch(`http://${at}/metrics`)).text();
  const count = (labels: string) =>
    Number(new RegExp(`^wg_egress_proxy_dns_seconds_count\\{${labels}\\} (\\d+)`, "m").exec(text)?.[1] ?? -1);
  assert.ok(count('exit="hel",outcome="ok"') >= 2, text);
  assert.ok(count('exit="fra",outcome="ok"') >= 2, text);
  assert.ok(count('exit="fra",outcome="ENOTFOUND"') >= 1, text);
});
