/**
 * Stress for the relay's read buffers: one shared 2 KiB buffer for quiet legs, pooled 64 KiB / 4 MiB
 * buffers in bulk, and a buffer held by a pending write while its reader pauses. Many connections move
 * data both ways at once in chunks of 1 B … 5 MB with slow readers, clients send ahead of the reply,
 * legs go quiet after bulk, peers vanish while a write is pending. Every byte is checked (count and
 * sha256 at both ends, exact echoes), so a buffer reused while a write still reads from it, or shared
 * between legs, shows up as a mismatch. Random choices come from a seed named in every failure
 * (RELAY_STRESS_SEED=… repeats a run).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { after, before, test } from "node:test";
import { httpResponse } from "../../src/socks/http-connect.js";
import { adoptHandle, connectLeg, detachAccepted, type Leg, relay } from "../../src/socks/relay.js";
import { sleep, until } from "../support/poll.js";
import {
  dnsStub,
  domainRequest,
  echoServer,
  fdCount,
  ipv4Request,
  LOOPBACK_ALLOW,
  type LogLine,
  listen,
  type ProxyProcess,
  startProxy,
} from "./proxy-helpers.js";

const MB = 1024 * 1024;
const SEED = Number(process.env.RELAY_STRESS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const where = (what: string) => `${what} (RELAY_STRESS_SEED=${SEED})`;

let proxy: ProxyProcess;
let echo: Awaited<ReturnType<typeof echoServer>>;
/** Every socket and server this file opens, so `after` can end whatever a failed case left behind. */
const sockets = new Set<Socket>();
const servers: Server[] = [];
/** Connections made through the proxy so far (each ends with one "connection closed" line). */
let opened = 0;
let dns: { port: number; close(): void };

before(async () => {
  echo = await echoServer();
  servers.push(echo.server);
  const names = Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`slow-${i}.test`, "127.0.0.1"]));
  dns = await dnsStub(names, 30); // slow answers: early bytes pile up while a name resolves
  proxy = await startProxy([...LOOPBACK_ALLOW, "--dns", `127.0.0.1:${dns.port}`]);
});

after(async () => {
  for (const s of sockets) s.destroy();
  for (const s of echo.sockets) s.destroy();
  await proxy.stop();
  for (const s of servers) s.close();
  dns?.close();
});

const closedLines = () => proxy.logs.filter((l) => l.msg === "connection closed").length;

type Rng = () => number;

/** mulberry32: small and seedable. */
function rngFrom(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** An integer in [min, max], log-uniform: as many 1–10 byte chunks as 1–10 MB ones. */
function logUniform(rng: Rng, min: number, max: number): number {
  return Math.min(max, Math.floor(Math.exp(Math.log(min) + rng() * (Math.log(max + 1) - Math.log(min)))));
}

/** Count and sha256 of a byte stream. */
class Tally {
  n = 0;
  private readonly h = createHash("sha256");
  private hex: string | undefined;

  add(b: Buffer): void {
    this.n += b.length;
    this.h.update(b);
  }

  get digest(): string {
    this.hex ??= this.h.digest("hex");
    return this.hex;
  }
}

function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

function sameBytes(got: Buffer, want: Buffer, what: string): void {
  if (got.equals(want)) return;
  let i = 0;
  while (i < got.length && i < want.length && got[i] === want[i]) i++;
  assert.fail(where(`${what}: ${got.length}/${want.length} bytes, first difference at byte ${i}`));
}

/** A slow reader stops reading for ms[0]…ms[1] after a share p of the chunks it gets. */
interface SlowRead {
  p: number;
  ms: [number, number];
}

/** How a side writes, and how its peer reads. */
interface Style {
  /** Chunk sizes, log-uniform in [min, max]. */
  chunk: [number, number];
  /** Every write waits a turn of the event loop, so each reaches the proxy as a small read of its own. */
  trickle: boolean;
  /** The receiving side reads nothing for this long at first, so the proxy's writes to it back up. */
  stallMs: number;
  /** How a slow receiver reads. */
  slowRead: SlowRead;
}
const BULK: Style = { chunk: [1, 5 * MB], trickle: false, stallMs: 0, slowRead: { p: 0.2, ms: [1, 21] } };

/**
 * A socket's incoming bytes as a queue: exact reads (take), or counted and hashed as they come. A slow
 * reader (`slow` given) stops reading for a moment after some chunks (`pauses`), so the proxy's writes
 * to it back up and the leg reading for it holds a buffer and pauses.
 */
class Inbox {
  private chunks: Buffer[] = [];
  private size = 0;
  private wake: (() => void) | undefined;
  ended = false;
  closed = false;

  constructor(
    readonly socket: Socket,
    slow?: Rng,
    pauses: SlowRead = BULK.slowRead,
  ) {
    sockets.add(socket);
    socket.on("data", (d: Buffer) => {
      this.chunks.push(d);
      this.size += d.length;
      this.wake?.();
      if (slow && slow() < pauses.p) {
        socket.pause();
        setTimeout(() => socket.resume(), pauses.ms[0] + slow() * (pauses.ms[1] - pauses.ms[0]));
      }
    });
    socket.on("end", () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on("close", () => {
      this.closed = true;
      sockets.delete(socket);
      this.wake?.();
    });
    socket.on("error", () => {});
  }

  /** Reads nothing for `ms`. */
  stall(ms: number): void {
    if (ms <= 0) return;
    this.socket.pause();
    setTimeout(() => this.socket.resume(), ms);
  }

  private async next(deadline: number, what: string): Promise<void> {
    if (Date.now() > deadline) throw new Error(where(`${what}: timed out with ${this.size} bytes queued`));
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 50);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.wake = undefined;
  }

  private shift(n: number): Buffer[] {
    const parts: Buffer[] = [];
    this.size -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      if (c.length <= n) {
        parts.push(c);
        this.chunks.shift();
        n -= c.length;
      } else {
        parts.push(c.subarray(0, n));
        this.chunks[0] = c.subarray(n);
        n = 0;
      }
    }
    return parts;
  }

  /** Exactly n bytes; fails if the stream ends first. */
  async take(n: number, timeoutMs = 15_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.size < n) {
      if (this.ended || this.closed) throw new Error(where(`stream ended after ${this.size}/${n} bytes`));
      await this.next(deadline, `waiting for ${n} bytes`);
    }
    return Buffer.concat(this.shift(n));
  }

  /** Exactly n bytes into `t`, without keeping them. */
  async tallyN(n: number, t: Tally, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (n > 0) {
      const k = Math.min(n, this.size);
      for (const p of this.shift(k)) t.add(p);
      n -= k;
      if (n === 0) return;
      if (this.ended || this.closed) throw new Error(where(`stream ended ${n} bytes short`));
      await this.next(deadline, `waiting for ${n} more bytes`);
    }
  }

  /** Everything up to EOF into `t`. */
  async tallyUntilEnd(t: Tally, timeoutMs = 40_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const p of this.shift(this.size)) t.add(p);
      if (this.ended) return;
      if (this.closed) throw new Error(where(`closed without EOF after ${t.n} bytes`));
      await this.next(deadline, `waiting for EOF after ${t.n} bytes`);
    }
  }

  /** Everything up to EOF. */
  async untilEnd(timeoutMs = 15_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (this.closed) throw new Error(where(`closed without EOF after ${this.size} bytes`));
      await this.next(deadline, "waiting for EOF");
    }
    return Buffer.concat(this.shift(this.size));
  }
}

function drained(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      s.off("drain", done);
      s.off("close", done);
      resolve();
    };
    s.on("drain", done);
    s.on("close", done);
  });
}

/**
 * Writes `total` random bytes in chunks of the style's sizes, honouring backpressure. Some small chunks
 * wait a turn of the event loop and a few writes pause for a moment, so reads at the proxy come in all
 * sizes and a leg's read size moves up and down during one stream.
 */
async function pump(s: Socket, total: number, rng: Rng, sent: Tally, style = BULK): Promise<void> {
  for (let left = total; left > 0 && !s.destroyed; ) {
    const chunk = randomBytes(Math.min(left, logUniform(rng, ...style.chunk)));
    left -= chunk.length;
    sent.add(chunk);
    if (!s.write(chunk)) await drained(s);
    else if (style.trickle || (chunk.length < 4096 && rng() < 0.5)) await new Promise((r) => setImmediate(r));
    else if (rng() < 0.03) await sleep(1 + rng() * 10);
  }
}

async function expectSocksReply(inbox: Inbox): Promise<void> {
  assert.deepEqual([...(await inbox.take(2))], [5, 0], where("method choice"));
  const head = await inbox.take(4);
  assert.equal(head[1], 0, where(`SOCKS reply ${head[1]}`));
  await inbox.take(head[3] === 4 ? 18 : 6);
}

async function proxyConnection(slow?: Rng, pauses?: SlowRead): Promise<Inbox> {
  const s = tcpConnect({ port: proxy.port, host: "127.0.0.1", allowHalfOpen: true });
  const inbox = new Inbox(s, slow, pauses);
  await once(s, "connect");
  opened++;
  return inbox;
}

/** SOCKS5 CONNECT, greeting and request in one write; resolves after the reply. */
async function socksOpen(request: number[], slow?: Rng, pauses?: SlowRead): Promise<Inbox> {
  const inbox = await proxyConnection(slow, pauses);
  inbox.socket.write(Buffer.from([5, 1, 0, ...request]));
  await expectSocksReply(inbox);
  return inbox;
}

/** What a bulk destination saw of one connection (named by the client's first 4 bytes). */
interface Far {
  id: number;
  got: Tally;
  sent: Tally;
  done: boolean;
  error?: unknown;
}

/**
 * A destination that reads everything (hashing it) while it sends `down(rng)` random bytes of its
 * own, then ends; a share of its connections read slowly.
 */
async function bulkDestination(seed: number, down: (rng: Rng) => number, slowShare: number, style = BULK) {
  const rng = rngFrom(seed);
  const far: Far[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const r = rngFrom(Math.floor(rng() * 2 ** 31));
    const f: Far = { id: -1, got: new Tally(), sent: new Tally(), done: false };
    far.push(f);
    const inbox = new Inbox(
      s,
      r() < slowShare ? rngFrom(Math.floor(r() * 2 ** 31)) : undefined,
      style.slowRead,
    );
    inbox.stall(style.stallMs);
    const receiving = (async () => {
      const head = await inbox.take(4);
      f.id = head.readUInt32BE(0);
      f.got.add(head);
      await inbox.tallyUntilEnd(f.got);
    })();
    const sending = pump(s, down(r), r, f.sent, style).then(() => void s.end());
    Promise.all([receiving, sending]).then(
      () => {
        f.done = true;
      },
      (e) => {
        f.error = e;
      },
    );
  });
  servers.push(server);
  const port = await listen(server);
  return { server, port, far };
}

interface Near {
  id: number;
  clientPort: number;
  sent: Tally;
  got: Tally;
}

/** A client of a bulk destination: sends `up` random bytes (after its 4-byte id) while it reads all. */
async function bulkClient(
  id: number,
  port: number,
  up: number,
  seed: number,
  slow: boolean,
  style = BULK,
  open: (slow?: Rng, pauses?: SlowRead) => Promise<Inbox> = (slow, pauses) =>
    socksOpen(ipv4Request(port), slow, pauses),
): Promise<Near> {
  const rng = rngFrom(seed);
  const inbox = await open(slow ? rngFrom(seed ^ 0x5bd1e995) : undefined, style.slowRead);
  const s = inbox.socket;
  const clientPort = s.localPort!;
  const sent = new Tally();
  const got = new Tally();
  inbox.stall(style.stallMs);
  const receiving = inbox.tallyUntilEnd(got);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(id);
  s.write(head);
  sent.add(head);
  await pump(s, up, rng, sent, style);
  s.end();
  await receiving;
  return { id, clientPort, sent, got };
}

/** Both directions of every connection match. */
async function checkPairs(near: Near[], far: Far[]): Promise<void> {
  await until(
    () => near.every((c) => far.some((f) => f.id === c.id && (f.done || f.error))),
    15_000,
    where("every destination saw its client's EOF"),
  );
  for (const c of near) {
    const f = far.find((x) => x.id === c.id)!;
    assert.equal(f.error, undefined, where(`connection ${c.id}: destination side failed`));
    assert.equal(f.got.n, c.sent.n, where(`connection ${c.id} upload: byte count`));
    assert.equal(f.got.digest, c.sent.digest, where(`connection ${c.id} upload: sha256`));
    assert.equal(c.got.n, f.sent.n, where(`connection ${c.id} download: byte count`));
    assert.equal(c.got.digest, f.sent.digest, where(`connection ${c.id} download: sha256`));
  }
}

/** Both directions of every connection match, and so do the proxy's byte counts in its log line. */
async function checkBulk(near: Near[], far: Far[], logsFrom: number): Promise<void> {
  await checkPairs(near, far);
  // The log line (up = bytes written to the destination, down = bytes read from it), found by the
  // client's address. A client port the kernel reused within the case has several lines: skipped.
  const lineOf = (c: Near) => `127.0.0.1:${c.clientPort}`;
  const expected = new Map<string, number>();
  for (const c of near) expected.set(lineOf(c), (expected.get(lineOf(c)) ?? 0) + 1);
  const byClient = () => {
    const lines = new Map<unknown, LogLine[]>();
    for (const l of proxy.logs.slice(logsFrom)) {
      if (l.msg === "connection closed") lines.set(l.client, [...(lines.get(l.client) ?? []), l]);
    }
    return lines;
  };
  await until(
    () => {
      const lines = byClient();
      return [...expected].every(([client, n]) => (lines.get(client)?.length ?? 0) >= n);
    },
    10_000,
    where("a closed line for every bulk connection"),
  );
  const lines = byClient();
  for (const c of near) {
    const mine = lines.get(lineOf(c))!;
    if (mine.length !== 1) continue;
    const f = far.find((x) => x.id === c.id)!;
    assert.equal(mine[0]!.up, c.sent.n, where(`connection ${c.id}: logged up`));
    assert.equal(mine[0]!.down, f.sent.n, where(`connection ${c.id}: logged down`));
  }
}

test("64 connections move 0.5–6 MB each way at once in chunks of 1 B … 5 MB, a third reading slowly: every byte arrives", async () => {
  const logsFrom = proxy.logs.length;
  const dest = await bulkDestination(SEED, (r) => logUniform(r, MB / 2, 6 * MB), 1 / 3);
  const seeds = rngFrom(SEED + 1);
  const near = await Promise.all(
    Array.from({ length: 64 }, async (_, id) => {
      const seed = Math.floor(seeds() * 2 ** 31);
      const r = rngFrom(seed);
      await sleep(r() * 300); // staggered: some start while others are in bulk
      return bulkClient(id, dest.port, logUniform(r, MB / 2, 6 * MB), seed, r() < 1 / 3);
    }),
  );
  await checkBulk(near, dest.far, logsFrom);
});

test("16 connections trickle 0.25–0.75 MB each way in writes of 1 B … 2 KB to peers that read nothing for 300 ms, then slowly: every byte arrives", async () => {
  // Small reads go to the one shared buffer while the peers back up, and read sizes climb and fall
  // again as the backlog comes and goes.
  const logsFrom = proxy.logs.length;
  const trickle: Style = { chunk: [1, 2000], trickle: true, stallMs: 300, slowRead: { p: 1, ms: [5, 25] } };
  const dest = await bulkDestination(SEED + 4, (r) => logUniform(r, MB / 4, (3 * MB) / 4), 1, trickle);
  const seeds = rngFrom(SEED + 5);
  const near = await Promise.all(
    Array.from({ length: 16 }, async (_, id) => {
      const seed = Math.floor(seeds() * 2 ** 31);
      const r = rngFrom(seed);
      return bulkClient(id, dest.port, logUniform(r, MB / 4, (3 * MB) / 4), seed, true, trickle);
    }),
  );
  await checkBulk(near, dest.far, logsFrom);
});

/** Answers `<count> <sha256>` of what it received once the client's EOF arrives. */
async function hashOnEofServer(): Promise<number> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    const t = new Tally();
    s.on("data", (d: Buffer) => t.add(d));
    s.on("end", () => s.end(`${t.n} ${t.digest}`));
  });
  servers.push(server);
  return listen(server);
}

test("120 clients send 1 B … 200 KB ahead of the reply (SOCKS5 and HTTP CONNECT, split handshakes, slow DNS, some with their EOF) while 6 connections are in bulk: every byte arrives in order", async () => {
  const logsFrom = proxy.logs.length;
  const dest = await bulkDestination(SEED + 2, () => 12 * MB, 0.5);
  const hasher = await hashOnEofServer();
  const echo6 = await echoServer("::1");
  servers.push(echo6.server);
  const background = Promise.all(
    Array.from({ length: 6 }, (_, i) => bulkClient(i, dest.port, 12 * MB, SEED + 100 + i, i % 2 === 0)),
  );
  const ok = httpResponse(200);
  const one = async (i: number): Promise<void> => {
    const rng = rngFrom(SEED + 1000 + i);
    const http = i % 3 === 0;
    // a name the DNS answers after 30 ms: the request is read alone, and what follows while the name
    // resolves is kept by the handshake (from the shared buffer) until the relay starts
    const named = i % 4 === 3;
    const withEof = i % 4 === 1 || i % 8 === 3;
    const v6 = !http && !withEof && !named && i % 5 === 2;
    const port = withEof ? hasher : v6 ? echo6.port : echo.port;
    const host = named ? `slow-${i}.test` : "127.0.0.1";
    // some go past the 64 KiB the proxy keeps before it stops reading from the client
    const early = randomBytes(
      i % 6 === 0 || i % 10 === 9 ? 64 * 1024 + logUniform(rng, 1, 136 * 1024) : logUniform(rng, 1, 20_000),
    );
    const late = randomBytes(logUniform(rng, 1, 50_000));
    const ipv6 = [5, 1, 0, 4, ...Array(15).fill(0), 1, port >> 8, port & 255];
    const request = http
      ? Buffer.from(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`)
      : Buffer.from([5, 1, 0, ...(v6 ? ipv6 : named ? domainRequest(host, port) : ipv4Request(port))]);
    const inbox = await proxyConnection();
    const s = inbox.socket;
    const turn = () => new Promise((r) => setImmediate(r));
    if (named) {
      s.write(request);
      await turn();
      s.write(early);
    } else if (i % 7 === 3) {
      // the handshake itself in two reads, with other legs' reads in the shared buffer in between
      const cut = 1 + Math.floor(rng() * (request.length - 1));
      s.write(request.subarray(0, cut));
      await sleep(2);
      s.write(Buffer.concat([request.subarray(cut), early]));
    } else s.write(Buffer.concat([request, early]));
    await turn();
    if (withEof) s.end(late);
    else s.write(late);
    if (http) sameBytes(await inbox.take(ok.length), ok, `client ${i}: HTTP reply`);
    else await expectSocksReply(inbox);
    const sent = Buffer.concat([early, late]);
    if (withEof) {
      const answer = String(await inbox.untilEnd());
      assert.equal(answer, `${sent.length} ${sha256(sent)}`, where(`client ${i}: what the destination got`));
    } else sameBytes(await inbox.take(sent.length), sent, `client ${i}: echo`);
    s.destroy();
  };
  for (let w = 0; w < 120; w += 30) await Promise.all(Array.from({ length: 30 }, (_, k) => one(w + k)));
  await checkBulk(await background, dest.far, logsFrom);
});

test("12 legs go quiet after bulk and relay small messages exactly (read sizes come back down), twice, next to bulk traffic", async () => {
  const logsFrom = proxy.logs.length;
  const dest = await bulkDestination(SEED + 3, () => 16 * MB, 0.5);
  const background = Promise.all(
    Array.from({ length: 4 }, (_, i) => bulkClient(i, dest.port, 16 * MB, SEED + 200 + i, i % 2 === 1)),
  );
  await Promise.all(
    Array.from({ length: 12 }, async (_, i) => {
      const rng = rngFrom(SEED + 300 + i);
      const inbox = await socksOpen(ipv4Request(echo.port));
      const s = inbox.socket;
      for (let phase = 0; phase < 2; phase++) {
        const n = logUniform(rng, 4 * MB, 8 * MB);
        const sent = new Tally();
        const got = new Tally();
        const back = inbox.tallyN(n, got);
        await pump(s, n, rng, sent, { ...BULK, chunk: [64 * 1024, 5 * MB] });
        await back;
        assert.equal(got.digest, sent.digest, where(`connection ${i}, bulk phase ${phase}: echo sha256`));
        for (let k = 0; k < 100; k++) {
          const msgs = [randomBytes(logUniform(rng, 1, 1500))];
          if (k % 10 === 9) msgs.push(randomBytes(logUniform(rng, 1, 1500)));
          for (const m of msgs) s.write(m);
          const want = Buffer.concat(msgs);
          sameBytes(
            await inbox.take(want.length),
            want,
            `connection ${i}, quiet phase ${phase}, message ${k}`,
          );
          if (k % 25 === 24) await sleep(5);
        }
      }
      s.end();
      assert.equal((await inbox.untilEnd()).length, 0, where(`connection ${i}: nothing after the last echo`));
    }),
  );
  await checkBulk(await background, dest.far, logsFrom);
});

test("a peer that goes away while the proxy holds a pending write (client or destination, close or reset) ends the connection; no fd is left", async () => {
  for (const s of sockets) s.destroy(); // whatever a failed case before left open
  await until(() => closedLines() >= opened, 10_000, where("earlier connections closed"));
  const before = fdCount(proxy.child.pid!);
  const flood = Buffer.alloc(MB, 0x5a);
  const accepted: Socket[] = [];
  const keep = (s: Socket) => {
    accepted.push(s);
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
  };
  const floodOut = (s: Socket) => {
    const go = () => {
      while (!s.destroyed && s.write(flood));
      if (!s.destroyed) s.once("drain", go);
    };
    go();
  };
  // sends as fast as it may (reading and dropping what comes); the other one never reads
  const source = createServer((s) => {
    keep(s);
    s.resume();
    floodOut(s);
  });
  const sink = createServer({ pauseOnConnect: true }, keep);
  servers.push(source, sink);
  const sourcePort = await listen(source);
  const sinkPort = await listen(sink);
  /** A client through the proxy, and the destination's side of its connection. */
  const open = async (port: number) => {
    const n = accepted.length;
    const c = await socksOpen(ipv4Request(port));
    await until(() => accepted.length > n, 5000, where("destination connected"));
    return { c, far: accepted[n]! };
  };
  /** Waits until what `s` has handed to the kernel stops growing: the proxy holds and has stopped reading. */
  const stalled = async (s: Socket, what: string) => {
    let last = -1;
    await until(
      () => {
        const flushed = s.bytesWritten - s.writableLength;
        const stable = flushed === last && flushed > 0;
        last = flushed;
        return stable;
      },
      10_000,
      where(what),
    );
  };
  for (const reset of [false, true]) {
    const end = (s: Socket) => (reset ? s.resetAndDestroy() : s.destroy());
    // the client stops reading a download, then goes away: the destination's leg must be closed
    {
      const { c, far } = await open(sourcePort);
      c.socket.pause();
      await stalled(far, "download stalled at a client that does not read");
      end(c.socket);
      await until(
        () => far.destroyed,
        5000,
        where(`destination closed after the client's ${reset ? "reset" : "close"}`),
      );
    }
    // the destination stops reading an upload, then goes away: the client must be closed
    {
      const { c, far } = await open(sinkPort);
      floodOut(c.socket);
      await stalled(c.socket, "upload stalled at a destination that does not read");
      end(far);
      await until(
        () => c.closed,
        5000,
        where(`client closed after the destination's ${reset ? "reset" : "close"}`),
      );
    }
    // the destination goes away while the client is not reading; once it reads again, the connection ends
    {
      const { c, far } = await open(sourcePort);
      c.socket.pause();
      await stalled(far, "download stalled at a client that does not read");
      end(far);
      await sleep(100);
      c.socket.resume();
      await until(() => c.ended || c.closed, 10_000, where("client told after the destination went away"));
      c.socket.destroy();
    }
  }
  await until(() => closedLines() >= opened, 10_000, where("every connection logged as closed"));
  await until(() => fdCount(proxy.child.pid!) <= before, 5000, where(`proxy fd count back to ${before}`));
  // and the relay still works
  const c = await socksOpen(ipv4Request(echo.port));
  const ping = randomBytes(3000);
  c.socket.write(ping);
  sameBytes(await c.take(ping.length), ping, "echo after the teardowns");
  c.socket.destroy();
});

/**
 * The relay alone, in this process, in front of `port` (what connection.ts does without the SOCKS
 * part): bytes that come before the outbound connect are kept and written first. Every 2 ms legs are
 * corked at random for up to 5 ms, so writes to them wait: the legs writing to them must hold their
 * read buffer (the shared small one, copied, or a pooled one) and pause until the write is done.
 */
async function inProcessRelay(port: number, rng: Rng) {
  const legs = new Set<Leg>();
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (accepted) => {
    const early: Buffer[] = [];
    const client = adoptHandle(detachAccepted(accepted), server, {
      handshake: (chunk) => void early.push(Buffer.from(chunk)),
    });
    const up = connectLeg("127.0.0.1", port, undefined);
    for (const leg of [client, up]) {
      legs.add(leg);
      sockets.add(leg);
      leg.on("error", () => {});
      leg.on("close", () => {
        legs.delete(leg);
        sockets.delete(leg);
      });
    }
    up.on("connect", () => relay(client, up, Buffer.concat(early)));
  });
  servers.push(server);
  const timer = setInterval(() => {
    for (const leg of legs) {
      if (leg.writableCorked === 0 && rng() < 0.3) {
        leg.cork();
        setTimeout(() => leg.uncork(), rng() * 5);
      }
    }
  }, 2);
  const relayPort = await listen(server);
  const open = async (slow?: Rng, pauses?: SlowRead) => {
    const s = tcpConnect({ port: relayPort, host: "127.0.0.1", allowHalfOpen: true });
    const inbox = new Inbox(s, slow, pauses);
    await once(s, "connect");
    return inbox;
  };
  return { open, legs, stop: () => clearInterval(timer) };
}

test("in process, peers corked at random: 32 connections (bulk and trickle, slow readers) whose writes must wait keep every byte", async () => {
  const rng = rngFrom(SEED + 7);
  const trickle: Style = { chunk: [1, 2000], trickle: true, stallMs: 0, slowRead: BULK.slowRead };
  const bulk = await bulkDestination(SEED + 8, (r) => logUniform(r, MB / 4, 3 * MB), 1 / 3);
  const small = await bulkDestination(SEED + 9, (r) => logUniform(r, 64 * 1024, MB / 2), 1 / 3, trickle);
  const viaBulk = await inProcessRelay(bulk.port, rng);
  const viaSmall = await inProcessRelay(small.port, rng);
  try {
    const seeds = rngFrom(SEED + 10);
    const run = (n: number, dest: typeof bulk, via: typeof viaBulk, style: Style, size: [number, number]) =>
      Promise.all(
        Array.from({ length: n }, (_, id) => {
          const seed = Math.floor(seeds() * 2 ** 31);
          const up = logUniform(rngFrom(seed + 1), ...size);
          return bulkClient(id, dest.port, up, seed, id % 3 === 0, style, via.open);
        }),
      );
    const [nearBulk, nearSmall] = await Promise.all([
      run(16, bulk, viaBulk, BULK, [MB / 4, 3 * MB]),
      run(16, small, viaSmall, trickle, [64 * 1024, MB / 2]),
    ]);
    await checkPairs(nearBulk, bulk.far);
    await checkPairs(nearSmall, small.far);
    await until(() => viaBulk.legs.size + viaSmall.legs.size === 0, 5000, where("every relay leg closed"));
  } finally {
    viaBulk.stop();
    viaSmall.stop();
  }
});
