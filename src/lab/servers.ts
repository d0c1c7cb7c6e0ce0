import { createSocket } from "node:dgram";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { ADDR, CONTROL_PORT, HTTP_PORT, LINE_PORT } from "./topology.js";

/**
 * The lab's servers, run as `node servers.js` inside wgelab-inet (the internet):
 * - HTTP on 192.0.2.80:80 (and :8080 for the gateway's own requests) and on 198.51.100.1:80 (an address on
 *   the home WAN's own subnet) answers with the caller's source IP as plain text;
 * - an IRC-like line server on 192.0.2.80:6667: after "WAIT <seconds>" it stays silent that long, then
 *   sends "PING wgelab" — the server speaking first after a long idle time, as IRC servers do;
 * - DNS on 192.0.2.53:53, authoritative for every name: A = 192.0.2.80, nothing else.
 * and as `node servers.js dns ADDRESS` inside wgelab-pod: the same DNS answers on the LAN. Every DNS
 * query is logged as a JSON line {"dns": name, "from": source address} on stdout.
 */

const plainIp = (a: string | undefined) => (a ?? "").replace(/^::ffff:/, "");

/** The question's name and where it ends (labels only: queries carry no compression pointers). */
function question(msg: Buffer): { name: string; end: number } | null {
  const labels: string[] = [];
  let i = 12;
  while (i < msg.length && msg[i] !== 0) {
    const len = msg[i];
    if (len > 63 || i + 1 + len > msg.length) return null;
    labels.push(msg.subarray(i + 1, i + 1 + len).toString("latin1"));
    i += 1 + len;
  }
  return i + 5 <= msg.length ? { name: labels.join("."), end: i + 5 } : null;
}

/** A DNS answer: the query's question, and for type A one record 192.0.2.80 (TTL 60). */
function answer(query: Buffer, q: { end: number }): Buffer {
  const isA = query.readUInt16BE(q.end - 4) === 1;
  const head = Buffer.alloc(12);
  head.writeUInt16BE(query.readUInt16BE(0), 0); // id
  head.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100), 2); // QR, AA, RD copied
  head.writeUInt16BE(1, 4); // one question
  head.writeUInt16BE(isA ? 1 : 0, 6);
  const record = Buffer.from([
    0xc0,
    12,
    0,
    1,
    0,
    1,
    0,
    0,
    0,
    60,
    0,
    4,
    ...ADDR.server.split(".").map(Number),
  ]);
  return Buffer.concat([head, query.subarray(12, q.end), ...(isA ? [record] : [])]);
}

function dnsServer(address: string): void {
  const sock = createSocket("udp4");
  sock.on("message", (msg, rinfo) => {
    const q = msg.length >= 12 ? question(msg) : null;
    if (!q) return;
    process.stdout.write(`${JSON.stringify({ dns: q.name.toLowerCase(), from: rinfo.address })}\n`);
    sock.send(answer(msg, q), rinfo.port, rinfo.address);
  });
  sock.bind(53, address);
}

const [mode, address] = process.argv.slice(2);
if (mode === "dns") dnsServer(address);
else {
  for (const [host, port] of [
    [ADDR.server, HTTP_PORT],
    [ADDR.server, CONTROL_PORT],
    [ADDR.inetHome, HTTP_PORT],
  ] as const)
    createHttpServer((req, res) => {
      res.writeHead(200, { "content-type": "text/plain" }).end(`${plainIp(req.socket.remoteAddress)}\n`);
    }).listen(port, host);

  createServer((sock) => {
    sock.on("error", () => {});
    let buf = "";
    sock.on("data", (d) => {
      buf += d.toString("utf8");
      const m = /^WAIT (\d+)\r?\n/.exec(buf);
      if (!m) return;
      buf = "";
      const timer = setTimeout(() => sock.write("PING wgelab\n"), Math.min(Number(m[1]), 600) * 1000);
      sock.once("close", () => clearTimeout(timer));
    });
  }).listen(LINE_PORT, ADDR.server);

  dnsServer(ADDR.dns);
}
