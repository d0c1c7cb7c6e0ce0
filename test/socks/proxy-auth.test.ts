/** RFC 1929 username/password through real clients; credentials never reach the log. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { cli } from "../support/cli.js";
import { writeTemp } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";
import {
  connectStatus,
  curl,
  httpServer,
  LOOPBACK_ALLOW,
  type ProxyProcess,
  RawClient,
  startProxy,
} from "./proxy-helpers.js";

before(() => requireTools("curl"));

const PASSWORD = "correct-horse-7f3a";
let proxy: ProxyProcess;
let http: Awaited<ReturnType<typeof httpServer>>;

before(async () => {
  http = await httpServer("authed");
  const users = writeTemp("users", `# test users\nalice:${PASSWORD}\nbob:other:pw\n`);
  proxy = await startProxy([...LOOPBACK_ALLOW, "--users", users]);
});

after(async () => {
  await proxy.stop();
  http.server.close();
});

test("curl with the right credentials gets through", async () => {
  const r = await curl([
    "-x",
    `socks5://alice:${PASSWORD}@127.0.0.1:${proxy.port}`,
    `http://127.0.0.1:${http.port}/`,
  ]);
  assert.equal(r.stdout, "authed", r.stderr);
  const r2 = await curl([
    "-x",
    `socks5://bob:other%3Apw@127.0.0.1:${proxy.port}`,
    `http://127.0.0.1:${http.port}/`,
  ]);
  assert.equal(r2.stdout, "authed", r2.stderr);
});

test("a wrong password or unknown user is refused (auth status != 0, connection closed)", async () => {
  const r = await curl([
    "-x",
    `socks5://alice:wrong@127.0.0.1:${proxy.port}`,
    `http://127.0.0.1:${http.port}/`,
  ]);
  assert.notEqual(r.code, 0);
  assert.equal(r.stdout, "");
  const c = await RawClient.open(proxy.port);
  c.send([5, 1, 2]);
  assert.deepEqual([...(await c.read(2))], [5, 2]);
  c.send([1, 7, ...Buffer.from("mallory"), 2, ...Buffer.from("pw")]);
  assert.deepEqual([...(await c.read(2))], [1, 1]);
  await c.untilClosed();
  await proxy.waitLog((l) => l.result === "auth_failed");
});

test("a client offering only 'no authentication' gets 0xFF", async () => {
  const c = await RawClient.open(proxy.port);
  c.send([5, 1, 0]);
  assert.deepEqual([...(await c.read(2))], [5, 0xff]);
  await c.untilClosed();
});

test("HTTP CONNECT needs Proxy-Authorization when users are configured", async () => {
  const url = `http://127.0.0.1:${http.port}/`;
  assert.equal(await connectStatus(proxy.port, url), "407");
  const withCreds = await curl([
    "-p",
    "--proxy",
    `http://127.0.0.1:${proxy.port}`,
    "--proxy-user",
    `alice:${PASSWORD}`,
    url,
  ]);
  assert.equal(withCreds.stdout, "authed", withCreds.stderr);
});

test("no password ever appears in the log", () => {
  const text = proxy.logs.map((l) => JSON.stringify(l)).join("\n");
  assert.ok(proxy.logs.length > 3);
  assert.ok(!text.includes(PASSWORD));
  assert.ok(!text.includes("other:pw"));
});

test("a bad users file is a one-line error naming file:line, exit 2", async () => {
  const bad = writeTemp("users-bad", "alice:pw\nno-colon-here-secret\n");
  const r = await cli(["proxy", "--listen", "127.0.0.1:0", "--users", bad]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split("\n").length, 1);
  assert.ok(r.stderr.includes(`${bad}:2:`), r.stderr);
  assert.ok(!r.stderr.includes("secret"));
});
