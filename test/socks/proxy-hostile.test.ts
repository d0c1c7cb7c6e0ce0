/**
 * Hostile clients against the proxy as a child process (issue 9): names that crashed it, names that
 * slipped past the domain rules, refusals that told the client what a name resolves to, and a
 * fast-check fuzz of destination names over real sockets (SOCKS5, HTTP CONNECT, UDP).
 */
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { createServer } from "node:net";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { serializeUdpHeader } from "../../src/socks/protocol.js";
import { until } from "../support/poll.js";
import {
  dnsStub,
  domainRequest,
  echoServer,
  httpConnect,
  ipv4Request,
  LOOPBACK_ALLOW,
  listen,
  openAssociation,
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
  dns = await dnsStub({ "known.test": "127.0.0.1", "inside.test": "10.0.0.5" });
  proxy = await startProxy([...LOOPBACK_ALLOW, "--dns", `127.0.0.1:${dns.port}`, "--handshake-timeout", "2"]);
});

after(async () => {
  await proxy.stop();
  echo.server.close();
  dns.close();
});

/** The proxy is still there and relays (checked after every abuse). */
async function stillServes(): Promise<void> {
  assert.equal(proxy.child.exitCode, null, "the proxy exited");
  const { rep, c } = await socksConnect(proxy.port, ipv4Request(echo.port));
  assert.equal(rep, 0);
  c.send(Buffer.from("alive"));
  assert.equal(String(await c.read(5)), "alive");
  c.close();
}

/** A datagram for `host:port` (host written as a name, ATYP 3, whatever it contains). */
function nameDatagram(host: string, port: number, text: string): Buffer {
  const name = Buffer.from(host, "latin1");
  return Buffer.concat([
    Buffer.from([0, 0, 0, 3, name.length]),
    name,
    Buffer.from([port >> 8, port & 255, ...Buffer.from(text)]),
  ]);
}

test("issue 9.1: a name with an IPv6 zone id (SOCKS ATYP 3) gets reply 0x01, and the proxy lives on", async () => {
  for (const name of ["::ffff:1.2.3.4%a.b", "::1%ffff:", "fe80::1%lo"]) {
    const { rep, c } = await socksConnect(proxy.port, domainRequest(name, 80));
    assert.equal(rep, 1, name);
    await c.untilClosed();
  }
  const line = await proxy.waitLog((l) => l.msg === "connection closed" && l.result === "malformed");
  assert.match(String(line.why), /zone id/);
  await stillServes();
});

test("issue 9.1/9.2: UDP datagrams to a zone-id name or to port 0 are dropped; the association and the proxy live on", async () => {
  const { sock, c, relayPort } = await openAssociation(proxy.port);
  const got: Buffer[] = [];
  sock.on("message", (m) => got.push(m));
  sock.send(nameDatagram("::ffff:1.2.3.4%a.b", 53, "zone"), relayPort, "127.0.0.1");
  sock.send(
    Buffer.concat([serializeUdpHeader("127.0.0.1", 0), Buffer.from("port zero")]),
    relayPort,
    "127.0.0.1",
  );
  sock.send(nameDatagram("known.test", 0, "port zero by name"), relayPort, "127.0.0.1");
  // the association still relays: a UDP echo answers through it
  const udpEcho = createSocket("udp4");
  udpEcho.on("message", (m, from) => udpEcho.send(m, from.port, from.address));
  udpEcho.bind(0, "127.0.0.1");
  await once(udpEcho, "listening");
  try {
    sock.send(
      Buffer.concat([serializeUdpHeader("127.0.0.1", udpEcho.address().port), Buffer.from("after")]),
      relayPort,
      "127.0.0.1",
    );
    await until(
      () => got.some((m) => m.subarray(10).toString() === "after"),
      5000,
      "the association relays on",
    );
    assert.ok(!c.closed, "the control connection is open");
  } finally {
    c.close();
    sock.close();
    udpEcho.close();
  }
  await stillServes();
});

test("issue 9.4: a NUL in an HTTP CONNECT host is a 400, not a way past --deny-domain", async () => {
  // The system resolver (getaddrinfo) would read "localhost\0.example.com" as "localhost".
  const p = await startProxy(["--deny-domain", "localhost", "--allow-destination", "127.0.0.0/8"]);
  try {
    assert.equal((await httpConnect(p.port, `localhost\0.example.com:${echo.port}`)).status, 400);
    assert.equal((await httpConnect(p.port, `localhost:${echo.port}`)).status, 403);
    assert.equal((await httpConnect(p.port, `[::1%lo]:${echo.port}`)).status, 400);
    assert.equal((await httpConnect(p.port, `[127.0.0.1]:${echo.port}`)).status, 400);
    assert.equal((await httpConnect(p.port, `127.0.0.1:${echo.port}`)).status, 200);
    const line = await p.waitLog((l) => l.msg === "connection closed" && l.result === "malformed");
    assert.match(String(line.why), /invalid destination name/);
  } finally {
    await p.stop();
  }
});

test("issue 9.10: refusals tell the client the class of the reason, never a resolved address (the log keeps it)", async () => {
  const refused = await httpConnect(proxy.port, "inside.test:80");
  assert.equal(refused.status, 403);
  assert.ok(!refused.body.includes("10.0.0.5"), refused.body);
  assert.match(refused.body, /not allowed/);
  // A destination that refuses the connection: the errno text carries the address too.
  const s = createServer();
  const closedPort = await listen(s);
  await new Promise((r) => s.close(r));
  const failed = await httpConnect(proxy.port, `known.test:${closedPort}`);
  assert.equal(failed.status, 502);
  assert.ok(!failed.body.includes("127.0.0.1"), failed.body);
  const line = await proxy.waitLog((l) => l.destination === "inside.test:80");
  assert.match(String(line.why), /10\.0\.0\.5 is private/);
  assert.equal(line.resolved, undefined);
});

/**
 * A zone id: random text, or made of what Node's isIP accepts in one (letters, digits, '-', '.', ':'),
 * where ipaddr.js accepts only letters and digits: the mismatch behind the crash of issue 9.1.
 */
const zone = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.string({ unit: fc.constantFrom(..."aZ09-.:"), minLength: 1, maxLength: 8 }),
);

/** Names meant to break things: zone ids, NUL and control bytes, '%', brackets, unicode, numeric forms. */
const hostileName = fc.oneof(
  fc.tuple(fc.ipV6(), zone).map(([ip, z]) => `${ip}%${z}`),
  fc.tuple(fc.ipV4(), zone).map(([ip, z]) => `::ffff:${ip}%${z}`),
  fc.string({
    unit: fc.constantFrom("%", "\0", "[", "]", ":", ".", "a", "1", "-", " ", "\x7f", "é", "\u2028"),
    minLength: 1,
    maxLength: 30,
  }),
  fc.tuple(fc.domain(), fc.constantFrom("\0", "%", "\r\n", " ", "/")).map(([d, c]) => `localhost${c}${d}`),
  fc.oneof(fc.ipV4(), fc.ipV6()).map((ip) => `[${ip}]`),
  fc.nat(0xffffffff).map((n) => String(n)),
);

test("fuzz over real sockets: hostile names through SOCKS5, HTTP CONNECT and UDP never end the proxy", {
  timeout: 240_000,
}, async () => {
  // Every destination is denied, so that no name, whatever a proxy makes of it, leads to a connection.
  const p = await startProxy([
    "--deny-destination",
    "0.0.0.0/0",
    "--deny-destination",
    "::/0",
    "--dns",
    `127.0.0.1:${dns.port}`,
  ]);
  const names = fc.sample(hostileName, { numRuns: 150, seed: Number(process.env.HOSTILE_SEED ?? 9) });
  const { sock, c: control, relayPort } = await openAssociation(p.port);
  let sent = 0;
  try {
    for (const name of names) {
      const bytes = Buffer.from(name, "utf8");
      if (bytes.length > 255) continue;
      sent++;
      // SOCKS5: every request is answered (0x01 invalid, 0x02 refused, 0x04 no such name), never dropped.
      const s = await RawClient.open(p.port);
      s.send([5, 1, 0]);
      await s.read(2);
      s.send([5, 1, 0, 3, bytes.length, ...bytes, 0, 80]);
      const head = await s.read(2);
      assert.ok([1, 2, 4].includes(head[1]), `reply ${head[1]} for ${JSON.stringify(name)}`);
      s.close();
      // HTTP CONNECT: an answer, whatever it is
      const h = await RawClient.open(p.port);
      h.send(Buffer.concat([Buffer.from("CONNECT "), bytes, Buffer.from(":80 HTTP/1.1\r\n\r\n")]));
      assert.match(String(await h.untilClosed(5000)), /^HTTP\/1\.1 [45]\d\d /, JSON.stringify(name));
      h.close();
      // UDP: dropped or sent, never a crash
      sock.send(
        Buffer.concat([Buffer.from([0, 0, 0, 3, bytes.length]), bytes, Buffer.from([0, 53, 0x71])]),
        relayPort,
        "127.0.0.1",
      );
    }
    assert.ok(!control.closed, "the association lived through it");
    assert.equal(p.child.exitCode, null, "the proxy exited");
    // Each of those SOCKS connections left its line, and the line parses whatever the name held
    // (the server formats it by hand; a line that is not JSON is not in p.logs).
    const socksLines = () =>
      p.logs.filter((l) => l.msg === "connection closed" && l.protocol === "socks5" && l.result !== "ok")
        .length;
    await until(() => socksLines() >= sent, 5000, `${sent} SOCKS connection lines`);
    const { rep, c } = await socksConnect(p.port, ipv4Request(echo.port));
    assert.equal(rep, 2, "still answering");
    c.close();
  } finally {
    control.close();
    sock.close();
    await p.stop();
  }
});
