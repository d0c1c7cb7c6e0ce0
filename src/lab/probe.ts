import { once } from "node:events";
import { connect, isIP, type Socket } from "node:net";

/**
 * A minimal SOCKS5 client for the lab scenarios, run inside wgelab-pod as `node probe.js …`. It reports
 * what curl hides: the proxy's reply code, and whether a line arrives after a long idle time.
 *   probe.js connect PROXY_HOST PROXY_PORT DST_IP DST_PORT      → prints the reply code (0 = succeeded)
 *   probe.js idle PROXY_HOST PROXY_PORT DST_IP DST_PORT SECONDS → "WAIT SECONDS" to the line server, then
 *                                                                 prints the line, or "timeout" (exit 1)
 */

function readBytes(sock: Socket, n: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error("timeout")), timeoutMs);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= n) done(null);
    };
    const onEnd = () => done(new Error(`closed after ${buf.length} bytes`));
    function done(err: Error | null) {
      clearTimeout(timer);
      // Paused between reads: bytes arriving while nobody listens would otherwise be lost.
      sock.pause().off("data", onData).off("end", onEnd).off("error", done);
      if (err) reject(err);
      else {
        if (buf.length > n) sock.unshift(buf.subarray(n));
        resolve(buf.subarray(0, n));
      }
    }
    sock.on("data", onData).on("end", onEnd).on("error", done).resume();
  });
}

/** Greets (no auth), sends CONNECT to an IPv4 address, returns the reply code and the socket. */
async function socksConnect(proxyHost: string, proxyPort: number, dst: string, dstPort: number) {
  if (isIP(dst) !== 4) throw new Error("probe takes IPv4 destinations only");
  const sock = connect(proxyPort, proxyHost);
  await once(sock, "connect");
  sock.write(Buffer.from([5, 1, 0]));
  const greet = await readBytes(sock, 2, 10_000);
  if (greet[0] !== 5 || greet[1] !== 0) throw new Error(`unexpected greeting reply ${greet.toString("hex")}`);
  const port = Buffer.alloc(2);
  port.writeUInt16BE(dstPort);
  sock.write(Buffer.concat([Buffer.from([5, 1, 0, 1, ...dst.split(".").map(Number)]), port]));
  const head = await readBytes(sock, 4, 15_000);
  const rep = head[1];
  if (rep === 0) await readBytes(sock, head[3] === 4 ? 18 : 6, 5_000); // bound address + port
  return { rep, sock };
}

const [mode, proxyHost, proxyPort, dst, dstPort, seconds] = process.argv.slice(2);
try {
  const { rep, sock } = await socksConnect(proxyHost, Number(proxyPort), dst, Number(dstPort));
  if (mode === "connect") {
    process.stdout.write(`${rep}\n`);
    sock.destroy();
  } else if (mode === "idle") {
    if (rep !== 0) throw new Error(`proxy replied ${rep}`);
    sock.write(`WAIT ${seconds}\n`);
    const line = await readBytes(sock, "PING wgelab\n".length, (Number(seconds) + 10) * 1000).catch(
      () => null,
    );
    process.stdout.write(line ? line.toString() : "timeout\n");
    sock.destroy();
    process.exitCode = line ? 0 : 1;
  } else throw new Error(`unknown mode ${mode}`);
} catch (e) {
  process.stdout.write(`error: ${(e as Error).message}\n`);
  process.exitCode = 2;
}
