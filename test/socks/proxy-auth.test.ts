/** RFC 1929 username/password through real clients; credentials never reach the log. */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
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

test("issue 9.3: an empty or comment-only users file, or users: [], is a config error at start (exit 2, one line)", async () => {
  for (const text of ["", "# nobody yet\n\n"]) {
    const empty = writeTemp("users-empty", text);
    const r = await cli(["proxy", "--listen", "127.0.0.1:0", "--users", empty], { timeoutMs: 10_000 });
    assert.equal(r.code, 2, `${JSON.stringify(text)}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /has no users/);
  }
  const inline = writeTemp("config.yaml", "proxy:\n  listen: ['127.0.0.1:0']\n  users: []\n");
  const r = await cli(["proxy", "--config", inline], { timeoutMs: 10_000 });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /proxy\.users/);
  const both = writeTemp(
    "config.yaml",
    "proxy:\n  listen: ['127.0.0.1:0']\n  auth: none\n  users: [{ name: a, password: b }]\n",
  );
  const contradiction = await cli(["proxy", "--config", both], { timeoutMs: 10_000 });
  assert.equal(contradiction.code, 2, contradiction.stderr);
  assert.match(contradiction.stderr, /proxy\.auth is none but users are configured/);
});

/** RFC 1929 login and CONNECT to the HTTP server; the auth status (0 ok) and the reply code (-1 = none). */
async function login(port: number, user: string, pass: string): Promise<{ status: number; rep: number }> {
  const c = await RawClient.open(port);
  try {
    c.send([5, 1, 2]);
    const method = (await c.read(2))[1];
    if (method !== 2) return { status: -method, rep: -1 };
    c.send([1, user.length, ...Buffer.from(user), pass.length, ...Buffer.from(pass)]);
    const status = (await c.read(2))[1];
    if (status !== 0) return { status, rep: -1 };
    c.send([5, 1, 0, 1, 127, 0, 0, 1, http.port >> 8, http.port & 255]);
    return { status, rep: (await c.read(10))[1] };
  } finally {
    c.close();
  }
}

/** A client offering only "no authentication": the method the proxy chose (0xFF = refused). */
async function noAuthMethod(port: number): Promise<number> {
  const c = await RawClient.open(port);
  c.send([5, 1, 0]);
  const m = (await c.read(2))[1];
  c.close();
  return m;
}

test("issue 9.3: a reload that empties the users keeps the old users (error line); only auth: none opens access", async () => {
  const users = writeTemp("users", "carol:first-pass\n");
  const config = writeTemp(
    "config.yaml",
    `proxy:\n  usersFile: ${users}\n  destinations: { allow: ["127.0.0.0/8"] }\n`,
  );
  const p = await startProxy(["--config", config]);
  const reloadFailed = async (pattern: RegExp) => {
    const before = p.logs.length;
    p.child.kill("SIGHUP");
    const line = await p.waitLog((l) => p.logs.indexOf(l) >= before && /^config reload/.test(l.msg));
    assert.match(line.msg, /^config reload failed, keeping the previous config/);
    assert.match(line.msg, pattern);
    assert.equal(line.level, 50, "an error line");
  };
  try {
    assert.deepEqual(await login(p.port, "carol", "first-pass"), { status: 0, rep: 0 });
    for (const text of ["", "# all gone\n"]) {
      writeFileSync(users, text);
      await reloadFailed(/has no users/);
      assert.equal(await noAuthMethod(p.port), 0xff, "authentication is still required");
      assert.deepEqual(
        await login(p.port, "carol", "first-pass"),
        { status: 0, rep: 0 },
        "the old users still work",
      );
    }
    // inline users emptied
    writeFileSync(config, `proxy:\n  users: []\n  destinations: { allow: ["127.0.0.0/8"] }\n`);
    await reloadFailed(/proxy\.users/);
    assert.equal(await noAuthMethod(p.port), 0xff);
    // no users source left at all: refused unless the config says auth: none
    writeFileSync(config, `proxy:\n  destinations: { allow: ["127.0.0.0/8"] }\n`);
    await reloadFailed(/proxy\.auth: none/);
    assert.equal(await noAuthMethod(p.port), 0xff);
    writeFileSync(config, `proxy:\n  auth: none\n  destinations: { allow: ["127.0.0.0/8"] }\n`);
    p.child.kill("SIGHUP");
    await p.waitLog((l) => l.msg === "config reloaded");
    assert.equal(await noAuthMethod(p.port), 0, "open access, because the config says so");
  } finally {
    await p.stop();
  }
});
