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

/** JSON logs on stderr, so stdout stays free for command output (plans, status, rendered files). */
export function createLogger(level = process.env.WG_EGRESS_LOG_LEVEL ?? "info"): Logger {
  return pino(
    { level, base: { pid: process.pid }, redact: { paths: REDACT, censor: "[redacted]" } },
    pino.destination({ fd: 2, sync: true }),
  );
}

/** The process-wide logger; the CLI sets its level from --log-level / config before any work starts. */
export const log: Logger = createLogger();
