/** Stream semantics through the proxy: half-close, integrity, backpressure, concurrency, limits, no fd leaks. */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer, type Socket, connect as tcpConnect } from "node:net";
import { after, before, test } from "node:test";
import { run } from "../../src/util/run.js";
import { sleep, until } from "../support/poll.js";
import { requireTools } from "../support/tools.js";
import {
  echoServer,
  expectDropped,
  fdCount,
  ipv4Request,
  LOOPBACK_ALLOW,
  listen,
  type ProxyProcess,
  socksConnect,
  startProxy,
} from "./proxy-helpers.js";

before(() => requireTools("ss"));

let proxy: ProxyProcess;
let echo: Awaited<ReturnType<typeof echoServer>>;

before(async () => {
  echo = await echoServer();
  proxy = await startProxy([...LOOPBACK_ALLOW]);
});

after(async () => {
  await proxy.stop();
  echo.server.close();
});

const closedLines = () => proxy.logs.filter((l) => l.msg === "connection closed").length;

test("half-close: the client shuts down its write side and still receives the answer", async () => {
  // reads until EOF, then answers with the byte count and a hash
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash("sha256");
    let n = 0;
    s.on("data", (d) => {
      n += d.length;
      h.update(d);
    });
    s.on("end", () => s.end(`${n} ${h.digest("hex")}`));
  });
  const port = await listen(server);
  try {
    const { rep, c } = await socksConnect(proxy.port, ipv4Request(port));
    assert.equal(rep, 0);
    const data = randomBytes(100_000);
    c.socket.end(data);
    const answer = String(await c.untilClosed());
    assert.equal(answer, `${data.length} ${createHash("sha256").update(data).digest("hex")}`);
  } finally {
    server.close();
  }
});

test("half-close the other way: the destination finishes first, the client keeps sending", async () => {
  let received = "";
  let ended = false;
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.end("bye"); // FIN first: microsocks tears down both directions here
    s.on("data", (d) => {
      received += d;
    });
    s.on("end", () => {
      ended = true;
    });
  });
  const port = await listen(server);
  try {
    const { rep, c } = await socksConnect(proxy.port, ipv4Request(port));
    assert.equal(rep, 0);
    assert.equal(String(await c.untilClosed()), "bye");
    c.socket.end("still talking after your EOF");
    await until(() => ended, 5000, "the destination saw the client's EOF");
    assert.equal(received, "still talking after your EOF");
    c.close();
  } finally {
    server.close();
  }
});

test("50 MB each way arrive intact (sha256 at both ends)", async () => {
  const payload = randomBytes(50 * 1024 * 1024);
  const want = createHash("sha256").update(payload).digest("hex");
  let uploadHash = "";
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash("sha256");
    s.on("data", (d) => h.update(d));
    s.on("end", () => {
      uploadHash = h.digest("hex");
      s.end(payload); // then download the same 50 MB
    });
  });
  const port = await listen(server);
  try {
    const { rep, c } = await socksConnect(proxy.port, ipv4Request(port));
    assert.equal(rep, 0);
    const h = createHash("sha256");
    let got = 0;
    c.socket.removeAllListeners("data");
    c.socket.on("data", (d: Buffer) => {
      got += d.length;
      h.update(d);
    });
    const ended = once(c.socket, "end");
    c.socket.end(payload);
    await ended;
    assert.equal(uploadHash, want);
    assert.equal(got, payload.length);
    assert.equal(h.digest("hex"), want);
    c.close();
  } finally {
    server.close();
  }
});

test("backpressure: a client that does not read stalls the sender instead of filling the proxy", async () => {
  const total = 128 * 1024 * 1024;
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  let source: Socket | undefined;
  const server = createServer((s) => {
    source = s;
    s.on("error", () => {});
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!s.write(chunk)) return void s.once("drain", pump);
      }
      s.end();
    };
    pump();
  });
  const port = await listen(server);
  try {
    const { rep, c } = await socksConnect(proxy.port, ipv4Request(port));
    assert.equal(rep, 0);
    c.socket.pause();
    await until(() => source !== undefined, 5000, "source connected");
    // let the kernel buffers and the proxy fill up, then see how much the source got rid of
    let last = -1;
    await until(
      () => {
        const flushed = source!.bytesWritten - source!.writableLength;
        const stable = flushed === last;
        last = flushed;
        return stable && flushed > 0;
      },
      10_000,
      "sender stalled",
    );
    assert.ok(last < 64 * 1024 * 1024, `the proxy let ${last} bytes through to a client that reads nothing`);
    // and everything still arrives once the client reads
    c.socket.removeAllListeners("data");
    let got = c.takeBuffered().length;
    c.socket.on("data", (d: Buffer) => {
      got += d.length;
    });
    c.socket.resume();
    await once(c.socket, "end");
    assert.equal(got, total);
    c.close();
  } finally {
    server.close();
  }
});

test("300 concurrent clients, then no leaked file descriptors", async () => {
  const before = fdCount(proxy.child.pid!);
  const closedBefore = closedLines();
  const N = 300;
  const results = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const { rep, c } = await socksConnect(proxy.port, ipv4Request(echo.port));
      const msg = Buffer.from(`client-${i}-`.padEnd(1000, "x"));
      c.send(msg);
      const back = await c.read(msg.length, 15_000);
      c.close();
      return rep === 0 && back.equals(msg);
    }),
  );
  assert.equal(results.filter(Boolean).length, N);
  await until(() => closedLines() - closedBefore >= N, 10_000, "all connections logged as closed");
  await until(() => fdCount(proxy.child.pid!) <= before, 5000, `fd count back to ${before}`);
});

test("per-client limit: extra connections are dropped, existing ones unharmed", async () => {
  const limited = await startProxy([...LOOPBACK_ALLOW, "--max-per-client", "2"]);
  try {
    const a = await socksConnect(limited.port, ipv4Request(echo.port));
    const b = await socksConnect(limited.port, ipv4Request(echo.port));
    await expectDropped(limited.port);
    await limited.waitLog((l) => l.reason === "max_per_client");
    a.c.send(Buffer.from("still"));
    assert.equal(String(await a.c.read(5)), "still");
    b.c.close();
    await until(() => limited.logs.some((l) => l.msg === "connection closed"), 5000, "b closed");
    const d = await socksConnect(limited.port, ipv4Request(echo.port));
    assert.equal(d.rep, 0);
    a.c.close();
    d.c.close();
  } finally {
    await limited.stop();
  }
});

test("client allow-list: a client outside it is dropped before any byte is answered", async () => {
  const strict = await startProxy([...LOOPBACK_ALLOW, "--allow-client", "10.99.0.0/16"]);
  try {
    await expectDropped(strict.port);
    const warn = await strict.waitLog((l) => l.reason === "client_not_allowed");
    assert.equal(warn.client, "127.0.0.1");
    assert.equal(warn.level, 40);
  } finally {
    await strict.stop();
  }
});

test("TCP keepalive is on for both legs (ss shows the keepalive timer)", async () => {
  const ka = await startProxy([...LOOPBACK_ALLOW, "--keepalive", "7"]);
  try {
    const { rep, c } = await socksConnect(ka.port, ipv4Request(echo.port));
    assert.equal(rep, 0);
    // the proxy's side of each leg: local = the proxy's port, and the outbound socket to the echo server
    const legs = async () => {
      const out = (await run("ss", ["-tnoH", "state", "established"])).stdout.split("\n");
      const client = out.find((l) => l.includes(`127.0.0.1:${ka.port} 127.0.0.1:${c.socket.localPort} `));
      const upstream = out.find(
        (l) => / 127\.0\.0\.1:\d+ +127\.0\.0\.1:(\d+) /.exec(l)?.[1] === String(echo.port),
      );
      return [client ?? "(none)", upstream ?? "(none)"];
    };
    // a timer for unacknowledged data may show first; the keepalive timer once the leg is quiet
    await until(
      async () => (await legs()).every((l) => /timer:\(keepalive,/.test(l)),
      5000,
      "keepalive timers",
    );
    c.close();
  } finally {
    await ka.stop();
  }
});

test("--idle-timeout closes an idle relayed connection; none by default", async () => {
  const idle = await startProxy([...LOOPBACK_ALLOW, "--idle-timeout", "0.3"]);
  try {
    const { rep, c } = await socksConnect(idle.port, ipv4Request(echo.port));
    assert.equal(rep, 0);
    await c.untilClosed(5000);
    assert.equal((await idle.waitLog((l) => l.msg === "connection closed")).result, "idle_timeout");
  } finally {
    await idle.stop();
  }
  // the shared proxy has no idle timeout: a connection idle for longer still relays
  const { c } = await socksConnect(proxy.port, ipv4Request(echo.port));
  await sleep(600);
  c.send(Buffer.from("awake"));
  assert.equal(String(await c.read(5)), "awake");
  c.close();
});

test("--idle-timeout does not cut a download a slow client is still reading (a large write draining counts as traffic)", async () => {
  const SIZE = 10 * 1024 * 1024;
  const RATE = 2 * 1024 * 1024; // bytes/s: a 4 MiB write of the relay takes 2 s to drain, twice the timeout
  const dest = createServer((s) => {
    s.on("error", () => {});
    s.end(Buffer.alloc(SIZE, 7));
  });
  const destPort = await listen(dest);
  const idle = await startProxy([...LOOPBACK_ALLOW, "--idle-timeout", "1"]);
  try {
    const c = tcpConnect({ port: idle.port, host: "127.0.0.1" });
    c.on("error", () => {});
    await once(c, "connect");
    c.write(Buffer.from([5, 1, 0, ...ipv4Request(destPort)]));
    let got = 0;
    c.on("data", (d: Buffer) => {
      got += d.length;
      c.pause(); // read steadily at RATE: never silent for long, never fast
      setTimeout(() => c.resume(), (d.length / RATE) * 1000);
    });
    await once(c, "close");
    assert.equal(got, 2 + 10 + SIZE, "the whole download, after the method choice and the reply");
  } finally {
    await idle.stop();
    dest.close();
  }
});

test("--idle-timeout counts from the last byte relayed: traffic keeps the connection, silence then closes it", async () => {
  const idle = await startProxy([...LOOPBACK_ALLOW, "--idle-timeout", "1"]);
  try {
    const { rep, c } = await socksConnect(idle.port, ipv4Request(echo.port));
    assert.equal(rep, 0);
    // 2.4 s of traffic, more than twice the timeout, one byte every 200 ms (the echo sends it back)
    let last = 0;
    for (let i = 0; i < 12; i++) {
      await sleep(200);
      c.send(Buffer.from("x"));
      assert.equal(String(await c.read(1)), "x", `byte ${i} relayed both ways`);
      last = Date.now();
    }
    await c.untilClosed(6000);
    const after = Date.now() - last;
    assert.ok(after >= 950, `closed ${after} ms after the last byte, before the 1 s timeout`);
    assert.equal((await idle.waitLog((l) => l.msg === "connection closed")).result, "idle_timeout");
  } finally {
    await idle.stop();
  }
});
