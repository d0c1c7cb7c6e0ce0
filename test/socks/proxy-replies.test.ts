/** Raw-socket cases for every reply code and malformed handshakes, against the proxy as a child process. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { after, before, test } from "node:test";
import { sleep } from "../support/poll.js";
import { PYTHON } from "../support/tools.js";
import {
  dnsStub,
  domainRequest,
  echoServer,
  ipv4Request,
  LOOPBACK_ALLOW,
  listen,
  type ProxyProcess,
  RawClient,
  socksConnect,
  startProxy,
} from "./proxy-helpers.js";

let proxy: ProxyProcess;
let echo: Awaited<ReturnType<typeof echoServer>>;
let dns: Awaited<ReturnType<typeof dnsStub>>;

before(async () => {
  echo = await echoServer();
  dns = await dnsStub({
    "known.test": "127.0.0.1",
    "rebind.test": "10.0.0.1",
    "metadata.test": "169.254.169.254",
  });
  proxy = await startProxy([
    ...LOOPBACK_ALLOW,
    "--deny-destination",
    "127.0.0.2/32",
    "--dns",
    `127.0.0.1:${dns.port}`,
    "--handshake-timeout",
    "1",
    "--connect-timeout",
    "1",
  ]);
});

after(async () => {
  await proxy.stop();
  echo.server.close();
  dns.close();
});

/** The proxy still serves a normal CONNECT (checked after every abuse). */
async function stillServes(): Promise<void> {
  const { rep, c } = await socksConnect(proxy.port, ipv4Request(echo.port));
  assert.equal(rep, 0);
  c.send(Buffer.from("alive"));
  assert.equal(String(await c.read(5)), "alive");
  c.close();
}

test("0x00: success reply carries the real bound address of the outbound socket", async () => {
  const c = await RawClient.open(proxy.port);
  c.send([5, 1, 0]);
  assert.deepEqual([...(await c.read(2))], [5, 0]);
  c.send(ipv4Request(echo.port));
  const reply = await c.read(10);
  assert.deepEqual([...reply.subarray(0, 8)], [5, 0, 0, 1, 127, 0, 0, 1]);
  const boundPort = reply.readUInt16BE(8);
  c.send(Buffer.from("x"));
  await c.read(1);
  assert.ok(
    echo.sockets.some((s) => s.remotePort === boundPort),
    `bound port ${boundPort} is not the echo's peer`,
  );
  c.close();
});

test("0x00 via a domain name resolved by the configured DNS server", async () => {
  const { rep, c } = await socksConnect(proxy.port, domainRequest("known.test", echo.port));
  assert.equal(rep, 0);
  c.close();
});

test("0x02: policy refusals (explicit deny, link-local metadata, DNS answer pointing inside)", async () => {
  for (const req of [
    ipv4Request(echo.port, [127, 0, 0, 2]),
    ipv4Request(80, [169, 254, 169, 254]),
    domainRequest("rebind.test", 80),
    domainRequest("metadata.test", 80),
    [5, 1, 0, 4, ...Buffer.from("00000000000000000000ffffa9fea9fe", "hex"), 0, 80], // ::ffff:169.254.169.254
  ]) {
    const { rep, c } = await socksConnect(proxy.port, req);
    assert.equal(rep, 2, `request ${req}`);
    await c.untilClosed();
  }
  const line = await proxy.waitLog((l) => l.destination === "rebind.test:80");
  assert.equal(line.result, "refused");
  assert.match(String(line.why), /10\.0\.0\.1 is private/);
});

test("0x04: a name that does not resolve (NXDOMAIN from the stub)", async () => {
  const { rep, c } = await socksConnect(proxy.port, domainRequest("nonexistent.invalid", 80));
  assert.equal(rep, 4);
  c.close();
});

test("0x05: connection refused by the destination", async () => {
  const s = createServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  const { rep, c } = await socksConnect(proxy.port, ipv4Request(port));
  assert.equal(rep, 5);
  c.close();
});

test("0x06: connect timeout (destination whose accept queue is full drops the SYN)", async () => {
  // A listener with backlog 0 that never accepts, its queue filled: further SYNs go unanswered.
  const script = [
    "import socket, sys, time",
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)",
    "port = s.getsockname()[1]",
    "fill = []",
    "for i in range(4):",
    "    c = socket.socket(); c.setblocking(False)",
    "    try: c.connect(('127.0.0.1', port))",
    "    except BlockingIOError: pass",
    "    fill.append(c)",
    "time.sleep(0.3); print(port, flush=True); sys.stdin.read()",
  ].join("\n");
  const py = spawn(PYTHON, ["-c", script], { stdio: ["pipe", "pipe", "inherit"] });
  try {
    const [out] = await once(py.stdout, "data");
    const { rep, c } = await socksConnect(proxy.port, ipv4Request(Number(String(out).trim())));
    assert.equal(rep, 6);
    c.close();
  } finally {
    py.stdin.end();
    py.kill();
  }
});

test("0x07: BIND and unknown commands are not supported", async () => {
  for (const cmd of [2, 9]) {
    const { rep, c } = await socksConnect(proxy.port, ipv4Request(echo.port, [127, 0, 0, 1], cmd));
    assert.equal(rep, 7);
    c.close();
  }
});

test("0x08: unknown address type", async () => {
  const { rep, c } = await socksConnect(proxy.port, [5, 1, 0, 9, 1, 2, 3, 4, 0, 80]);
  assert.equal(rep, 8);
  await c.untilClosed();
});

test("malformed handshakes are closed and the server keeps serving", async () => {
  // wrong version (SOCKS4) and unknown first byte: closed without a byte of answer
  for (const bytes of [
    [4, 1, 0, 80, 127, 0, 0, 1, 0],
    [0x16, 3, 1, 0, 5],
  ]) {
    const c = await RawClient.open(proxy.port);
    c.send(bytes);
    assert.equal((await c.untilClosed()).length, 0);
  }
  // zero methods: "no acceptable method"
  const zero = await RawClient.open(proxy.port);
  zero.send([5, 0]);
  assert.deepEqual([...(await zero.read(2))], [5, 0xff]);
  await zero.untilClosed();
  // zero-length domain: general failure
  const { rep, c } = await socksConnect(proxy.port, [5, 1, 0, 3, 0, 0, 80]);
  assert.equal(rep, 1);
  await c.untilClosed();
  // wrong version in the request
  const badReq = await RawClient.open(proxy.port);
  badReq.send([5, 1, 0]);
  await badReq.read(2);
  badReq.send([4, 1, 0, 1, 127, 0, 0, 1, 0, 80]);
  await badReq.untilClosed();
  // truncated, then the client goes away
  const trunc = await RawClient.open(proxy.port);
  trunc.send([5, 2, 0]);
  trunc.close();
  await stillServes();
});

test("random garbage never takes the server down", async () => {
  let seed = 42;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let i = 0; i < 40; i++) {
    const c = await RawClient.open(proxy.port);
    const bytes = Buffer.alloc(1 + (rand() % 300));
    for (let k = 0; k < bytes.length; k++) bytes[k] = rand() & 0xff;
    if (i % 2 === 0) bytes[0] = 5; // half of them get past the version check
    c.send(bytes);
    c.socket.end();
    await c.untilClosed(3000).catch(() => c.close());
  }
  await stillServes();
});

test("a silent client is closed by the handshake timeout", async () => {
  const c = await RawClient.open(proxy.port);
  assert.equal((await c.untilClosed(5000)).length, 0);
  await proxy.waitLog((l) => l.result === "handshake_timeout");
});

test("a client trickling its greeting byte by byte is closed after the handshake timeout too", async () => {
  const c = await RawClient.open(proxy.port);
  c.send([5, 255]); // announces 255 methods, then sends one every 300 ms (each resets the idle timer)
  let sent = 0;
  while (!c.closed && sent < 30) {
    await sleep(300);
    c.send([0]);
    sent++;
  }
  assert.ok(c.closed, "still open after 9 s of trickling");
  assert.equal((await c.untilClosed()).length, 0);
});

test("bytes sent together with the request (before the reply) reach the destination", async () => {
  const c = await RawClient.open(proxy.port);
  c.send(Buffer.concat([Buffer.from([5, 1, 0]), Buffer.from(ipv4Request(echo.port)), Buffer.from("early")]));
  assert.deepEqual([...(await c.read(2))], [5, 0]);
  assert.equal((await c.read(10))[1], 0);
  assert.equal(String(await c.read(5)), "early");
  c.close();
});

test("a handshake split into one-byte writes still connects, and the bytes are kept in order", async () => {
  const c = await RawClient.open(proxy.port);
  c.socket.setNoDelay(true);
  const hello = Buffer.concat([
    Buffer.from([5, 2, 0, 2]),
    Buffer.from(ipv4Request(echo.port)),
    Buffer.from("ping"),
  ]);
  for (const b of hello) {
    c.send([b]);
    await sleep(5); // separate reads on the proxy's side: each partial message is kept across reads
  }
  assert.deepEqual([...(await c.read(2))], [5, 0]);
  assert.equal((await c.read(10))[1], 0);
  assert.equal(String(await c.read(4)), "ping");
  c.close();
});
