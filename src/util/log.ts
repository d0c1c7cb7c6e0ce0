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

/**
 * Collects lines and writes them together: one syscall per batch instead of one per line. Written
 * at the latest BATCH_MS after the first line, on flush(), and at exit.
 */
class BatchedStream {
  private lines: string[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly out: ReturnType<typeof pino.destination>) {
    process.once("exit", () => this.flush());
  }

  write(line: string): void {
    this.lines.push(line);
    this.bytes += line.length;
    if (this.bytes >= BATCH_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), BATCH_MS).unref();
  }

  flush(done?: () => void): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.lines.length > 0) {
      const text = this.lines.join("");
      this.lines = [];
      this.bytes = 0;
      this.out.write(text);
    }
    done?.();
  }
}

/**
 * A logger for high-rate lines (one per proxied connection; a write() per line was about 3% of the
 * proxy's CPU in a profile at its connection rate): same level and base fields as `parent`, batched
 * writes to stderr, and no redaction, so only fixed fields that never hold a secret may go to it.
 */
export function batchedLogger(parent: Logger): Logger {
  batched ??= new BatchedStream(pino.destination({ fd: 2, sync: true }));
  return pino({ level: parent.level, base: BASE }, batched);
}

let batched: BatchedStream | undefined;
