import { createServer, type Server } from "node:net";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { getSystemErrorName } from "node:util";
import type { HistogramSeries } from "../metrics/hot-path.js";
import type { ProxyMetrics } from "../metrics/proxy-metrics.js";
import { canonicalIp } from "../policy/addresses.js";
import { ownAddresses } from "../policy/own-addresses.js";
import { errorMessage, OperationError } from "../util/errors.js";
import { formatHostPort, type HostPort } from "../util/hostport.js";
import { jsonField, LineLogger, type Logger } from "../util/log.js";
import { Connection, type ConnectionHost, isFdExhaustion } from "./connection.js";
import { fdsNeeded, readFdLimit } from "./fd-limit.js";
import { REP } from "./protocol.js";
import { type AcceptedHandle, detachAccepted, setRelayBufferBudget } from "./relay.js";
import { replyName } from "./replies.js";
import type { ProxySettings } from "./settings.js";
import { SlotSet } from "./slot-set.js";

/** The listening handle's option setters (Node's TCP handle; delay in seconds) and accept callback. */
interface TcpHandleOptions {
  setNoDelay(on: boolean): number;
  setKeepAlive(on: boolean, delaySeconds: number): number;
  onconnection?: (err: number, handle: AcceptedHandle) => void;
}

/** Filled by getpeername for each accepted connection (one object, reused). */
const peer: { address?: string; port?: number } = {};

/** Refusals and internal errors are logged at most once per this interval (with a count), so a flood cannot flood the log. */
const LOG_INTERVAL_MS = 5000;

/**
 * The sweep (timeouts, keepalive, drain deadlines) runs at least this often, and 4 times per the
 * shortest of the timeouts and the keepalive idle time: a timeout fires at most one interval late
 * (the idle timeout two: its deadline moves at the sweep that saw the last traffic).
 */
const SWEEP_MAX_MS = 1000;

function sweepInterval(s: ProxySettings): number {
  const spans = [s.handshakeTimeoutMs, s.connectTimeoutMs, s.idleTimeoutMs, s.keepaliveMs].filter(
    (ms) => ms > 0,
  );
  return Math.max(10, Math.min(SWEEP_MAX_MS, ...spans.map((ms) => ms / 4)));
}

/** How long the lines of connections ended at the drain deadline may take to be written. */
const DRAIN_LOG_WAIT_MS = 2000;

/** One line per interval at most; the lines in between are counted in the next one (`sinceLastLog`). */
class RateLimited {
  private last = Number.NEGATIVE_INFINITY;
  private count = 0;

  constructor(private readonly intervalMs = LOG_INTERVAL_MS) {}

  /** Calls `write` with the number of events since the last line, or does nothing when it is too soon. */
  event(write: (sinceLastLog: number) => void): void {
    this.count++;
    const now = Date.now();
    if (now - this.last < this.intervalMs) return;
    this.last = now;
    write(this.count);
    this.count = 0;
  }
}

function listenFix(code: string | undefined, at: string): string {
  switch (code) {
    case "EADDRINUSE":
      return `${at} is already in use: stop the other process (ss -ltnp) or choose another --listen`;
    case "EACCES":
      return `no permission to listen on ${at}: use a port >= 1024 or grant CAP_NET_BIND_SERVICE (systemd AmbientCapabilities=)`;
    case "EADDRNOTAVAIL":
      return `no interface has the address of ${at}: check --listen against \`ip addr\``;
    default:
      return `cannot listen on ${at}: ${code ?? "unknown error"}`;
  }
}

function resultOf(conn: Connection): string {
  if (conn.outcome === "malformed" || conn.outcome === "internal_error" || conn.outcome === "no_exit")
    return conn.outcome;
  if (conn.reply === REP.succeeded) return conn.outcome ?? "ok"; // or how we ended it: idle_timeout, drain_deadline
  if (conn.reply === REP.notAllowed) return "refused";
  if (conn.reply >= 0) return "failed";
  return conn.outcome ?? "closed";
}

/**
 * The fields of a connection's line, in this order: id, client, protocol, destination, resolved, user,
 * exit, reply, result, why, up, down, ms (absent ones left out). IP literals, the protocol and the
 * result are our own text and need no escaping; everything a client or a config chose is escaped.
 */
function connectionFields(conn: Connection, result: string, up: number, down: number): string {
  const ip = conn.clientIp;
  const client = ip.includes(":") ? `[${ip}]:${conn.clientPort}` : `${ip}:${conn.clientPort}`;
  let s = `"id":${conn.id},"client":"${client}"`;
  if (conn.protocol !== undefined) s += `,"protocol":"${conn.protocol}"`;
  s += jsonField(',"destination":', conn.dest);
  if (conn.resolved !== undefined) s += `,"resolved":"${conn.resolved}"`;
  s += jsonField(',"user":', conn.user) + jsonField(',"exit":', conn.exit);
  if (conn.reply >= 0) s += `,"reply":${conn.reply}`;
  s += `,"result":"${result}"${jsonField(',"why":', conn.why)}`;
  return `${s},"up":${up},"down":${down},"ms":${Math.round(performance.now() - conn.started)}`;
}

/**
 * The SOCKS5 / HTTP CONNECT server: accepts on every listen address, applies the client allow-list
 * and connection limits before reading a byte, and keeps the accounting (metrics, one log line per
 * connection at close). Settings can be swapped at run time (SIGHUP); established connections keep
 * theirs.
 */
export class ProxyServer implements ConnectionHost {
  private readonly servers: Server[] = [];
  readonly connections = new SlotSet<Connection>();
  private readonly perClient = new Map<string, number>();
  private nextId = 1;
  private readonly refusalLog = new RateLimited();
  private readonly errorLog = new RateLimited();
  /** The open-file limit (Node raised the soft one to the hard one at start). */
  private readonly fdLimit = readFdLimit()?.soft ?? Number.POSITIVE_INFINITY;
  private draining = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepEvery = 0;
  private endDrainNow: (() => void) | undefined;
  private ownStarted = false;
  /** The per-connection line: batched writes, and no redaction (fixed fields, never a credential). */
  private readonly connectionLog: LineLogger;
  private readonly handshakes: HistogramSeries;

  /** True once every listening socket carries the options accepted sockets inherit (see inheritOptions). */
  private inherits = false;
  private current: ProxySettings;

  constructor(
    settings: ProxySettings,
    private readonly metrics: ProxyMetrics,
    private readonly log: Logger,
  ) {
    this.current = settings;
    this.connectionLog = new LineLogger(log, "connection closed");
    this.handshakes = metrics.handshakeSeconds.series();
    setRelayBufferBudget(settings.relayBufferBytes);
    metrics.openConnections = () => this.connections.size;
    metrics.egress = () => this.current.egress;
    metrics.openByExit = () => {
      // Every configured exit, 0 included: a drained exit reads 0 rather than vanishing.
      const open = new Map((this.current.egress?.exits ?? []).map((x) => [x, 0]));
      for (const c of this.connections)
        if (c.exit !== undefined && c.reply === REP.succeeded) open.set(c.exit, (open.get(c.exit) ?? 0) + 1);
      return open;
    };
  }

  /** True from the start of shutdown: /healthz answers 503 then. */
  get isDraining(): boolean {
    return this.draining;
  }

  get settings(): ProxySettings {
    return this.current;
  }

  /** New settings (SIGHUP) apply to connections accepted from now on. */
  set settings(next: ProxySettings) {
    this.current = next;
    setRelayBufferBudget(next.relayBufferBytes);
    if (this.sweepTimer) this.startSweep();
    // The connection logger is a logger of its own (batched writes), not a child of `log`: it does not
    // follow the level a reload set on `log` (config log.level) unless told.
    this.connectionLog.follow(this.log);
    this.inheritOptions();
  }

  /**
   * On Linux an accepted socket inherits TCP_NODELAY and the keepalive settings of the listening
   * socket: setting them there once saves five syscalls on every connection. Node sets socket options
   * on its listening handle only through the handle itself; where that is not available, each
   * accepted socket gets them instead.
   */
  private inheritOptions(): void {
    const ka = this.current.keepaliveMs;
    this.inherits = this.servers.length > 0;
    for (const server of this.servers) {
      const h = (server as unknown as { _handle?: TcpHandleOptions | null })._handle;
      if (typeof h?.setNoDelay !== "function" || typeof h.setKeepAlive !== "function") {
        this.inherits = false;
        continue;
      }
      h.setNoDelay(true);
      h.setKeepAlive(ka > 0, Math.floor(ka / 1000));
    }
  }

  /**
   * (Re)starts the one periodic sweep over the open connections: their timeouts (Connection.sweep),
   * keepalive on relayed connections' outbound legs, and the exits whose drain deadline has passed.
   */
  private startSweep(): void {
    const every = sweepInterval(this.current);
    // Restarted only when the interval changes: reloads in quick succession must not keep postponing it.
    if (this.sweepTimer !== undefined && every === this.sweepEvery) return;
    clearInterval(this.sweepTimer);
    this.sweepEvery = every;
    this.sweepTimer = setInterval(() => {
      const now = performance.now();
      for (const c of this.connections) c.sweep(now); // each guarded by its connection
      try {
        this.closeDrainedExits();
      } catch (err) {
        this.errorLog.event((n) => this.log.error({ err, sinceLastLog: n }, "drain deadline sweep failed"));
      }
    }, every).unref();
  }

  /**
   * Ends the connections on the exits whose drain deadline has passed (by the settings of the moment,
   * whichever settings a connection started with): their clients reconnect and land on the replacement.
   */
  private closeDrainedExits(): void {
    const draining = this.current.egress?.draining;
    if (!draining?.size) return;
    const now = Date.now();
    const due = new Set(
      [...draining].filter(([, d]) => d.deadline !== undefined && d.deadline <= now).map(([x]) => x),
    );
    if (due.size === 0) return;
    const closed = new Map<string, number>();
    for (const c of this.connections) {
      const exit = c.exitIn(due);
      if (exit === undefined) continue;
      c.destroy("drain_deadline");
      closed.set(exit, (closed.get(exit) ?? 0) + 1);
    }
    for (const [exit, n] of closed)
      this.log.info({ exit, closed: n }, "exit drain deadline passed: closed its remaining connections");
  }

  /** Listens on every address; resolves with the actual addresses (port 0 → the port chosen). */
  async listen(addresses: readonly HostPort[] = this.settings.listen): Promise<HostPort[]> {
    // The destination policy refuses the gateway's own addresses: know them before the first client.
    if (!this.ownStarted) {
      await ownAddresses.start();
      this.ownStarted = true;
    }
    if (!this.sweepTimer) this.startSweep();
    const bound: HostPort[] = [];
    for (const at of addresses) {
      // Paused: the connection takes the accepted socket's handle over before anything is read.
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) =>
        this.accept(server, 0, detachAccepted(s)),
      );
      await new Promise<void>((resolve, reject) => {
        server.once("error", (e: NodeJS.ErrnoException) => {
          for (const s of this.servers) s.close();
          reject(new OperationError(listenFix(e.code, formatHostPort(at))));
        });
        server.listen({ host: at.host, port: at.port, backlog: 4096 }, resolve);
      });
      server.on("error", (e) => this.acceptFailed(e));
      // Take each accepted handle before Node wraps it in a Socket of its own, which the connection
      // would only replace by one that reads into the relay's buffers (see adoptHandle). Without that
      // hook the 'connection' listener above hands the handle over instead.
      const h = (server as unknown as { _handle?: TcpHandleOptions | null })._handle;
      if (typeof h?.onconnection === "function")
        h.onconnection = (err, handle) => this.accept(server, err, handle);
      this.servers.push(server);
      this.inheritOptions();
      const addr = server.address();
      const actual = typeof addr === "object" && addr ? { host: addr.address, port: addr.port } : at;
      bound.push(actual);
      this.log.info({ address: formatHostPort(actual) }, "listening");
    }
    return bound;
  }

  /** A new client (or `err`, a negative errno, from accept): admitted or reset before a byte is read. */
  private accept(server: Server, err: number, handle: AcceptedHandle): void {
    if (err !== 0) {
      const code = getSystemErrorName(err);
      this.acceptFailed(Object.assign(new Error(`accept: ${code}`), { code }));
      return;
    }
    const s = this.settings;
    const known = handle.getpeername(peer) === 0;
    const ip = (known && canonicalIp(peer.address ?? "")) || "";
    let refused: string | undefined;
    if (ip === "" || !s.clients.allows(ip)) refused = "client_not_allowed";
    else if (this.connections.size >= s.maxConnections) refused = "max_connections";
    else if ((this.perClient.get(ip) ?? 0) >= s.maxPerClient) refused = "max_per_client";
    // Each connection needs a second descriptor for its destination: refuse while that is still a
    // clean, counted refusal, instead of running into EMFILE (which Node's accept loop hides).
    else if (fdsNeeded(this.connections.size + 1) > this.fdLimit) refused = "fd_limit";
    if (refused) {
      // Nothing is answered: a reset, not even a SOCKS failure reply.
      if (handle.reset() !== 0) handle.close();
      this.refused(refused, ip || (known ? peer.address : undefined));
      return;
    }
    const client = new Connection(this.nextId++, handle, server, ip, peer.port ?? 0, s, this);
    if (!this.inherits) {
      client.client.setNoDelay(true);
      if (s.keepaliveMs > 0) client.client.setKeepAlive(true, s.keepaliveMs);
    }
    this.perClient.set(ip, (this.perClient.get(ip) ?? 0) + 1);
    this.connections.add(client);
  }

  private refused(reason: string, ip: string | undefined): void {
    this.metrics.refused.inc({ reason });
    this.refusalLog.event((n) => {
      const s = this.settings;
      const hint =
        reason === "client_not_allowed"
          ? "add its subnet with --allow-client / proxy.allowClients"
          : reason === "max_connections"
            ? `limit ${s.maxConnections} reached (proxy.limits.maxConnections)`
            : reason === "max_per_client"
              ? `limit ${s.maxPerClient} per client reached (proxy.limits.maxPerClient)`
              : `out of file descriptors (open-file limit ${this.fdLimit}): raise it (systemd LimitNOFILE=) or lower proxy.limits.maxConnections`;
      this.log.warn({ client: ip, reason, refusedSinceLastLog: n }, `client refused: ${hint}`);
    });
  }

  /**
   * An error of a listening socket. On EMFILE/ENFILE libuv accepts and closes the waiting clients
   * itself; when that fails too, the error ends here: counted and logged like a refusal.
   */
  private acceptFailed(err: Error): void {
    if (isFdExhaustion(err)) this.refused("fd_limit", undefined);
    else this.errorLog.event((n) => this.log.error({ err, sinceLastLog: n }, "accept failed"));
  }

  /** A connection could not get a descriptor for its destination (EMFILE/ENFILE): counted and logged. */
  fdExhausted(): void {
    this.refused("fd_limit", undefined);
  }

  /** The last-resort guard of a connection caught an exception: the connection ended, the process goes on. */
  internalError(conn: Connection, err: unknown): void {
    this.errorLog.event((n) =>
      this.log.error(
        { id: conn.id, err: errorMessage(err), stack: (err as Error)?.stack, sinceLastLog: n },
        "internal error: the connection was closed",
      ),
    );
  }

  observeDns(seconds: number, outcome: string, exit: string | undefined): void {
    this.metrics.dnsSeconds.series(exit ?? "none", outcome).observe(seconds);
  }

  connectionDone(conn: Connection): void {
    if (!this.connections.delete(conn)) return; // already accounted (see shutdown)
    const n = this.perClient.get(conn.clientIp)! - 1;
    if (n > 0) this.perClient.set(conn.clientIp, n);
    else this.perClient.delete(conn.clientIp);
    const m = this.metrics;
    const result = resultOf(conn);
    const reply = conn.reply >= 0 ? replyName(conn.reply) : "none";
    m.connections.add(1, result, reply);
    const up = conn.bytesUp;
    const down = conn.bytesDown;
    if (up > 0) m.bytes.add(up, "up");
    if (down > 0) m.bytes.add(down, "down");
    if (conn.handshakeSeconds >= 0) this.handshakes.observe(conn.handshakeSeconds);
    if (conn.exit !== undefined || result === "no_exit") {
      const exit = conn.exit ?? "none";
      m.exitConnections.add(1, exit, result);
      if (up > 0) m.exitBytes.add(up, exit, "up");
      if (down > 0) m.exitBytes.add(down, exit, "down");
    }
    if (this.connectionLog.enabled) this.connectionLog.info(connectionFields(conn, result, up, down));
  }

  /**
   * Stops accepting, waits up to drainMs (or until endDrain) for open connections to finish, then
   * ends the rest, each with its log line (outcome drain_deadline).
   */
  async shutdown(drainMs: number): Promise<{ drained: number; destroyed: number }> {
    this.draining = true;
    for (const s of this.servers) s.close(); // its callback would wait for every connection
    const open = this.connections.size;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        clearInterval(poll);
        this.endDrainNow = undefined;
        resolve();
      };
      const timer = setTimeout(done, drainMs);
      const poll = setInterval(() => this.connections.size === 0 && done(), 100);
      this.endDrainNow = done;
      if (this.connections.size === 0) done();
    });
    const destroyed = this.connections.size;
    for (const c of this.connections) c.destroy("drain_deadline");
    // Their lines are written as their sockets close, in the next turns of the event loop.
    const deadline = Date.now() + DRAIN_LOG_WAIT_MS;
    while (this.connections.size > 0 && Date.now() < deadline) await sleep(10);
    for (const c of [...this.connections]) this.connectionDone(c);
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    if (this.ownStarted) ownAddresses.stop();
    this.ownStarted = false;
    this.connectionLog.flush();
    return { drained: open - destroyed, destroyed };
  }

  /** Ends the drain period now (a second SIGTERM/SIGINT): shutdown closes what is still open. */
  endDrain(): void {
    this.endDrainNow?.();
  }
}
