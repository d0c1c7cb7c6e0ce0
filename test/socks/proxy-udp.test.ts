/** UDP ASSOCIATE through PySocks and raw datagrams: relaying, policy per datagram, names via the proxy's DNS. */
import assert from "node:assert/strict";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { after, before, test } from "node:test";
import { parseUdpDatagram, serializeUdpHeader } from "../../src/socks/protocol.js";
import { run } from "../../src/util/run.js";
import { until } from "../support/poll.js";
import { requireTools } from "../support/tools.js";
import {
  dnsStub,
  ipv4Request,
  LOOPBACK_ALLOW,
  type ProxyProcess,
  RawClient,
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
  proxy = await startProxy([...LOOPBACK_ALLOW, "--dns", `127.0.0.1:${dns.port}`]);
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

/** Opens an association for a UDP socket of ours; returns it, the control connection and the relay address. */
async function openAssociation() {
  const sock = createSocket("udp4");
  sock.bind(0, "127.0.0.1");
  await once(sock, "listening");
  const c = await RawClient.open(proxy.port);
  c.send([5, 1, 0]);
  await c.read(2);
  c.send(ipv4Request(sock.address().port, [127, 0, 0, 1], 3));
  const reply = await c.read(10);
  assert.equal(reply[1], 0);
  const relayHost = `${reply[4]}.${reply[5]}.${reply[6]}.${reply[7]}`;
  return { sock, c, relayHost, relayPort: reply.readUInt16BE(8) };
}

const closedLogOf = (client: string) =>
  proxy.waitLog((l) => l.msg === "connection closed" && l.client === client);

test("raw datagrams: names resolved by the proxy, replies carry the source; refused destinations dropped", async () => {
  const { sock, c, relayHost, relayPort } = await openAssociation();
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
  const { sock, c, relayPort } = await openAssociation();
  assert.ok((await run("ss", ["-uanH"])).stdout.includes(`127.0.0.1:${relayPort} `), "relay socket bound");
  const client = `127.0.0.1:${c.socket.localPort}`;
  c.close();
  await closedLogOf(client);
  // its relay socket is gone
  const bound = async () => (await run("ss", ["-uanH"])).stdout.includes(`127.0.0.1:${relayPort} `);
  await until(async () => !(await bound()), 5000, "relay socket closed");
  sock.close();
});
