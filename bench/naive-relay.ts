/**
 * The reference point for "what Node itself costs": the smallest SOCKS5 relay one would write with
 * net and pipe(), no policy, limits, logs or metrics (no auth, CONNECT to IPv4 or a name). The
 * benchmark runs it beside wg-egress so each report shows how much of a gap to the C proxies is
 * Node's own per-connection and per-byte cost. Not part of the product.
 *
 *   node dist/bench/naive-relay.js PORT   (listens on 127.0.0.1:PORT)
 */
import net from "node:net";

const METHOD_NO_AUTH = Buffer.from([5, 0]);
const SUCCEEDED = Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);

function destination(req: Buffer): { host: string; port: number } | undefined {
  if (req[3] === 1 && req.length >= 10)
    return { host: [...req.subarray(4, 8)].join("."), port: req.readUInt16BE(8) };
  if (req[3] === 3 && req.length >= 7 + req[4]) {
    return { host: req.toString("latin1", 5, 5 + req[4]), port: req.readUInt16BE(5 + req[4]) };
  }
}

net
  .createServer({ noDelay: true }, (client) => {
    client.on("error", () => client.destroy());
    client.once("data", (greeting: Buffer) => {
      if (greeting[0] !== 5) return void client.destroy();
      client.write(METHOD_NO_AUTH);
      client.once("data", (req: Buffer) => {
        const to = destination(req);
        if (!to) return void client.destroy();
        client.pause();
        const upstream = net.connect({ ...to, noDelay: true }, () => {
          client.write(SUCCEEDED);
          client.pipe(upstream).pipe(client);
          client.resume();
        });
        upstream.on("error", () => client.destroy());
        client.on("close", () => upstream.destroy());
      });
    });
  })
  .listen(Number(process.argv[2]), "127.0.0.1");
