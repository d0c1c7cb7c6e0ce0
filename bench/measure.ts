/** One measurement run of each kind against one target; the orchestrator repeats them and takes medians. */

import { connRate } from "./connrate.js";
import type { Service } from "./daemon.js";
import { iperf } from "./iperf.js";
import type { IdleCheck, Tally } from "./load.js";
import { treeUsage } from "./procfs.js";
import type { Running } from "./proxies.js";
import type { HoldServer } from "./servers.js";
import { percentile } from "./stats.js";
import type { LoadWorkers } from "./workers.js";

/** Adds up the workers' counts and failure reasons. */
export function sumTallies(list: readonly Tally[]): Tally {
  const sum: Tally = { ok: 0, failed: 0, errors: {} };
  for (const t of list) {
    sum.ok += t.ok;
    sum.failed += t.failed;
    for (const [k, v] of Object.entries(t.errors)) sum.errors[k] = (sum.errors[k] ?? 0) + v;
  }
  return sum;
}

export interface ThroughputRun {
  mbPerSec?: number;
  bytes?: number;
  /** CPU seconds the proxy's process tree used during the run. */
  cpuSec?: number;
  error?: string;
}

export async function throughputRun(
  t: Running,
  iperfPort: number,
  streams: number,
  seconds: number,
  dir: string,
): Promise<ThroughputRun> {
  const cpu0 = t.pid ? treeUsage(t.pid).cpuSec : undefined;
  try {
    const r = await iperf(t.via, iperfPort, streams, seconds, dir);
    const cpuSec = t.pid && cpu0 !== undefined ? treeUsage(t.pid).cpuSec - cpu0 : undefined;
    return { mbPerSec: r.mbPerSec, bytes: r.bytes, cpuSec };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

export interface RateRun extends Tally {
  perSec: number;
  /** CPU seconds of the proxy tree, the client and the one-byte server during the run. */
  cpuSec: { proxy?: number; client: number; server: number };
  p50Ms?: number;
  p99Ms?: number;
}

export async function rateRun(
  t: Running,
  bin: string,
  server: Service,
  concurrency: number,
  durationMs: number,
  maxConns: number,
): Promise<RateRun> {
  const proxy0 = t.pid ? treeUsage(t.pid).cpuSec : 0;
  const server0 = treeUsage(server.pid).cpuSec;
  const target = { host: "127.0.0.1", port: server.port };
  const r = await connRate(bin, t.via, target, concurrency, durationMs, maxConns);
  const hs = r.handshakeUs.sort((a, b) => a - b);
  const ms = (us: number | undefined) => (us === undefined ? undefined : us / 1000);
  return {
    ok: r.ok,
    failed: r.failed,
    errors: r.errors,
    perSec: r.elapsedMs > 0 ? (r.ok * 1000) / r.elapsedMs : 0,
    p50Ms: ms(percentile(hs, 50)),
    p99Ms: ms(percentile(hs, 99)),
    cpuSec: {
      proxy: t.pid ? treeUsage(t.pid).cpuSec - proxy0 : undefined,
      client: r.cpuSec,
      server: treeUsage(server.pid).cpuSec - server0,
    },
  };
}

export interface IdleRun extends Tally {
  requested: number;
  /** Opened, then did not receive the server's byte afterwards. */
  lost: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  pssBeforeKiB: number;
  pssAfterKiB: number;
  processes: number;
  rssPerConnKiB?: number;
  pssPerConnKiB?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await sleep(50);
}

/**
 * Opens `count` proxied connections to the hold server, measures the proxy's memory growth,
 * then checks every connection still carries data before closing them all.
 */
export async function idleRun(
  t: Running,
  workers: LoadWorkers,
  hold: HoldServer,
  count: number,
): Promise<IdleRun> {
  const { via, pid } = t;
  if (!via || !pid) throw new Error(`${t.name}: the idle test needs a proxy`);
  const n = workers.size;
  const before = treeUsage(pid);
  const share = (i: number) => Math.floor(count / n) + (i < count % n ? 1 : 0);
  const opened = await workers.run<Tally>(n, (i) => ({
    op: "idle-open",
    via,
    target: { host: "127.0.0.1", port: hold.port },
    count: share(i),
    concurrency: 64,
    timeoutMs: 10_000,
  }));
  const ok = opened.reduce((s, r) => s + r.ok, 0);
  await until(() => hold.count >= ok, 5000);
  await sleep(1000); // let allocations settle (Node's GC, dante spawning io workers)
  const after = treeUsage(pid);
  hold.poke();
  const checked = await workers.run<IdleCheck>(n, () => ({ op: "idle-check", timeoutMs: 10_000 }));
  hold.dropAll();
  await workers.run(n, () => ({ op: "idle-close" }));
  await until(() => hold.count === 0, 5000);
  await sleep(500);
  const per = (a: number, b: number) => (ok > 0 ? (a - b) / ok : undefined);
  return {
    requested: count,
    ...sumTallies(opened),
    lost: checked.reduce((s, r) => s + r.lost, 0),
    rssBeforeKiB: before.rssKiB,
    rssAfterKiB: after.rssKiB,
    pssBeforeKiB: before.pssKiB,
    pssAfterKiB: after.pssKiB,
    processes: after.processes,
    rssPerConnKiB: per(after.rssKiB, before.rssKiB),
    pssPerConnKiB: per(after.pssKiB, before.pssKiB),
  };
}
