import type { Server } from "node:net";
import { performance } from "node:perf_hooks";
import { ipv4Number } from "../policy/addresses.js";
import type { ExitResolution } from "../policy/exit-dns.js";
import { errorMessage } from "../util/errors.js";
import { formatHostPort } from "../util/hostport.js";
import { httpResponse, parseConnectHead } from "./http-connect.js";
import {
  CMD,
  METHOD,
  parseAuthRequest,
  parseGreeting,
  parseRequest,
  REP,
  serializeAuthReply,
  serializeMethodChoice,
  serializeReply,
} from "./protocol.js";
import {
  type AcceptedHandle,
  adoptHandle,
  boundAddress,
  connectLeg,
  type Leg,
  queuedBytes,
  relay,
} from "./relay.js";
import { httpStatusForReply, replyForError, replyText } from "./replies.js";
import { type ProxySettings, resolveDestination } from "./settings.js";
import { UdpAssociation } from "./udp.js";

/** What a connection needs from its server: accounting when it ends, and where to report a bug it hit. */
export interface ConnectionHost {
  connectionDone(conn: Connection): void;
  /** `exit`: the exit that resolved the name (undefined without exits: the proxy's one resolver). */
  observeDns(seconds: number, outcome: string, exit: string | undefined): void;
  internalError(conn: Connection, err: unknown): void;
  /** No file descriptor for the destination (EMFILE/ENFILE): counted and logged by the server. */
  fdExhausted(): void;
}

export function isFdExhaustion(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "EMFILE" || code === "ENFILE";
}

const CONN = Symbol("connection");
type Tagged = Leg & { [CONN]?: Connection };

/** Handshake stages, in order; everything before Connecting still parses client bytes. */
const S = {
  Start: 0,
  Greeting: 1,
  Auth: 2,
  Request: 3,
  Http: 4,
  Connecting: 5,
  Relaying: 6,
  Done: 7,
} as const;
type Stage = (typeof S)[keyof typeof S];

/**
 * Bytes a client may send ahead of the reply before we stop reading from it (the rest waits in the
 * kernel): enough for a TLS ClientHello or an HTTP request; only while the outbound connect is pending.
 */
const EARLY_LIMIT = 16 * 1024;

/** Destinations with several addresses: try at most this many before giving up. */
const MAX_ATTEMPTS = 3;

function isLetter(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
}

function timeoutError(): NodeJS.ErrnoException {
  return Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" });
}

/**
 * Shared handlers (no per-connection closures): each socket finds its Connection via CONN. Each one is
 * the connection's last-resort guard: an exception (a bug, or input nobody foresaw) ends this one
 * connection with a log line instead of the process with every user's connections.
 */
function guarded<A extends unknown[]>(handle: (c: Connection, socket: Tagged, ...args: A) => void) {
  return function (this: Tagged, ...args: A): void {
    const c = this[CONN]!;
    try {
      handle(c, this, ...args);
    } catch (err) {
      c.crashed(err);
    }
  };
}
const onClientClose = guarded((c) => c.clientClosed());
const onClientEnd = guarded((c) => c.clientEnded());
const onUpstreamConnect = guarded((c, up) => c.connected(up));
const onUpstreamError = guarded((c, up, err: Error) => c.upstreamFailed(up, err));
const onLegClose = guarded((c) => c.legClosed());
function ignore(): void {
  // Errors on the client socket are followed by 'close', which does the cleanup.
}

/**
 * One client connection: SOCKS5 (or HTTP CONNECT) handshake, destination policy, DNS, the outbound
 * connect, then the relay. Parses the chunks in the read buffer as they arrive; only bytes kept past
 * the call (a message split across reads, data sent ahead of the reply) are copied.
 */
export class Connection {
  stage: Stage = S.Start;
  private buf: Buffer | undefined;
  private early: Buffer | undefined;
  readonly client: Tagged;
  upstream: Tagged | undefined;
  private udp: UdpAssociation | undefined;
  private open = 1;
  private candidates: string[] = [];
  /** The exit that resolved the destination name: its addresses are connected only through it. */
  private via: string | undefined;
  private port = 0;
  private keepaliveOn = false;
  /**
   * When the timeout of the current stage passes (performance.now() ms; 0 = none): the handshake's,
   * the outbound connect's, or, while relaying, the idle timeout, which traffic pushes back (see sweep).
   */
  private deadline: number;
  /**
   * Bytes read from both legs, and bytes still queued for writing on both, at the last sweep: a change
   * in either is traffic, which the idle timeout counts from.
   */
  private seen = 0;
  private queued = 0;
  /** Its place in the server's set of open connections (see SlotSet). */
  slot = -1;
  readonly started = performance.now();
  handshakeSeconds = -1;
  protocol: "socks5" | "http" | undefined;
  dest: string | undefined;
  resolved: string | undefined;
  /** The authenticated user (only when authentication is required: otherwise any name is accepted). */
  user: string | undefined;
  /** The exit the connection was sent to (several exits). */
  exit: string | undefined;
  /** SOCKS reply code sent (HTTP: the equivalent code); -1 = none. */
  reply = -1;
  /** Why the connection ended early (malformed, auth_failed, handshake_timeout, drain_deadline, ...). */
  outcome: string | undefined;
  why: string | undefined;

  constructor(
    readonly id: number,
    accepted: AcceptedHandle,
    server: Server,
    readonly clientIp: string,
    readonly clientPort: number,
    private readonly settings: ProxySettings,
    private readonly host: ConnectionHost,
  ) {
    const client: Tagged = adoptHandle(accepted, server, this);
    this.client = client;
    client[CONN] = this;
    this.deadline = this.started + settings.handshakeTimeoutMs;
    client.on("end", onClientEnd);
    client.on("error", ignore);
    client.on("close", onClientClose);
  }

  handshake(chunk: Buffer): void {
    try {
      this.consume(chunk);
    } catch (err) {
      this.crashed(err);
    }
  }

  /** Runs `fn` under the connection's last-resort guard (for callbacks that are not socket events). */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.crashed(err);
    }
  }

  private consume(chunk: Buffer): void {
    // A UDP ASSOCIATE control connection carries nothing after the reply: stray bytes are ignored.
    if (this.stage === S.Relaying) return;
    if (this.stage === S.Connecting) {
      // sent ahead of our reply: it belongs to the relay
      this.early = this.early === undefined ? Buffer.from(chunk) : Buffer.concat([this.early, chunk]);
      if (this.early.length >= EARLY_LIMIT) this.client.pause();
      return;
    }
    if (this.stage === S.Done) return; // bytes of a client we are closing
    const buf = this.buf === undefined ? chunk : Buffer.concat([this.buf, chunk]);
    this.buf = undefined;
    let off = 0;
    while (off >= 0) off = this.step(buf, off);
  }

  /** Handles the message at `off`; returns the next offset, or -1 when waiting (bytes, DNS, connect) or done. */
  private step(buf: Buffer, off: number): number {
    switch (this.stage) {
      case S.Start: {
        const b = buf[off];
        if (b === 5) {
          this.protocol = "socks5";
          this.stage = S.Greeting;
        } else if (isLetter(b) && this.settings.httpConnect) {
          this.protocol = "http";
          this.stage = S.Http;
        } else return this.drop(b === 4 ? "socks4_unsupported" : "unknown_protocol");
        return off;
      }
      case S.Greeting: {
        const r = parseGreeting(buf, off);
        if (r.status === "more") return this.wait(buf, off);
        if (r.status === "error") return this.drop("malformed", r.message);
        const method = this.chooseMethod(r.value.methods);
        this.client.write(serializeMethodChoice(method));
        if (method === METHOD.noAcceptable) return this.end("no_acceptable_method");
        this.stage = method === METHOD.userPass ? S.Auth : S.Request;
        return off + r.length;
      }
      case S.Auth: {
        const r = parseAuthRequest(buf, off);
        if (r.status === "more") return this.wait(buf, off);
        if (r.status === "error") return this.drop("malformed", r.message);
        const { username, password } = r.value;
        const okay = !this.settings.requireAuth || this.settings.users.verify(username, password);
        this.client.write(serializeAuthReply(okay));
        if (!okay) return this.end("auth_failed");
        if (this.settings.requireAuth) this.user = username;
        this.stage = S.Request;
        return off + r.length;
      }
      case S.Request: {
        const r = parseRequest(buf, off);
        if (r.status === "more") return this.wait(buf, off);
        if (r.status === "error") {
          if (r.reply === undefined) return this.drop("malformed", r.message);
          return this.fail(r.reply, r.message, "malformed");
        }
        const { code, host, port, invalid } = r.value;
        this.begin(buf, off + r.length, host, port);
        if (code === CMD.connect) {
          if (invalid !== undefined) return this.fail(REP.generalFailure, invalid, "malformed");
          this.request(host, port);
        } else if (code === CMD.udpAssociate) this.associate(port);
        else return this.fail(REP.commandNotSupported, `command ${code} (BIND is not supported)`);
        return -1;
      }
      case S.Http: {
        const r = parseConnectHead(off === 0 ? buf : buf.subarray(off));
        if (r.status === "more") return this.wait(buf, off);
        // Parser messages describe the client's own request line, never an address we resolved.
        if (r.status === "error") return this.httpEnd(r.reply ?? 400, "malformed", r.message, r.message);
        const { host, port, credentials } = r.value;
        const { users, requireAuth } = this.settings;
        if (requireAuth && !(credentials && users.verify(credentials.username, credentials.password))) {
          return this.httpEnd(407, "auth_failed");
        }
        if (requireAuth) this.user = credentials?.username;
        this.begin(buf, off + r.length, host, port);
        this.request(host, port);
        return -1;
      }
      default:
        return -1;
    }
  }

  /** Authentication required → username/password only; else no auth (or accept any credentials). */
  private chooseMethod(methods: number[]): number {
    if (this.settings.requireAuth)
      return methods.includes(METHOD.userPass) ? METHOD.userPass : METHOD.noAcceptable;
    if (methods.includes(METHOD.noAuth)) return METHOD.noAuth;
    return methods.includes(METHOD.userPass) ? METHOD.userPass : METHOD.noAcceptable;
  }

  private wait(buf: Buffer, off: number): number {
    // Usually every byte was used (the greeting came alone): nothing to keep.
    if (off < buf.length) this.buf = Buffer.from(off === 0 ? buf : buf.subarray(off));
    return -1;
  }

  /**
   * The request is complete. Reading goes on (stopping and restarting it costs two syscalls on every
   * connection, for clients that rarely send ahead); bytes sent before the reply are kept up to
   * EARLY_LIMIT, then reading stops until the relay starts.
   */
  private begin(buf: Buffer, used: number, host: string, port: number): void {
    this.stage = S.Connecting;
    this.dest = formatHostPort({ host, port });
    if (used < buf.length) this.early = Buffer.from(buf.subarray(used));
    this.deadline = 0; // DNS and connect have their own timeouts, and their failures a reply
  }

  /** `host` is a canonical IP literal or a valid name (the parsers checked it with parseHost). */
  private request(host: string, port: number): void {
    if (port === 0) {
      this.fail(REP.generalFailure, "destination port 0", "malformed");
      return;
    }
    const policy = this.settings.destinations;
    // A name has no ':' and never reads as a dotted quad (parseHost): no regex needed to tell them apart.
    const literal = ipv4Number(host) >= 0 || host.includes(":");
    const refused = policy.checkPort(port) ?? (literal ? policy.checkLiteral(host) : policy.checkName(host));
    if (refused) {
      this.fail(REP.notAllowed, refused);
      return;
    }
    this.port = port;
    if (literal) {
      this.addressesReady([host]);
      return;
    }
    const req = { user: this.user, client: this.clientIp, port };
    resolveDestination(this.settings, req, host, (s, o, x) => this.host.observeDns(s, o, x)).then(
      (r) => this.guard(() => this.nameResolved(r)),
      (err) => this.crashed(err),
    );
  }

  /** The name's addresses, all routed to the exit that resolved them; or why there are none. */
  private nameResolved(r: ExitResolution): void {
    if (this.stage !== S.Connecting) return;
    this.exit = r.exit;
    if (r.error) this.fail(replyForError(r.error), r.error.message);
    else if (r.refused !== undefined) this.fail(REP.networkUnreachable, r.refused, "no_exit");
    else {
      this.via = r.exit;
      this.addressesReady(r.addresses);
    }
  }

  /** Policy on the resolved addresses: connect only to an address that passed the check (no rebinding). */
  private addressesReady(addresses: string[]): void {
    if (this.stage !== S.Connecting) return;
    let why: string | undefined;
    for (const a of addresses) {
      const refused = this.settings.destinations.checkAddress(a);
      if (refused) why ??= refused;
      else if (this.candidates.length < MAX_ATTEMPTS) this.candidates.push(a);
    }
    if (this.candidates.length === 0) this.fail(REP.notAllowed, why);
    else this.tryNext();
  }

  private tryNext(): void {
    const ip = this.candidates.shift()!;
    this.resolved = ip;
    // A name's addresses go through the exit that resolved them; an IP's exit is chosen for it.
    const egress = this.settings.egress;
    const choice =
      this.via !== undefined
        ? egress?.bind(this.via, ip)
        : egress?.choose({ user: this.user, client: this.clientIp, destination: ip, port: this.port });
    this.exit = choice?.exit;
    if (choice?.refused !== undefined) {
      this.fail(REP.networkUnreachable, choice.refused, "no_exit");
      return;
    }
    const up: Tagged = connectLeg(ip, this.port, choice?.localAddress);
    up[CONN] = this;
    this.upstream = up;
    this.open++;
    this.deadline = performance.now() + this.settings.connectTimeoutMs;
    up.on("connect", onUpstreamConnect);
    up.on("error", onUpstreamError);
    up.on("close", onLegClose);
  }

  connected(up: Tagged): void {
    if (up !== this.upstream || this.stage !== S.Connecting) {
      up.destroy();
      return;
    }
    this.stage = S.Relaying;
    this.reply = REP.succeeded;
    const client = this.client;
    if (this.protocol === "http") client.write(httpResponse(200));
    else {
      const bound = boundAddress(up);
      client.write(serializeReply(REP.succeeded, bound?.address ?? "0.0.0.0", bound?.port ?? 0));
    }
    this.relaying();
    relay(client, up, this.early, this);
    this.early = undefined;
  }

  /** The handshake is over (the success reply is on its way): from now on only the idle timeout applies. */
  private relaying(): void {
    const now = performance.now();
    this.handshakeSeconds = (now - this.started) / 1000;
    const idle = this.settings.idleTimeoutMs;
    this.deadline = idle > 0 ? now + idle : 0;
  }

  /**
   * Called by the server's sweep (several times per timeout, see sweepInterval) instead of a timer per
   * socket: Node's socket timeouts cost a timer object and a timer-list update on every read and write.
   * The handshake and connect deadlines are fixed (a client trickling bytes gains nothing); the idle one
   * moves on whenever bytes were read from either leg since the last sweep (a write is always the
   * other leg's read), or a pending write moved on: a slow reader draining one large write is traffic.
   */
  sweep(now: number): void {
    try {
      if (this.deadline !== 0) this.expire(now);
      this.enableKeepalive();
    } catch (err) {
      this.crashed(err);
    }
  }

  private expire(now: number): void {
    if (this.stage === S.Relaying) {
      const read = this.client.bytesRead + (this.upstream?.bytesRead ?? 0);
      const queued = queuedBytes(this.client) + queuedBytes(this.upstream);
      if (read !== this.seen || queued !== this.queued) {
        this.seen = read;
        this.queued = queued;
        this.deadline = now + this.settings.idleTimeoutMs;
        return;
      }
    }
    if (now < this.deadline) return;
    if (this.stage === S.Connecting && this.upstream !== undefined)
      this.upstreamFailed(this.upstream, timeoutError());
    else this.timedOut();
  }

  /**
   * TCP keepalive on the outbound leg (the client's leg inherits it from the listening socket). The
   * server's periodic sweep switches it on instead of the connect: four syscalls that short-lived
   * connections never need. The sweep comes well within the keepalive idle time, and the kernel
   * counts that time from the last traffic, so the first probe goes out when it would have anyway.
   */
  private enableKeepalive(): void {
    const ms = this.settings.keepaliveMs;
    if (this.keepaliveOn || ms === 0 || this.stage !== S.Relaying || this.upstream === undefined) return;
    this.keepaliveOn = true;
    this.upstream.setKeepAlive(true, ms);
  }

  /** UDP ASSOCIATE: `port` is where the client will send from (0 = not known yet). */
  private associate(port: number): void {
    const h = this.host;
    UdpAssociation.open(this.client.localAddress ?? "", this.clientIp, port, this.settings, {
      observeDns: (s, o, x) => h.observeDns(s, o, x),
      crashed: (err) => this.crashed(err),
      user: this.user,
    }).then(
      (udp) => {
        if (this.stage !== S.Connecting) udp.close();
        else {
          this.udp = udp; // closed by crashed() too
          this.guard(() => this.associated(udp));
        }
      },
      (err: Error) =>
        this.guard(() => {
          if (isFdExhaustion(err)) this.host.fdExhausted();
          if (this.stage === S.Connecting) this.fail(REP.generalFailure, err.message);
        }),
    );
  }

  private associated(udp: UdpAssociation): void {
    this.stage = S.Relaying;
    this.reply = REP.succeeded;
    this.dest = "udp-associate";
    const { host, port: boundPort } = udp.address;
    this.client.write(serializeReply(REP.succeeded, host, boundPort));
    this.relaying();
    // The control connection carries nothing more (stray bytes are read and ignored); its EOF ends the association.
    this.client.resume();
    // An EOF read while the association was being set up came before it existed: act on it now.
    if (this.client.readableEnded) this.clientEnded();
  }

  get bytesUp(): number {
    return this.upstream?.bytesWritten ?? this.udp?.up ?? 0;
  }

  get bytesDown(): number {
    return this.upstream?.bytesRead ?? this.udp?.down ?? 0;
  }

  upstreamFailed(up: Tagged, err: Error): void {
    if (up !== this.upstream || this.stage !== S.Connecting) return; // relay errors: 'close' handles them
    up.destroy();
    if (isFdExhaustion(err)) this.host.fdExhausted();
    if (this.candidates.length > 0 && (err as NodeJS.ErrnoException).code !== "EACCES") this.tryNext();
    else this.fail(replyForError(err), err.message);
  }

  /**
   * Sends the failure reply for the protocol in use and closes (after the client reads it). The client
   * learns the reply code (HTTP: status and the class of the reason); `why`, with the details, is logged.
   */
  private fail(rep: number, why: string | undefined, outcome?: string): number {
    this.reply = rep;
    this.why = why;
    if (this.protocol === "http")
      return outcome === "no_exit"
        ? this.httpEnd(503, outcome, why, "no exit is available for this connection now")
        : this.httpEnd(httpStatusForReply(rep), outcome, why, replyText(rep));
    this.client.write(serializeReply(rep));
    return this.end(outcome);
  }

  private httpEnd(status: number, outcome: string | undefined, why?: string, body?: string): number {
    this.why ??= why;
    this.client.write(httpResponse(status, body));
    return this.end(outcome);
  }

  /**
   * Half-closes after a reply and keeps reading (and discarding) until the client closes too, so the
   * reply is not lost to a reset; the handshake timeout bounds clients that never close.
   */
  private end(outcome: string | undefined): number {
    this.outcome ??= outcome;
    this.stage = S.Done;
    this.upstream?.destroy();
    this.client.end();
    this.client.resume();
    this.deadline = performance.now() + this.settings.handshakeTimeoutMs;
    return -1;
  }

  /** Protocol violations and unknown protocols: close without an answer. */
  private drop(outcome: string, why?: string): number {
    this.outcome ??= outcome;
    this.why ??= why;
    this.stage = S.Done;
    this.client.destroy();
    return -1;
  }

  private timedOut(): void {
    this.outcome ??= this.stage === S.Relaying ? "idle_timeout" : "handshake_timeout";
    this.stage = S.Done;
    this.client.destroy();
    this.upstream?.destroy();
  }

  /** EOF before the request was complete, after a failure reply, or on a UDP control connection. */
  clientEnded(): void {
    if (this.stage < S.Connecting || this.stage === S.Done || this.udp) {
      if (this.stage !== S.Done) this.outcome ??= "client_closed";
      this.stage = S.Done;
      this.client.destroy();
    }
  }

  clientClosed(): void {
    this.udp?.close();
    if (this.stage !== S.Relaying) {
      if (this.stage !== S.Done) this.outcome ??= "client_closed";
      this.stage = S.Done;
      this.upstream?.destroy();
    }
    this.legClosed();
  }

  legClosed(): void {
    if (--this.open === 0) this.host.connectionDone(this);
  }

  /** Which of `exits` the connection sends by (its outbound leg's, or one its UDP datagrams took), if any. */
  exitIn(exits: ReadonlySet<string>): string | undefined {
    if (this.exit !== undefined && exits.has(this.exit)) return this.exit;
    for (const x of this.udp?.exits ?? []) if (exits.has(x)) return x;
    return undefined;
  }

  /** Ends the connection now, e.g. at the end of the drain period (outcome drain_deadline). */
  destroy(outcome: string): void {
    this.outcome ??= outcome;
    this.stage = S.Done;
    this.client.destroy();
    this.upstream?.destroy();
  }

  /** The last-resort guard: a bug hit while serving this connection ends it, and only it, with a log line. */
  crashed(err: unknown): void {
    if (this.outcome === "internal_error") return;
    this.outcome = "internal_error";
    this.why = errorMessage(err);
    this.host.internalError(this, err);
    this.stage = S.Done;
    this.udp?.close();
    this.client.destroy();
    this.upstream?.destroy();
  }
}
