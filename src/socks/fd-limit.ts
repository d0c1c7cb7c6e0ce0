import { readFileSync } from "node:fs";

export interface FdLimit {
  soft: number;
  hard: number;
}

/** "Max open files  1024  524288  files" from /proc/self/limits; "unlimited" → Infinity. */
export function parseFdLimit(limitsText: string): FdLimit | undefined {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limitsText);
  if (!m) return undefined;
  const num = (s: string) => (s === "unlimited" ? Number.POSITIVE_INFINITY : Number(s));
  return { soft: num(m[1]), hard: num(m[2]) };
}

/** Two sockets per relayed connection plus some for listeners, DNS, logs and metrics. */
export function fdsNeeded(maxConnections: number): number {
  return maxConnections * 2 + 64;
}

/** The default cap on connections, whatever the open-file limit: bounds memory (about 8 KiB per idle one). */
export const MAX_DEFAULT_CONNECTIONS = 32_768;

/**
 * proxy.limits.maxConnections when the config leaves it unset: what the open-file limit allows
 * (fdsNeeded), so that refusals say "max_connections" before any descriptor runs out, at most
 * MAX_DEFAULT_CONNECTIONS.
 */
export function defaultMaxConnections(fdLimit: number | undefined): number {
  if (fdLimit === undefined || !Number.isFinite(fdLimit)) return MAX_DEFAULT_CONNECTIONS;
  return Math.max(1, Math.min(MAX_DEFAULT_CONNECTIONS, Math.floor((fdLimit - 64) / 2)));
}

export function readFdLimit(): FdLimit | undefined {
  try {
    return parseFdLimit(readFileSync("/proc/self/limits", "utf8"));
  } catch {
    return undefined;
  }
}
