import { pino } from "pino";

/** Keys whose values must never reach a log line, wherever they appear in a logged object. */
const REDACT = [
  "password",
  "*.password",
  "privateKey",
  "*.privateKey",
  "token",
  "*.token",
  "presharedKey",
  "*.presharedKey",
  "users",
  "*.users",
];

export type Logger = pino.Logger;

/** Fields on every line, whichever logger writes it. */
const BASE = { pid: process.pid };

/** JSON logs on stderr, so stdout stays free for command output (plans, status, rendered files). */
export function createLogger(level = process.env.WG_EGRESS_LOG_LEVEL ?? "info"): Logger {
  return pino(
    { level, base: BASE, redact: { paths: REDACT, censor: "[redacted]" } },
    pino.destination({ fd: 2, sync: true }),
  );
}

/** The process-wide logger; the CLI sets its level from --log-level / config before any work starts. */
export const log: Logger = createLogger();

/** How long a batched line may wait, and how much may pile up, before the batch is written. */
const BATCH_MS = 100;
const BATCH_BYTES = 64 * 1024;

/** pino's destination in contentMode "buffer" (its typing only has the string form of write). */
interface BufferDestination {
  write(data: Buffer): boolean;
}

/** A synchronous destination on stderr that takes Buffers. */
function stderrBuffers(): BufferDestination {
  return pino.destination({ fd: 2, sync: true, contentMode: "buffer" }) as unknown as BufferDestination;
}

/**
 * Collects lines and writes them together: one syscall per batch instead of one per line. Written
 * at the latest BATCH_MS after the first line, on flush(), and at exit.
 *
 * Each line is encoded into the batch's buffer as it comes, so it does not stay on the JS heap until
 * the write: at thousands of lines a second, strings kept for up to 100 ms outlived the young
 * generation, and copying and promoting them cost more than building them (with the lines kept as
 * strings, a proxy writing them spent about 16 µs more CPU per connection than one at log level warn).
 */
class BatchedStream {
  private readonly batch = Buffer.allocUnsafeSlow(BATCH_BYTES);
  private used = 0;
  private timer: NodeJS.Timeout | undefined;

  /** `out` may keep a batch it could not write at once. */
  constructor(private readonly out: BufferDestination) {
    process.once("exit", () => this.flush());
  }

  write(line: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit: room is checked without measuring the line.
    const most = line.length * 3;
    if (this.used + most > this.batch.length) {
      this.flush();
      if (most > this.batch.length) {
        this.out.write(Buffer.from(line));
        return;
      }
    }
    this.used += this.batch.write(line, this.used);
    this.timer ??= setTimeout(() => this.flush(), BATCH_MS).unref();
  }

  flush(done?: () => void): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.used > 0) {
      // A copy of what was used: the destination may keep what it could not write at once, while the
      // batch buffer is filled again (and a quiet proxy's small batches take small copies).
      this.out.write(Buffer.from(this.batch.subarray(0, this.used)));
      this.used = 0;
    }
    done?.();
  }
}

const INFO = 30; // pino's level number for info

/** What JSON.stringify would escape in a string: quote, backslash, control characters, surrogates. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * `prefix` (`,"key":`) and the JSON text of `value`, or "" when there is none: for LineLogger fields
 * that may hold arbitrary bytes (a name a client sent, a user, an error). Most need no escaping and
 * are quoted as they are, which costs a fraction of JSON.stringify.
 */
export function jsonField(prefix: string, value: string | undefined): string {
  if (value === undefined) return "";
  return NEEDS_ESCAPE.test(value) ? prefix + JSON.stringify(value) : `${prefix}"${value}"`;
}

/**
 * A logger for one high-rate line (one per proxied connection): the same JSON pino writes (level,
 * time, pid, the fields, msg) at the level of `parent`, batched into one write per 100 ms. It skips
 * pino's generic serializer, which cost about 2% of the proxy's CPU and 2.4 KB of garbage per line at
 * 3,600 connections/s, and redaction: the caller formats the fields itself (see info), and only
 * fixed fields that never hold a secret may go to it.
 */
export class LineLogger {
  private static stream: BatchedStream | undefined;
  private readonly out: BatchedStream;
  private threshold: number;
  /** What follows the fields on every line: the message. */
  private readonly end: string;
  /** The start of a line (level, time, pid) for the millisecond `headMs`: lines in the same one share it. */
  private head = "";
  private headMs = -1;

  constructor(parent: Logger, msg: string) {
    LineLogger.stream ??= new BatchedStream(stderrBuffers());
    this.out = LineLogger.stream;
    this.threshold = parent.levelVal;
    this.end = `,"msg":${JSON.stringify(msg)}}\n`;
  }

  /** Follows the level of the logger it was made from (after a reload set it anew). */
  follow(parent: Logger): void {
    this.threshold = parent.levelVal;
  }

  /** True when an info line would be written: callers format their fields only then. */
  get enabled(): boolean {
    return this.threshold <= INFO;
  }

  /**
   * Writes a line with `fields`: JSON members (`"key":value,...`) the caller formatted, every text
   * value that may hold arbitrary bytes escaped with JSON.stringify. One string, not an object the
   * logger walks: at one line per connection the generic walk cost more than the rest of the line.
   */
  info(fields: string): void {
    if (this.threshold > INFO) return;
    const now = Date.now();
    if (now !== this.headMs) {
      this.headMs = now;
      this.head = `{"level":${INFO},"time":${now},"pid":${process.pid},`;
    }
    this.out.write(this.head + fields + this.end);
  }

  flush(): void {
    this.out.flush();
  }
}
