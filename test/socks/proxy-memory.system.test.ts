/**
 * Memory the proxy holds for clients that stop reading (issue 9.6): its large read buffers come from
 * one process-wide budget, and a stalled leg keeps no buffer of its own beyond its pending write.
 * Runs in a network namespace of its own (root) whose TCP buffers are capped, so that the stalled
 * connections cost the shared machine a bounded amount of kernel memory.
 */
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { after, test } from "node:test";
import { run } from "../../src/util/run.js";
import { insideIsolatedNetns } from "../support/netns.js";
import { sleep, until } from "../support/poll.js";
import {
  ipv4Request,
  LOOPBACK_ALLOW,
  listen,
  type ProxyProcess,
  type RawClient,
  rssBytes,
  socksConnect,
  startProxy,
} from "./proxy-helpers.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Caps this namespace's TCP buffers (min, default, max bytes). */
async function tcpBuffers(rmem: number[], wmem: number[]): Promise<void> {
  const r = await run("sysctl", [
    "-w",
    `net.ipv4.tcp_rmem=${rmem.join(" ")}`,
    `net.ipv4.tcp_wmem=${wmem.join(" ")}`,
  ]);
  assert.equal(r.code, 0, r.stderr);
}

/** Writes `chunk` again and again as long as the socket takes it, up to `total` bytes; waits on backpressure. */
function stream(s: Socket, chunk: Buffer, total: number): void {
  let sent = 0;
  const more = () => {
    while (sent < total) {
      sent += chunk.length;
      if (!s.write(chunk)) return void s.once("drain", more);
    }
  };
  more();
}

/** Waits until the proxy's RSS stops growing (no change over 1.5 s), bounded; returns it. */
async function settledRss(proxy: ProxyProcess): Promise<number> {
  let last = rssBytes(proxy.child.pid!);
  let still = 0;
  const deadline = Date.now() + 60_000;
  while (still < 3 && Date.now() < deadline) {
    await sleep(500);
    const now = rssBytes(proxy.child.pid!);
    still = Math.abs(now - last) < 256 * KiB ? still + 1 : 0;
    last = now;
  }
  return last;
}

/** The relay's large buffers, from /metrics. */
async function relayBuffers(at: string): Promise<number> {
  const text = await (await fetch(`http://${at}/metrics`)).text();
  return Number(/^wg_egress_proxy_relay_buffer_bytes (\d+)/m.exec(text)?.[1]);
}

if (insideIsolatedNetns(import.meta.url, 900_000)) {
  const sockets: Socket[] = [];
  after(() => {
    for (const s of sockets) s.destroy();
  });
  const chunk = Buffer.alloc(256 * KiB, 0x61); // one buffer, shared by every write

  test("200 readers that stop reading (downloads and uploads) add at most 256 KiB each to the proxy", {
    timeout: 300_000,
  }, async (t) => {
    // Up to 512 KiB per socket buffer: enough for bulk reads, little kernel memory for 200 stalls.
    await tcpBuffers([4096, 131072, 512 * KiB], [4096, 16384, 512 * KiB]);
    // Downloads: the destination streams 16 MiB; uploads: the destination never reads.
    const source = createServer((s) => {
      sockets.push(s);
      s.on("error", () => {});
      stream(s, chunk, 16 * MiB);
    });
    const sink = createServer({ pauseOnConnect: true }, (s) => {
      sockets.push(s);
      s.on("error", () => {});
    });
    const sourcePort = await listen(source);
    const sinkPort = await listen(sink);
    const proxy = await startProxy([...LOOPBACK_ALLOW, "--metrics", "127.0.0.1:0"]);
    try {
      const at = String((await proxy.waitLog((l) => l.msg === "metrics listening")).address);
      // Warm up the code paths, then measure from there.
      const warm = await socksConnect(proxy.port, ipv4Request(sourcePort));
      await warm.c.read(MiB, 15_000);
      warm.c.close();
      const base = await settledRss(proxy);
      const clients: RawClient[] = [];
      for (let i = 0; i < 200; i++) {
        const download = i % 2 === 0;
        const { rep, c } = await socksConnect(proxy.port, ipv4Request(download ? sourcePort : sinkPort));
        assert.equal(rep, 0);
        clients.push(c);
        sockets.push(c.socket);
        if (download)
          c.socket.pause(); // reads nothing more: the buffers fill, the proxy's writes stall
        else stream(c.socket, chunk, 16 * MiB);
      }
      const grown = (await settledRss(proxy)) - base;
      const buffers = await relayBuffers(at);
      t.diagnostic(
        `RSS ${(base / MiB).toFixed(1)} MiB + ${(grown / 200 / KiB).toFixed(0)} KiB per stalled connection; relay buffers ${(buffers / MiB).toFixed(1)} MiB`,
      );
      assert.ok(
        grown / 200 <= 256 * KiB,
        `RSS grew by ${(grown / MiB).toFixed(1)} MiB for 200 stalled connections: ${(grown / 200 / KiB).toFixed(0)} KiB each`,
      );
      assert.ok(buffers <= 32 * MiB, `relay buffers ${buffers} over the 32 MiB budget`);
      // A download goes on once its reader reads again: nothing was lost.
      const d = clients[0]!;
      d.socket.resume();
      assert.equal((await d.read(4 * MiB, 60_000)).length, 4 * MiB);
      // Every buffer goes back when its connection closes: once the idle pools are emptied, none is left.
      for (const s of sockets.splice(0)) s.destroy();
      await until(async () => (await relayBuffers(at)) === 0, 90_000, "relay buffers back to 0");
    } finally {
      for (const s of sockets.splice(0)) s.destroy();
      await proxy.stop();
      source.close();
      sink.close();
    }
  });

  test("8,192 stalled connections stay under 1 GiB RSS", { timeout: 540_000 }, async (t) => {
    const connections = 8192;
    // Small socket buffers: 8,192 stalled connections, each still stalling in the proxy, cost little kernel memory.
    await tcpBuffers([4096, 8192, 16384], [4096, 8192, 16384]);
    const source = createServer((s) => {
      sockets.push(s);
      s.on("error", () => {});
      stream(s, chunk.subarray(0, 48 * KiB), 48 * KiB);
    });
    const port = await listen(source);
    const proxy = await startProxy([
      ...LOOPBACK_ALLOW,
      "--metrics",
      "127.0.0.1:0",
      "--max-connections",
      String(connections),
      "--max-per-client",
      String(connections),
      "--handshake-timeout",
      "120",
    ]);
    try {
      const at = String((await proxy.waitLog((l) => l.msg === "metrics listening")).address);
      const base = rssBytes(proxy.child.pid!);
      for (let i = 0; i < connections; i += 64) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(64, connections - i) }, () =>
            socksConnect(proxy.port, ipv4Request(port)),
          ),
        );
        for (const { rep, c } of batch) {
          assert.equal(rep, 0);
          c.socket.pause(); // the client reads nothing more
          sockets.push(c.socket);
        }
      }
      const rss = await settledRss(proxy);
      const text = await (await fetch(`http://${at}/metrics`)).text();
      assert.match(text, new RegExp(`^wg_egress_proxy_active_connections ${connections}$`, "m"));
      const buffers = await relayBuffers(at);
      t.diagnostic(
        `RSS ${(base / MiB).toFixed(0)} → ${(rss / MiB).toFixed(0)} MiB with ${connections} stalled connections (${((rss - base) / connections / KiB).toFixed(1)} KiB each); relay buffers ${(buffers / MiB).toFixed(1)} MiB`,
      );
      assert.ok(rss < 1024 * MiB, `RSS ${(rss / MiB).toFixed(0)} MiB`);
      assert.ok(buffers <= 32 * MiB);
      for (const s of sockets.splice(0)) s.destroy();
      await until(
        () => proxy.logs.filter((l) => l.msg === "connection closed").length >= connections,
        120_000,
        "all closed",
      );
    } finally {
      await proxy.stop();
      source.close();
    }
  });
}
