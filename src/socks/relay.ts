import { connect, type NetConnectOpts, type Server, Socket } from "node:net";

/**
 * The two-way pipe between client and destination, reading into buffers we own (Node's `onread`).
 *
 * Why not `a.pipe(b)` or 'data' events: Node then allocates a fresh 64 KiB buffer for every read,
 * and at bulk rates the garbage collector spends as much CPU as the copying itself. Here each leg
 * reads into a buffer sized to its traffic (READ_SIZES), and reuses it for the next read. When a
 * write to the other side cannot complete at once, the reading leg pauses until it is flushed (the
 * pending write still reads from the buffer, and the next read goes into it again), so a reader that
 * stalls makes us hold at most that one buffer per direction. The large buffers all come from one
 * process-wide budget (setRelayBufferBudget): however many clients stop reading, they hold at most the
 * budget plus one small copy each; when it is used up, legs read in small steps.
 *
 * - Half-close: EOF from one side ends only the other side's write direction (both sockets are
 *   allowHalfOpen); each socket closes itself once both its directions are done.
 * - Errors (reset, timeout): destroy both ends at once.
 */

/**
 * Read sizes. A leg moves up one size when a read fills its buffer and back down when reads come in
 * small again: a chat session reads into the one shared smallest buffer, a download over the
 * internet settles on 64 KiB reads, and loopback-speed bulk reads 4 MiB at a time, which halves the
 * syscalls and wake-ups per byte against 64 KiB (1.0 → 2.6 GB/s single stream here).
 */
export const READ_SIZES = [2 * 1024, 64 * 1024, 4 * 1024 * 1024] as const;
const BULK = READ_SIZES[READ_SIZES.length - 1];
/** Pooled buffers per size above the smallest (bounded: beyond it they go to the garbage collector). */
const POOL_MAX = [0, 64, 16] as const;

/** Position of a read size in READ_SIZES; -1 for any other length (a copy, say). */
function sizeIndex(length: number): number {
  return (READ_SIZES as readonly number[]).indexOf(length);
}

/** The pools are emptied after this long without a buffer taken from them: memory back after a burst. */
const POOL_IDLE_MS = 30_000;

const pools: Buffer[][] = READ_SIZES.map(() => []);
let poolsUsed = false;
let poolTrim: NodeJS.Timeout | undefined;

/** Bytes the buffers above the smallest size may take in all (read into, held by a pending write, or pooled). */
let budget = 32 * 1024 * 1024;
/** Bytes those buffers take now. */
let used = 0;

/** Sets the budget for the large read buffers (config proxy.limits.relayBufferMiB). */
export function setRelayBufferBudget(bytes: number): void {
  budget = bytes;
  if (used > budget) dropPooled(used - budget);
}

/** Bytes in large read buffers now (in use, held or pooled): at most the budget. */
export function relayBufferBytes(): number {
  return used;
}

/**
 * Every leg's reads of the smallest size go to this one buffer, so a quiet leg holds no memory of its
 * own. That is safe because nothing read into it outlives the read callback: the handshake copies
 * what it keeps, and the relay writes a copy (see onRead).
 */
const shared = Buffer.allocUnsafeSlow(READ_SIZES[0]);

/** Lets pooled buffers go (to the garbage collector) until `bytes` of the budget are free again. */
function dropPooled(bytes: number): void {
  for (let i = pools.length - 1; i > 0 && bytes > 0; i--) {
    const pool = pools[i]!;
    while (pool.length > 0 && bytes > 0) {
      pool.pop();
      used -= READ_SIZES[i]!;
      bytes -= READ_SIZES[i]!;
    }
  }
}

/**
 * A buffer of `size`, or of the largest smaller size the budget allows, but larger than `above`;
 * undefined when there is none. The smallest size is the shared buffer and costs nothing.
 */
function take(size: number, above = 0): Buffer | undefined {
  for (let i = sizeIndex(size); i >= 0 && READ_SIZES[i]! > above; i--) {
    if (i === 0) return shared;
    poolsUsed = true;
    const pooled = pools[i]!.pop();
    if (pooled) return pooled;
    const s = READ_SIZES[i]!;
    if (used + s > budget) dropPooled(used + s - budget);
    if (used + s <= budget) {
      used += s;
      return Buffer.allocUnsafeSlow(s);
    }
  }
  return undefined;
}

function giveBack(buf: Buffer): void {
  const i = sizeIndex(buf.length);
  if (i <= 0) return; // the shared buffer
  if (pools[i]!.length < POOL_MAX[i]! && used <= budget) {
    pools[i]!.push(buf);
    poolTrim ??= setInterval(trimPools, POOL_IDLE_MS).unref();
  } else used -= buf.length;
}

function trimPools(): void {
  if (poolsUsed) {
    poolsUsed = false;
    return;
  }
  dropPooled(Number.POSITIVE_INFINITY);
  clearInterval(poolTrim);
  poolTrim = undefined;
}

/**
 * The size of the next read after `n` bytes arrived in a buffer of `size`: one up when it was full,
 * down to the smallest that would have held it otherwise.
 */
export function nextReadSize(size: number, n: number): number {
  const i = sizeIndex(size);
  if (n === size) return READ_SIZES[Math.min(i + 1, READ_SIZES.length - 1)]!;
  // The largest size is kept only while reads fill it, so a leg that goes quiet after bulk never keeps it.
  return READ_SIZES.find((s) => s >= n && s <= size && s < BULK) ?? READ_SIZES[i - 1]!;
}

/** Whoever consumes a leg's bytes before the relay starts (the handshake). */
export interface ReadConsumer {
  handshake(chunk: Buffer): void;
}

/** Whoever owns a relayed pair: told about an exception in the relay (a bug), which ends the pair. */
export interface RelayOwner {
  crashed(err: unknown): void;
}

interface LegState {
  /** Before the relay: the handshake; the chunk it gets is only valid during the call. */
  consumer: ReadConsumer | undefined;
  peer: Leg | undefined;
  /** Reading stopped until the peer has flushed a write that could not complete at once. */
  waiting: boolean;
  /** The buffer the leg reads into next (and a stalled write of the peer's may still read from). */
  buffer: Buffer;
  closed: boolean;
  flushed: (() => void) | undefined;
  owner: RelayOwner | undefined;
}

const LEG = Symbol("leg");
export type Leg = Socket & { [LEG]: LegState };

/**
 * Node asks for the next read buffer right after each read callback, without telling which socket
 * it is for; the callback (which knows) leaves its choice here. Single-threaded, so nothing can run
 * in between.
 */
let nextBuffer: Buffer | undefined;

function provideBuffer(): Buffer {
  const b = nextBuffer ?? shared;
  nextBuffer = undefined;
  return b;
}

/** The buffer for the next read after `n` bytes came into `buf` (which the caller no longer needs). */
function resize(buf: Buffer, n: number): Buffer {
  const size = nextReadSize(buf.length, n);
  if (size > buf.length) {
    const bigger = take(size, buf.length);
    if (bigger === undefined) return buf; // no budget left: stay at this size
    giveBack(buf);
    return bigger;
  }
  if (size === buf.length) return buf;
  giveBack(buf); // first, so the smaller one can come out of the budget it frees
  return take(size) ?? shared;
}

function onRead(this: Leg, n: number, buf: Buffer): boolean {
  const leg = this[LEG];
  if (leg.peer === undefined) {
    nextBuffer = buf;
    leg.consumer?.handshake(buf.subarray(0, n)); // which guards itself
    return true; // the consumer pauses the socket itself when it must stop reading
  }
  try {
    return relayRead(leg, leg.peer, n, buf);
  } catch (err) {
    // The last-resort guard of the pair: it ends, the process and every other connection go on.
    nextBuffer = shared;
    leg.owner?.crashed(err);
    this.destroy();
    leg.peer.destroy();
    return false;
  }
}

function relayRead(leg: LegState, peer: Socket, n: number, buf: Buffer): boolean {
  // A few small bytes are cheaper to copy than to give each leg a buffer of its own.
  const out = buf === shared ? Buffer.from(buf.subarray(0, n)) : buf.subarray(0, n);
  peer.write(out, leg.flushed);
  if (peer.writableLength > 0) {
    // The peer could not take it all and its pending write still reads from `buf`. Reading stops
    // until that write is flushed, and the next read goes into `buf` again: a stalled leg holds the
    // one buffer its pending write needs anyway, never a second (nor a larger) one.
    leg.waiting = true;
    nextBuffer = buf;
    return false;
  }
  leg.buffer = nextBuffer = resize(buf, n);
  return true;
}

const ONREAD = { buffer: provideBuffer, callback: onRead };

function tag(socket: Socket, consumer: ReadConsumer | undefined): Leg {
  const leg = socket as Leg;
  leg[LEG] = {
    consumer,
    peer: undefined,
    waiting: false,
    buffer: shared,
    closed: false,
    flushed: undefined,
    owner: undefined,
  };
  return leg;
}

/** What the relay needs of a libuv TCP handle accepted by a server. */
export interface AcceptedHandle {
  getpeername(out: { address?: string; port?: number }): number;
  /** Closes with a reset (RST); non-zero when that failed. */
  reset(): number;
  close(): void;
}

/** Node's bookkeeping of a server's open sockets: it decrements the count when one of them closes. */
type CountingServer = Server & { _connections: number };

/**
 * Wraps an accepted connection's handle in a socket that reads into our buffers (Node's server has
 * no option for that) and counts it as one of `server`'s connections, as Node's own would be.
 */
export function adoptHandle(handle: AcceptedHandle, server: Server, consumer: ReadConsumer): Leg {
  // emitClose, autoDestroy and decodeStrings: see connectLeg.
  const options = {
    handle,
    allowHalfOpen: true,
    onread: ONREAD,
    emitClose: false,
    autoDestroy: true,
    decodeStrings: false,
  };
  const socket = new Socket(options as ConstructorParameters<typeof Socket>[0]);
  const s = socket as unknown as { _server: Server; server: Server };
  s._server = s.server = server;
  (server as CountingServer)._connections++;
  return tag(socket, consumer);
}

/**
 * Takes the handle away from a socket Node created for an accepted connection (paused, see
 * `pauseOnConnect`), which is then dropped without closing anything, and uncounts it.
 */
export function detachAccepted(accepted: Socket): AcceptedHandle {
  const holder = accepted as unknown as { _handle: AcceptedHandle; _server: CountingServer | null };
  const handle = holder._handle;
  holder._handle = null as unknown as AcceptedHandle;
  if (holder._server) holder._server._connections--;
  return handle;
}

/** What the relay reads from a connected leg's libuv handle (Node keeps it in `_handle`; null once closed). */
interface LegHandle {
  getsockname(out: typeof sockname): number;
  /** Bytes handed to libuv for writing and not yet written (falls while a large write drains in parts). */
  writeQueueSize: number;
}

function handleOf(leg: Leg | undefined): LegHandle | null | undefined {
  return (leg as unknown as { _handle?: LegHandle | null } | undefined)?._handle;
}

/** Filled by getsockname (one object, reused: see boundAddress). */
const sockname = { address: "", family: "", port: 0 };

/**
 * The local address and port of a connected leg, for the success reply. Straight from the handle into
 * one reused object: Node's localAddress fills a fresh object for every socket, and filling an object
 * from C++ costs more when it has no properties yet.
 */
export function boundAddress(leg: Leg): { address: string; port: number } | undefined {
  return handleOf(leg)?.getsockname(sockname) === 0 ? sockname : undefined;
}

/** Bytes queued for writing on a leg, as libuv counts them: unlike Node's writableLength, it falls as a write drains. */
export function queuedBytes(leg: Leg | undefined): number {
  return handleOf(leg)?.writeQueueSize ?? 0;
}

/**
 * An outbound connection (half-open allowed, no Nagle) whose reads go through the relay from the start.
 *
 * Its options are one literal, and carry the three stream options Node's Socket sets on its copy of
 * them anyway (emitClose, autoDestroy, decodeStrings; adoptHandle's too). Under Node 20's V8 an
 * optimised copy that then gains properties (`{ ...o, x }`, or `{ ...o }` then `o.x = ...`) gets a map
 * of its own every time, and each of the dozens of option reads in Socket, Duplex and the stream states
 * then misses the megamorphic stub cache (here 198k instructions per connection before, 180k after).
 * With them given, Socket's copy gains no property and keeps one map. Node 22 and later need neither.
 */
export function connectLeg(host: string, port: number, localAddress: string | undefined): Leg {
  // Called from within a read callback (the client's request), after it chose its next buffer: the
  // new socket's first buffer must not take that choice.
  const pending = nextBuffer;
  nextBuffer = undefined;
  const socket = connect({
    host,
    port,
    localAddress,
    allowHalfOpen: true,
    noDelay: true,
    onread: ONREAD,
    emitClose: false,
    autoDestroy: true,
    decodeStrings: false,
  } as NetConnectOpts);
  nextBuffer = pending;
  return tag(socket, undefined);
}

function onEnd(this: Leg): void {
  const peer = this[LEG].peer!;
  // The peer already sent its EOF and has nothing left to write: a close sends our FIN just as a
  // shutdown would, and saves the shutdown, a loop turn and Node's end-of-stream machinery.
  if (peer.readableEnded && peer.writableLength === 0) peer.destroy();
  else peer.end();
}

function release(leg: LegState): void {
  giveBack(leg.buffer); // the shared buffer (already given back) is not counted
  leg.buffer = shared;
}

function onClose(this: Leg, hadError: boolean): void {
  const leg = this[LEG];
  const other = leg.peer![LEG];
  leg.closed = true;
  // The socket reads no more: its buffer goes back, unless a stalled write of the peer still reads from
  // it; once both have closed, no write is pending from either.
  if (!leg.waiting || other.closed) release(leg);
  if (other.closed) release(other);
  // A clean close means both directions finished; the peer then closes on its own after flushing.
  if (hadError) leg.peer!.destroy();
}

function ignoreError(): void {
  // The 'close' that follows (hadError = true) tears down both ends.
}

function wire(from: Leg, to: Leg, owner: RelayOwner | undefined): void {
  const leg = from[LEG];
  leg.consumer = undefined;
  leg.peer = to;
  leg.owner = owner;
  leg.flushed = () => {
    // Called once per write; only the one that empties the peer's queue lets reading go on.
    if (!leg.waiting || to.writableLength > 0) return;
    leg.waiting = false;
    from.resume();
  };
  from.on("end", onEnd);
  from.on("close", onClose);
  from.on("error", ignoreError);
}

/** Starts relaying; `early` = bytes the client sent after its request, before the reply. */
export function relay(client: Leg, upstream: Leg, early?: Buffer, owner?: RelayOwner): void {
  if (early && early.length > 0) upstream.write(early);
  wire(client, upstream, owner);
  wire(upstream, client, owner);
  // The client may have sent its EOF while the outbound connect was under way (reading goes on then):
  // its 'end' came before onEnd listened, so pass it on here or the destination never sees it.
  if (client.readableEnded) upstream.end();
  client.resume();
}
