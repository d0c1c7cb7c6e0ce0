/**
 * Issue 9.6 at full scale: 8,192 connections whose clients stopped reading keep the proxy under 1 GiB
 * RSS. Runs in a network namespace of its own (root) with small TCP buffers there, so that 8,192
 * stalled connections cost the shared machine little kernel memory while each still stalls in the proxy.
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
  type RawClient,
  rssBytes,
  socksConnect,
  startProxy,
} from "./proxy-helpers.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const CONNECTIONS = 8192;

if (insideIsolatedNetns(import.meta.url, 600_000)) {
  const sockets: Socket[] = [];
  after(() => {
    for (const s of sockets) s.destroy();
  });

  test(`${CONNECTIONS} stalled connections stay under 1 GiB RSS`, { timeout: 540_000 }, async (t) => {
    const sysctl = await run("sysctl", [
      "-w",
      "net.ipv4.tcp_rmem=4096 8192 16384",
      "net.ipv4.tcp_wmem=4096 8192 16384",
    ]);
    assert.equal(sysctl.code, 0);
    const payload = Buffer.alloc(48 * KiB, 0x61); // one buffer, shared by every connection's write
    const source = createServer((s) => {
      sockets.push(s);
      s.on("error", () => {});
      s.write(payload);
    });
    const port = await listen(source);
    const proxy = await startProxy([
      ...LOOPBACK_ALLOW,
      "--metrics",
      "127.0.0.1:0",
      "--max-connections",
      String(CONNECTIONS),
      "--max-per-client",
      String(CONNECTIONS),
      "--handshake-timeout",
      "120",
    ]);
    try {
      const at = String((await proxy.waitLog((l) => l.msg === "metrics listening")).address);
      const base = rssBytes(proxy.child.pid!);
      const clients: RawClient[] = [];
      for (let i = 0; i < CONNECTIONS; i += 64) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(64, CONNECTIONS - i) }, () =>
            socksConnect(proxy.port, ipv4Request(port)),
          ),
        );
        for (const { rep, c } of batch) {
          assert.equal(rep, 0);
          c.socket.pause(); // the client reads nothing more
          sockets.push(c.socket);
          clients.push(c);
        }
      }
      await sleep(3000);
      const rss = rssBytes(proxy.child.pid!);
      const text = await (await fetch(`http://${at}/metrics`)).text();
      assert.match(text, new RegExp(`^wg_egress_proxy_active_connections ${CONNECTIONS}$`, "m"));
      const buffers = Number(/^wg_egress_proxy_relay_buffer_bytes (\d+)/m.exec(text)?.[1]);
      t.diagnostic(
        `RSS ${(base / MiB).toFixed(0)} → ${(rss / MiB).toFixed(0)} MiB with ${CONNECTIONS} stalled connections (${((rss - base) / CONNECTIONS / KiB).toFixed(1)} KiB each); relay buffers ${(buffers / MiB).toFixed(1)} MiB`,
      );
      assert.ok(rss < 1024 * MiB, `RSS ${(rss / MiB).toFixed(0)} MiB`);
      assert.ok(buffers <= 32 * MiB);
      for (const s of sockets) s.destroy();
      await until(
        () => proxy.logs.filter((l) => l.msg === "connection closed").length >= CONNECTIONS,
        120_000,
        "all closed",
      );
    } finally {
      await proxy.stop();
      source.close();
    }
  });
}
