/**
 * Memory the proxy holds for clients that stop reading (issue 9.6): its large read buffers come from
 * one process-wide budget, and a stalled leg keeps no buffer of its own beyond its pending write.
 */
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { after, test } from "node:test";
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

const sockets: Socket[] = [];
after(() => {
  for (const s of sockets) s.destroy();
});

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

test("issue 9.6: 200 readers that stop reading (downloads and uploads) add at most 256 KiB each to the proxy", {
  timeout: 180_000,
}, async (t) => {
  const payload = Buffer.alloc(2 * MiB, 0x61);
  // Downloads: the destination sends 2 MiB at once; uploads: the destination never reads.
  const source = createServer((s) => {
    sockets.push(s);
    s.on("error", () => {});
    s.write(payload);
  });
  const sink = createServer({ pauseOnConnect: true }, (s) => {
    sockets.push(s);
    s.on("error", () => {});
  });
  const sourcePort = await listen(source);
  const sinkPort = await listen(sink);
  const proxy = await startProxy([...LOOPBACK_ALLOW, "--metrics", "127.0.0.1:0", "--max-per-client", "1000"]);
  try {
    const at = String((await proxy.waitLog((l) => l.msg === "metrics listening")).address);
    // Warm up the code paths (one transfer each way), then measure from there.
    const warm = await socksConnect(proxy.port, ipv4Request(sourcePort));
    await warm.c.read(payload.length, 15_000);
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
        c.socket.pause(); // reads nothing more: the kernel buffers fill, then the proxy's writes stall
      else c.socket.write(payload);
    }
    const grown = (await settledRss(proxy)) - base;
    t.diagnostic(
      `RSS ${(base / MiB).toFixed(1)} MiB + ${(grown / 200 / KiB).toFixed(0)} KiB per stalled connection`,
    );
    const text = await (await fetch(`http://${at}/metrics`)).text();
    const buffers = Number(/^wg_egress_proxy_relay_buffer_bytes (\d+)/m.exec(text)?.[1]);
    assert.ok(buffers <= 32 * MiB, `relay buffers ${buffers} over the 32 MiB budget`);
    assert.ok(
      grown / 200 <= 256 * KiB,
      `RSS grew by ${(grown / MiB).toFixed(1)} MiB for 200 stalled connections: ${(grown / 200 / KiB).toFixed(0)} KiB each`,
    );
    // The connections still work once their readers read again: nothing was lost.
    const d = clients[0]!;
    d.socket.resume();
    assert.equal((await d.read(payload.length, 30_000)).length, payload.length);
    for (const s of sockets) s.destroy();
    await until(
      () => proxy.logs.filter((l) => l.msg === "connection closed").length >= 201,
      15_000,
      "all closed",
    );
  } finally {
    await proxy.stop();
    source.close();
    sink.close();
  }
});
