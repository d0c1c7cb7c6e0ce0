import { connect, type NetConnectOpts, type Server, Socket } from "node:net";

/**
 * The two-way pipe between client and destination, reading into buffers we own (Node's `onread`).
 *
 * Why not `a.pipe(b)` or 'data' events: Node then allocates a fresh 64 KiB buffer for every read,
 * and at bulk rates the garbage collector spends as much CPU as the copying itself. Here each leg
 * reads into a buffer sized to its traffic (READ_SIZES), and reuses it for the next read. When a
 * write to the other side cannot complete at once, the reading leg pauses until it is flushed (the
 * pending write still reads from the buffer), so a slow reader makes us hold at most one large
 * buffer per direction.
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

/**
 * Every leg's reads of the smallest size go to this one buffer, so a quiet leg holds no memory of its
 * own. That is safe because nothing read into it outlives the read callback: the handshake copies
 * what it keeps, and the relay writes a copy (see onRead).
 */
const shared = Buffer.allocUnsafeSlow(READ_SIZES[0]);

function take(size: number): Buffer {
  const i = sizeIndex(size);
  if (i === 0) return shared;
  poolsUsed = true;
  return pools[i]!.pop() ?? Buffer.allocUnsafeSlow(size);
}

function giveBack(buf: Buffer): void {
  const i = sizeIndex(buf.length);
  if (i <= 0 || pools[i]!.length >= POOL_MAX[i]!) return; // the smallest size is the shared buffer
  pools[i]!.push(buf);
  poolTrim ??= setInterval(trimPools, POOL_IDLE_MS).unref();
}

function trimPools(): void {
  if (poolsUsed) {
    poolsUsed = false;
    return;
  }
  for (const p of pools) p.length = 0;
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

interface LegState {
  /** Before the relay: the handshake; the chunk it gets is only valid during the call. */
  consumer: ReadConsumer | undefined;
  peer: Socket | undefined;
  /** Reading stopped until the peer has flushed a write that could not complete at once. */
  waiting: boolean;
  /** A buffer that write still reads from and the leg no longer reads into: pooled once flushed. */
  held: Buffer | undefined;
  flushed: (() => void) | undefined;
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
  const b = nextBuffer ?? take(READ_SIZES[0]);
  nextBuffer = undefined;
  return b;
}

function onRead(this: Leg, n: number, buf: Buffer): boolean {
  const leg = this[LEG];
  const peer = leg.peer;
  if (peer === undefined) {
    nextBuffer = buf;
    leg.consumer?.handshake(buf.subarray(0, n));
    return true; // the consumer pauses the socket itself when it must stop reading
  }
  // A few small bytes are cheaper to copy than to give each leg a buffer of its own.
  const out = buf === shared ? Buffer.from(buf.subarray(0, n)) : buf.subarray(0, n);
  peer.write(out, leg.flushed);
  const size = nextReadSize(buf.length, n);
  const next = size === buf.length ? buf : take(size);
  nextBuffer = next;
  if (peer.writableLength > 0) {
    // The peer could not take it all and its pending write still reads from `out`. Reading stops
    // until that write is flushed, so `next` may be this very buffer: nothing is read into it before.
    leg.waiting = true;
    if (next !== buf) leg.held = buf;
    return false;
  }
  if (next !== buf) giveBack(buf);
  return true;
}

const ONREAD = { buffer: provideBuffer, callback: onRead };

function tag(socket: Socket, consumer: ReadConsumer | undefined): Leg {
  const leg = socket as Leg;
  leg[LEG] = { consumer, peer: undefined, waiting: false, held: undefined, flushed: undefined };
  return leg;
}

/**
 * Takes over an accepted connection so that it reads into our buffers: Node's server has no option
 * for that, so the accepted socket (created paused, see `pauseOnConnect`) hands its handle to a new
 * socket that has one. The old socket object is dropped without closing anything.
 */
export function adoptAccepted(accepted: Socket, consumer: ReadConsumer): Leg {
  const holder = accepted as unknown as { _handle: unknown; _server: Server | null };
  const handle = holder._handle;
  holder._handle = null;
  const socket = new Socket({ handle, allowHalfOpen: true, onread: ONREAD } as ConstructorParameters<
    typeof Socket
  >[0]);
  // Node decrements this count when the socket it created closes; ours closes instead.
  (socket as unknown as { _server: Server | null })._server = holder._server;
  return tag(socket, consumer);
}

/** An outbound connection whose reads go through the relay from the start. */
export function connectLeg(options: NetConnectOpts, consumer: ReadConsumer | undefined): Leg {
  // Called from within a read callback (the client's request), after it chose its next buffer: the
  // new socket's first buffer must not take that choice.
  const pending = nextBuffer;
  nextBuffer = undefined;
  const socket = connect({ ...options, onread: ONREAD } as NetConnectOpts);
  nextBuffer = pending;
  return tag(socket, consumer);
}

function onEnd(this: Leg): void {
  this[LEG].peer!.end();
}

function onClose(this: Leg, hadError: boolean): void {
  // A clean close means both directions finished; the peer then closes on its own after flushing.
  if (hadError) this[LEG].peer!.destroy();
}

function ignoreError(): void {
  // The 'close' that follows (hadError = true) tears down both ends.
}

function wire(from: Leg, to: Leg): void {
  const leg = from[LEG];
  leg.consumer = undefined;
  leg.peer = to;
  leg.flushed = () => {
    // Called once per write; only the one that empties the peer's queue lets reading go on.
    if (!leg.waiting || to.writableLength > 0) return;
    leg.waiting = false;
    if (leg.held) giveBack(leg.held);
    leg.held = undefined;
    from.resume();
  };
  from.on("end", onEnd);
  from.on("close", onClose);
  from.on("error", ignoreError);
}

/** Starts relaying; `early` = bytes the client sent after its request, before the reply. */
export function relay(client: Leg, upstream: Leg, early?: Buffer): void {
  if (early && early.length > 0) upstream.write(early);
  wire(client, upstream);
  wire(upstream, client);
  // The client may have sent its EOF while the outbound connect was under way (reading goes on then):
  // its 'end' came before onEnd listened, so pass it on here or the destination never sees it.
  if (client.readableEnded) upstream.end();
  client.resume();
}
