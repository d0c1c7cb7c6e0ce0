/** Helpers for the proxy's tests: the proxy as a child process, loopback servers, a raw SOCKS5 client. */
import { type ChildProcess, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { parseUdpDatagram, serializeUdpHeader } from "../../src/socks/protocol.js";
import { run } from "../../src/util/run.js";
import { MAIN } from "../support/cli.js";
import { until } from "../support/poll.js";
import { tied } from "../support/tied.js";
import { PYTHON } from "../support/tools.js";

export const LOOPBACK_ALLOW = ["--allow-destination", "127.0.0.0/8", "--allow-destination", "::1/128"];

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export interface ProxyProcess {
  child: ChildProcess;
  /** First listen address's port. */
  port: number;
  addresses: string[];
  logs: LogLine[];
  /** Resolves with the first log line matching, waiting up to timeoutMs. */
  waitLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  stop(): Promise<number | null>;
}

/**
 * Starts `wg-egress proxy` on 127.0.0.1:0 (unless args say otherwise) and waits for "listening".
 * `wrap` runs it under another command (e.g. `prlimit --nofile=96 --`).
 */
export async function startProxy(
  args: string[],
  opts: { listeners?: number; wrap?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<ProxyProcess> {
  const hasListen = args.includes("--listen");
  const argv = [process.execPath, MAIN, "proxy", ...(hasListen ? [] : ["--listen", "127.0.0.1:0"]), ...args];
  const [cmd, ...rest] = tied([...(opts.wrap ?? []), ...argv]);
  const child = spawn(cmd!, rest, {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, WG_EGRESS_CONFIG: "", ...opts.env },
  });
  const logs: LogLine[] = [];
  const waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  let partial = "";
  let stderrText = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (d: string) => {
    stderrText += d;
    const lines = (partial + d).split("\n");
    partial = lines.pop()!;
    for (const text of lines) {
      let l: LogLine;
      try {
        l = JSON.parse(text);
      } catch {
        continue;
      }
      logs.push(l);
      for (const w of [...waiters]) {
        if (w.pred(l)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(l);
        }
      }
    }
  });
  const waitLog = (pred: (l: LogLine) => boolean, timeoutMs = 5000) => {
    const found = logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`log line not seen in ${timeoutMs} ms; stderr:\n${stderrText.slice(-2000)}`)),
        timeoutMs,
      );
      waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  };
  const exited = once(child, "exit");
  const n = opts.listeners ?? 1;
  await Promise.race([
    (async () => {
      while (logs.filter((l) => l.msg === "listening").length < n)
        await waitLog(() => false, 100).catch(() => {});
    })(),
    exited.then(() => {
      throw new Error(`proxy exited early: ${stderrText}`);
    }),
  ]);
  const addresses = logs.filter((l) => l.msg === "listening").map((l) => String(l.address));
  const port = Number(addresses[0].split(":").at(-1));
  return {
    child,
    port,
    addresses,
    logs,
    waitLog,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill("SIGKILL");
      const [code] = await exited;
      return code as number | null;
    },
  };
}

export async function listen(server: Server, host = "127.0.0.1"): Promise<number> {
  server.listen(0, host);
  await once(server, "listening");
  return (server.address() as { port: number }).port;
}

/** Echo server; `onSocket` sees each accepted socket. */
export async function echoServer(
  host = "127.0.0.1",
): Promise<{ server: Server; port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    s.on("error", () => {});
    s.pipe(s);
  });
  const port = await listen(server, host);
  return { server, port, sockets };
}

/** HTTP/1.0-style server answering every request with `body`. */
export async function httpServer(
  body: string,
  host = "127.0.0.1",
): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on("error", () => {});
    let head = "";
    s.on("data", (d) => {
      head += d;
      if (head.includes("\r\n\r\n")) {
        s.end(
          `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      }
    });
  });
  const port = await listen(server, host);
  return { server, port };
}

/** A socket plus a byte queue, for step-by-step raw protocol tests. */
export class RawClient {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  closed = false;
  readonly socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    // "closed" = the server is done sending (FIN or reset); our socket is allowHalfOpen
    for (const ev of ["end", "close"]) {
      socket.on(ev, () => {
        this.closed = true;
        this.wake?.();
      });
    }
    socket.on("error", () => {});
  }

  static async open(port: number, host = "127.0.0.1"): Promise<RawClient> {
    const s = tcpConnect({ port, host, allowHalfOpen: true });
    await once(s, "connect");
    return new RawClient(s);
  }

  send(bytes: number[] | Buffer): void {
    this.socket.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
  }

  /** Reads exactly n bytes; rejects if the connection closes first or after timeoutMs. */
  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.closed) throw new Error(`closed after ${this.buf.length}/${n} bytes`);
      if (Date.now() > deadline) throw new Error(`timeout after ${this.buf.length}/${n} bytes`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 50);
      });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Resolves with the bytes received until the server closed. */
  async untilClosed(timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("connection not closed in time");
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 50);
      });
    }
    return this.buf;
  }

  /** Hands over what was received but not yet read (before switching to raw 'data' handling). */
  takeBuffered(): Buffer {
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Greeting (no auth) + a request; returns the reply code and the client, positioned after the reply. */
export async function socksConnect(
  proxyPort: number,
  request: number[],
): Promise<{ rep: number; c: RawClient }> {
  const c = await RawClient.open(proxyPort);
  c.send([5, 1, 0]);
  const choice = await c.read(2);
  if (choice[1] !== 0) throw new Error(`method ${choice[1]}`);
  c.send(request);
  const head = await c.read(4);
  if (head[3] === 3) await c.read((await c.read(1))[0] + 2);
  else await c.read(head[3] === 4 ? 18 : 6);
  return { rep: head[1], c };
}

/**
 * Opens a UDP ASSOCIATE for a fresh UDP socket of ours on 127.0.0.1: the socket, the control
 * connection and the relay address from the reply.
 */
export async function openAssociation(proxyPort: number) {
  const sock = createSocket("udp4");
  sock.bind(0, "127.0.0.1");
  await once(sock, "listening");
  const c = await RawClient.open(proxyPort);
  c.send([5, 1, 0]);
  await c.read(2);
  c.send(ipv4Request(sock.address().port, [127, 0, 0, 1], 3));
  const reply = await c.read(10);
  if (reply[1] !== 0) throw new Error(`UDP ASSOCIATE reply ${reply[1]}`);
  const relayHost = `${reply[4]}.${reply[5]}.${reply[6]}.${reply[7]}`;
  return { sock, c, relayHost, relayPort: reply.readUInt16BE(8) };
}

/**
 * A datagram through a UDP ASSOCIATE of `user` (password: its first letter) to `host` (an IP, or a
 * name the proxy resolves), answered by a local echo with the address the datagram came from: the
 * source the proxy's outbound socket used.
 */
export async function udpSourceAs(proxyPort: number, user: string, host: string): Promise<string> {
  const udp = await udpAssociation(proxyPort, user, user[0]);
  try {
    return await udp.ask(host);
  } finally {
    udp.close();
  }
}

export function ipv4Request(port: number, ip = [127, 0, 0, 1], cmd = 1): number[] {
  return [5, cmd, 0, 1, ...ip, port >> 8, port & 255];
}

export function domainRequest(name: string, port: number): number[] {
  const bytes = Buffer.from(name, "latin1");
  return [5, 1, 0, 3, bytes.length, ...bytes, port >> 8, port & 255];
}

/**
 * An HTTP CONNECT with the raw target bytes: the status code, and for a failure the body (the proxy
 * closes after it). A tunnel (200) is closed at once.
 */
export async function httpConnect(
  proxyPort: number,
  target: string,
): Promise<{ status: number; body: string }> {
  const c = await RawClient.open(proxyPort);
  c.send(Buffer.from(`CONNECT ${target} HTTP/1.1\r\nHost: x\r\n\r\n`, "latin1"));
  let head = "";
  while (!head.includes("\r\n\r\n")) head += String(await c.read(1));
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? -1);
  const body = status === 200 ? "" : String(await c.untilClosed());
  c.close();
  return { status, body };
}

/** The VmRSS of a process, in bytes. */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/**
 * A tiny UDP DNS server on `address` (127.0.0.1): answers A queries for names in `records`, NXDOMAIN
 * otherwise, so DNS tests never depend on (or send to) a real resolver. `delayMs` holds every answer
 * that long (a slow resolver). `queries`: every question's name and the address it came from.
 */
export async function dnsStub(
  records: Record<string, string>,
  delayMs = 0,
  address = "127.0.0.1",
): Promise<{ port: number; queries: { name: string; from: string }[]; close(): void }> {
  const sock = createSocket("udp4");
  const queries: { name: string; from: string }[] = [];
  let open = true;
  sock.on("message", (msg, rinfo) => {
    let i = 12;
    const labels: string[] = [];
    while (msg[i] !== 0 && i < msg.length) {
      labels.push(msg.toString("latin1", i + 1, i + 1 + msg[i]));
      i += msg[i] + 1;
    }
    const qEnd = i + 5;
    const qtype = msg.readUInt16BE(i + 1);
    const name = labels.join(".").toLowerCase();
    queries.push({ name, from: rinfo.address });
    const ip = records[name];
    const answer = ip !== undefined && qtype === 1;
    const header = Buffer.from(msg.subarray(0, 12));
    header.writeUInt16BE(0x8180 | (ip === undefined ? 3 : 0), 2); // response, RD+RA, rcode
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answer ? 1 : 0, 6);
    header.writeUInt16BE(0, 8);
    header.writeUInt16BE(0, 10);
    const parts = [header, msg.subarray(12, qEnd)];
    if (answer) {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0);
      rr.writeUInt16BE(1, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(60, 6);
      rr.writeUInt16BE(4, 10);
      ip.split(".").forEach((o, k) => {
        rr[12 + k] = Number(o);
      });
      parts.push(rr);
    }
    const reply = Buffer.concat(parts);
    if (delayMs === 0) sock.send(reply, rinfo.port, rinfo.address);
    else setTimeout(() => open && sock.send(reply, rinfo.port, rinfo.address), delayMs);
  });
  sock.bind(0, address);
  await once(sock, "listening");
  return {
    port: sock.address().port,
    queries,
    close: () => {
      open = false;
      sock.close();
    },
  };
}

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** curl, bounded in time; never throws on curl's own failures. */
export function curl(args: string[]) {
  return run("curl", ["-sS", "--max-time", "10", ...args], { allowFail: true, timeoutMs: 15_000 });
}

/** The status line code the proxy answered to curl's HTTP CONNECT for `url`. */
export async function connectStatus(proxyPort: number, url: string): Promise<string> {
  const r = await curl([
    "-p",
    "--proxy",
    `http://127.0.0.1:${proxyPort}`,
    "-o",
    "/dev/null",
    "-w",
    "%{http_connect}",
    url,
  ]);
  return r.stdout;
}

/**
 * Asserts the proxy drops a new client without answering: the connection is reset or closed with
 * zero bytes received (the reset may even race the connect itself).
 */
export async function expectDropped(port: number): Promise<void> {
  let c: RawClient;
  try {
    c = await RawClient.open(port);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ECONNRESET") return;
    throw e;
  }
  c.send([5, 1, 0]);
  const got = await c.untilClosed();
  if (got.length !== 0) throw new Error(`expected no answer, got ${got.toString("hex")}`);
}

/** Runs Python with a PySocks socket `s` (TCP or UDP) already pointed at the proxy; returns stdout/stderr. */
export function runPySocks(proxyPort: number, kind: "stream" | "dgram", lines: string[]) {
  const script = [
    "import socket, socks, sys",
    `s = socks.socksocket(socket.AF_INET, socket.${kind === "stream" ? "SOCK_STREAM" : "SOCK_DGRAM"})`,
    `s.set_proxy(socks.SOCKS5, "127.0.0.1", ${proxyPort})`,
    "s.settimeout(10)",
    ...lines,
  ].join("\n");
  return run(PYTHON, ["-c", script], { timeoutMs: 15_000, allowFail: true });
}

/** Three exits whose tunnel addresses are loopback addresses: binding to them needs no privileges. */
export const LOOPBACK_EXITS = [
  { name: "fra", interface: "wgetest-fra", address: "127.0.0.2/8" },
  { name: "hel", interface: "wgetest-hel", address: "127.0.0.3/8" },
  { name: "ams", interface: "wgetest-ams", address: "127.0.0.4/8" },
];
export const LOOPBACK_EXIT_ADDRESS: Record<string, string> = {
  fra: "127.0.0.2",
  hel: "127.0.0.3",
  ams: "127.0.0.4",
};

/** A LOOPBACK_EXITS exit's health report in `runDir`, as its gateway agent writes it. */
export function writeHealth(
  runDir: string,
  exit: string,
  state: "up" | "down",
  checkedAt = Math.floor(Date.now() / 1000),
): void {
  const x = LOOPBACK_EXITS.find((e) => e.name === exit)!;
  writeFileSync(
    join(runDir, `${x.interface}.health.json`),
    JSON.stringify({ exit, interface: x.interface, state, handshakeAgeSeconds: 5, checkedAt }),
  );
}

/**
 * A UDP association through the proxy as `user`, with an echo server that answers each datagram with
 * the source address it came from: `ask(host)` sends one to the echo server by that name or address and
 * resolves with the source address (the exit).
 */
export async function udpAssociation(
  proxyPort: number,
  user: string,
  password: string,
): Promise<{ c: RawClient; ask: (host?: string) => Promise<string>; close: () => void }> {
  const echo = createSocket("udp4");
  echo.on("message", (_msg, from) => echo.send(from.address, from.port, from.address));
  echo.bind(0, "127.0.0.1");
  await once(echo, "listening");
  const sock = createSocket("udp4");
  sock.bind(0, "127.0.0.1");
  await once(sock, "listening");
  const c = await RawClient.open(proxyPort);
  const close = () => {
    c.close();
    sock.close();
    echo.close();
  };
  let reply: Buffer;
  try {
    c.send([5, 1, 2]);
    await c.read(2);
    c.send([1, user.length, ...Buffer.from(user), password.length, ...Buffer.from(password)]);
    if ((await c.read(2))[1] !== 0) throw new Error(`${user} not authenticated`);
    c.send(ipv4Request(sock.address().port, [127, 0, 0, 1], 3));
    reply = await c.read(10);
    if (reply[1] !== 0) throw new Error(`UDP ASSOCIATE refused with reply ${reply[1]}`);
  } catch (e) {
    close();
    throw e;
  }
  const got: Buffer[] = [];
  sock.on("message", (m) => got.push(m));
  const ask = async (host = "127.0.0.1") => {
    const n = got.length;
    sock.send(
      Buffer.concat([serializeUdpHeader(host, echo.address().port), Buffer.from("hi")]),
      reply.readUInt16BE(8),
      `${reply[4]}.${reply[5]}.${reply[6]}.${reply[7]}`,
    );
    await until(() => got.length > n, 5000, "an answer");
    const d = parseUdpDatagram(got[n]);
    return d.status === "ok" ? String(d.value.data) : "";
  };
  return { c, ask, close };
}
