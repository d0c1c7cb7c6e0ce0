/** UDP ASSOCIATE through PySocks and raw datagrams: relaying, policy per datagram, names via the proxy's DNS. */
import assert from "node:assert/strict";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { after, before, test } from "node:test";
import { parseUdpDatagram, serializeUdpHeader } from "../../src/socks/protocol.js";
import { MAX_PEERS } from "../../src/socks/udp.js";
import { run } from "../../src/util/run.js";
import { sleep, until } from "../support/poll.js";
import { requireTools } from "../support/tools.js";
import {
  dnsStub,
  LOOPBACK_ALLOW,
  openAssociation,
  type ProxyProcess,
  runPySocks,
  startProxy,
} from "./proxy-helpers.js";

before(() => requireTools("ss", "/usr/bin/python3"));

let proxy: ProxyProcess;
let echo: UdpSocket;
let echoPort: number;
let dns: Awaited<ReturnType<typeof dnsStub>>;

before(async () => {
  echo = createSocket("udp4");
  echo.on("message", (msg, from) => echo.send(msg, from.port, from.address));
  echo.bind(0, "127.0.0.1");
  await once(echo, "listening");
  echoPort = echo.address().port;
  dns = await dnsStub({ "known.test": "127.0.0.1", "inside.test": "10.0.0.1" });
  // A short handshake timeout: the control connection must outlive it (issue 9.12).
  proxy = await startProxy([...LOOPBACK_ALLOW, "--dns", `127.0.0.1:${dns.port}`, "--handshake-timeout", "1"]);
});

after(async () => {
  await proxy.stop();
  echo.close();
  dns.close();
});

test("PySocks UDP (SOCK_DGRAM over SOCKS5) round-trips through the association", async () => {
  const r = await runPySocks(proxy.port, "dgram", [
    `s.sendto(b"udp-ping", ("127.0.0.1", ${echoPort}))`,
    "data, addr = s.recvfrom(2048)",
    "sys.stdout.write(data.decode() + ' ' + str(addr[1]))",
  ]);
  assert.equal(r.stdout, `udp-ping ${echoPort}`, r.stderr);
});

const closedLogOf = (client: string) =>
  proxy.waitLog((l) => l.msg === "connection closed" && l.client === client);

test("raw datagrams: names resolved by the proxy, replies carry the source; refused destinations dropped", async () => {
  const { sock, c, relayHost, relayPort } = await openAssociation(proxy.port);
  assert.equal(relayHost, "127.0.0.1");
  const got: Buffer[] = [];
  sock.on("message", (m) => got.push(m));
  const sendVia = (host: string, port: number, text: string) =>
    sock.send(Buffer.concat([serializeUdpHeader(host, port), Buffer.from(text)]), relayPort, relayHost);

  sendVia("inside.test", echoPort, "refused-by-dns-answer");
  sendVia("10.0.0.1", 53, "refused-literal");
  sendVia("known.test", echoPort, "by-name");
  await until(() => got.length >= 1, 5000, "an answer");
  const d = parseUdpDatagram(got[0]);
  assert.equal(d.status, "ok");
  if (d.status !== "ok") return;
  assert.deepEqual([d.value.host, d.value.port, String(d.value.data)], ["127.0.0.1", echoPort, "by-name"]);
  const client = `127.0.0.1:${c.socket.localPort}`;
  c.close();
  const line = await closedLogOf(client);
  assert.equal(line.destination, "udp-associate");
  assert.equal(line.up, "by-name".length);
  assert.equal(line.down, "by-name".length);
  assert.equal(got.length, 1);
  sock.close();
});

test("the association ends with its TCP connection: its relay socket is closed", async () => {
  const { sock, c, relayPort } = await openAssociation(proxy.port);
  assert.ok((await run("ss", ["-uanH"])).stdout.includes(`127.0.0.1:${relayPort} `), "relay socket bound");
  const client = `127.0.0.1:${c.socket.localPort}`;
  c.close();
  await closedLogOf(client);
  // its relay socket is gone
  const bound = async () => (await run("ss", ["-uanH"])).stdout.includes(`127.0.0.1:${relayPort} `);
  await until(async () => !(await bound()), 5000, "relay socket closed");
  sock.close();
});

/** A UDP socket of the test's that answers every datagram with `reply(text)`. */
async function udpServer(host = "127.0.0.1", port = 0, reply = (text: string) => text) {
  const s = createSocket("udp4");
  s.on("message", (msg, from) => s.send(reply(String(msg)), from.port, from.address));
  s.bind(port, host);
  await once(s, "listening");
  return s;
}

test("issue 9.12: bytes on the control connection after the handshake timeout are ignored; the association lives on", async () => {
  const { sock, c, relayHost, relayPort } = await openAssociation(proxy.port);
  const got: string[] = [];
  sock.on("message", (m) => {
    const d = parseUdpDatagram(m);
    if (d.status === "ok") got.push(String(d.value.data));
  });
  await sleep(1500); // past the 1 s handshake timeout
  c.send(Buffer.from("stray bytes on the control connection"));
  await sleep(300);
  sock.send(
    Buffer.concat([serializeUdpHeader("127.0.0.1", echoPort), Buffer.from("still here")]),
    relayPort,
    relayHost,
  );
  await until(() => got.includes("still here"), 5000, "the association still relays");
  assert.ok(!c.closed, "the control connection is still open");
  c.close();
  sock.close();
});

test("issue 9.12: the association remembers at most MAX_PEERS destinations; the least recently used is forgotten", {
  timeout: 60_000,
}, async () => {
  const { sock, c, relayHost, relayPort } = await openAssociation(proxy.port);
  const got: string[] = [];
  sock.on("message", (m) => {
    const d = parseUdpDatagram(m);
    if (d.status === "ok") got.push(String(d.value.data));
  });
  const via = (host: string, port: number, text: string) =>
    sock.send(Buffer.concat([serializeUdpHeader(host, port), Buffer.from(text)]), relayPort, relayHost);
  // `first` answers at once, and once more later, when asked through another socket.
  let firstPeer: { port: number; address: string } | undefined;
  const first = createSocket("udp4");
  first.on("message", (m, from) => {
    firstPeer ??= { port: from.port, address: from.address };
    first.send(m, from.port, from.address);
  });
  first.bind(0, "127.0.0.1");
  await once(first, "listening");
  // A sink on one port of 0.0.0.0 receives what is sent to every 127.x.y.z: MAX_PEERS other destinations.
  let sunk = 0;
  const sink = createSocket("udp4");
  sink.on("message", () => sunk++);
  sink.bind(0, "0.0.0.0");
  await once(sink, "listening");
  const sinkPort = sink.address().port;
  try {
    via("127.0.0.1", first.address().port, "hello first");
    await until(() => got.includes("hello first"), 5000, "first answers");
    // In steps, so that no socket buffer overflows: each must reach the sink, i.e. be sent by the proxy.
    for (let i = 0; i < MAX_PEERS; i++) {
      via(`127.0.${2 + (i >> 8)}.${i & 255}`, sinkPort, "x");
      if (i % 32 === 31) await until(() => sunk > i, 5000, `datagram ${i} through the proxy`);
    }
    await until(() => sunk >= MAX_PEERS, 5000, "every datagram through the proxy");
    // `first` is now the least recently used of MAX_PEERS + 1: its late datagram is dropped. A fresh
    // destination's answer comes back after it on the same sockets (loopback keeps their order).
    first.send("late from first", firstPeer!.port, firstPeer!.address);
    const last = await udpServer();
    via("127.0.0.1", last.address().port, "after the late one");
    await until(() => got.includes("after the late one"), 5000, "a fresh destination answers");
    assert.ok(!got.includes("late from first"), "the forgotten destination's datagram was relayed");
    last.close();
  } finally {
    c.close();
    sock.close();
    first.close();
    sink.close();
  }
});
