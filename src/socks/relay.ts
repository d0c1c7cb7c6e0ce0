import type { Socket } from "node:net";

/**
 * The two-way pipe between client and destination. Handlers are shared module functions (no
 * per-connection closures); each socket finds its other end through a symbol property.
 *
 * - Backpressure: when the other end's write buffer is full, stop reading until it drains, so a
 *   slow reader never makes the proxy buffer more than one socket's highWaterMark per direction.
 * - Half-close: EOF from one side ends only the other side's write direction (both sockets are
 *   allowHalfOpen); each socket closes itself once both its directions are done.
 * - Errors (reset, timeout): destroy both ends at once.
 */
const PEER = Symbol("relayPeer");

/**
 * Write buffer per direction before reading pauses. Node's default (16 KiB) is below one 64 KiB read,
 * so every chunk would pause and resume the reader: 256 KiB lets bulk transfers flow (about 1.5x the
 * single-stream throughput on loopback) while a slow reader still bounds what we hold per connection.
 */
export const RELAY_HIGH_WATER_MARK = 256 * 1024;

type Leg = Socket & { [PEER]?: Socket };

function onData(this: Leg, chunk: Buffer): void {
  if (!this[PEER]!.write(chunk)) this.pause();
}

function onDrain(this: Leg): void {
  this[PEER]!.resume();
}

function onEnd(this: Leg): void {
  this[PEER]!.end();
}

function onClose(this: Leg, hadError: boolean): void {
  // A clean close means both directions finished; the peer then closes on its own after flushing.
  if (hadError) this[PEER]!.destroy();
}

function ignoreError(): void {
  // The 'close' that follows (hadError = true) tears down both ends.
}

function wire(from: Leg, to: Socket): void {
  from[PEER] = to;
  from.on("data", onData);
  from.on("drain", onDrain);
  from.on("end", onEnd);
  from.on("close", onClose);
  from.on("error", ignoreError);
}

/** Starts relaying; `early` = bytes the client sent after its request, before the reply. */
export function relay(client: Socket, upstream: Socket, early?: Buffer): void {
  if (early && early.length > 0) upstream.write(early);
  wire(client, upstream);
  wire(upstream, client);
  client.resume();
}
