import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { ADDR, HTTP_PORT, LINE_PORT } from "./topology.js";

/**
 * The lab's "internet" servers, run inside wgelab-inet as `node servers.js`:
 * - HTTP on 192.0.2.80:80 answers with the caller's source IP as plain text (what the exit's masquerade shows);
 * - an IRC-like line server on 192.0.2.80:6667: after "WAIT <seconds>" it stays silent that long, then
 *   sends "PING wgelab" — the server speaking first after a long idle time, as IRC servers do.
 */

const plainIp = (a: string | undefined) => (a ?? "").replace(/^::ffff:/, "");

createHttpServer((req, res) => {
  res.writeHead(200, { "content-type": "text/plain" }).end(`${plainIp(req.socket.remoteAddress)}\n`);
}).listen(HTTP_PORT, ADDR.server);

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
