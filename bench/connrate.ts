/** Builds and drives bench/connrate.c, the connection-rate client and one-byte server. */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../src/util/run.js";
import { type Service, startService } from "./daemon.js";
import type { Endpoint, Tally } from "./load.js";

export interface ConnRateResult extends Tally {
  elapsedMs: number;
  /** CPU seconds the client used, to show it was not the bottleneck. */
  cpuSec: number;
  /** Greeting sent → CONNECT reply, µs (proxied only). */
  handshakeUs: number[];
}

/** Compiles the generator into `dir` (a C compiler is a bench-only requirement: gcc on Debian). */
export async function buildConnRate(dir: string): Promise<string> {
  const src = fileURLToPath(new URL("../../bench/connrate.c", import.meta.url));
  const bin = join(dir, "connrate");
  try {
    await run("cc", ["-O2", "-o", bin, src], { timeoutMs: 60_000 });
  } catch (e) {
    throw new Error(
      `cannot build the connection-rate client (install gcc): ${e instanceof Error ? e.message : e}`,
    );
  }
  return bin;
}

export function startOneByteServer(bin: string, dir: string): Promise<Service> {
  return startService(join(dir, "connrate-server.log"), (port) => [bin, ["server", String(port)]]);
}

export async function connRate(
  bin: string,
  via: Endpoint | undefined,
  target: Endpoint,
  concurrency: number,
  durationMs: number,
  maxConns: number,
): Promise<ConnRateResult> {
  const args = [via?.port ?? 0, target.port, concurrency, durationMs, maxConns, 5000].map(String);
  const r = await run(bin, ["client", ...args], { timeoutMs: durationMs + 30_000 });
  return JSON.parse(r.stdout) as ConnRateResult;
}
