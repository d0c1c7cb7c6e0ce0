import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { basename } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { run } from "../../src/util/run.js";
import { requireTools } from "./tools.js";

/** Test helpers: long-running processes in namespaces, stopped by PID; bounded waits. No side effects on import. */

export interface Daemon {
  child: ChildProcess;
  output: () => string;
}

export function startIn(ns: string, argv: string[], env: NodeJS.ProcessEnv = {}): Daemon {
  const child = spawn("ip", ["netns", "exec", ns, ...argv], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  return { child, output: () => out };
}

/** SIGTERM, then SIGKILL after 3 s; resolves when the process has exited. */
export async function stop(d: Daemon | undefined): Promise<void> {
  if (!d || d.child.exitCode !== null || d.child.signalCode !== null) return;
  const exited = new Promise((r) => d.child.once("exit", r));
  d.child.kill("SIGTERM");
  const t = setTimeout(() => d.child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(t);
}

export const inNs = (ns: string, cmd: string, args: string[], input?: string) =>
  run("ip", ["netns", "exec", ns, cmd, ...args], { allowFail: true, input, timeoutMs: 20_000 });

/** GET through curl inside the namespace (the test process itself lives in the host namespace). */
export async function curlIn(ns: string, url: string): Promise<string | null> {
  const r = await inNs(ns, "curl", ["-sf", "--max-time", "5", url]);
  return r.code === 0 ? r.stdout : null;
}

/**
 * For tests whose proxy may connect to non-loopback addresses: runs the calling test file again inside
 * a new network namespace with only `lo` (unshare -n; needs root), so nothing it sends can leave the
 * host, and the namespace goes away with its last process. Returns true when running inside (register
 * the tests then); outside, it registers one test that runs the file there and shows its output.
 */
export function insideIsolatedNetns(metaUrl: string, timeoutMs = 300_000): boolean {
  if (process.env.WGE_ISOLATED_NETNS === "1") return true;
  const file = fileURLToPath(metaUrl);
  test(`${basename(file)}, inside a fresh network namespace (unshare -n)`, {
    timeout: timeoutMs,
  }, async (t) => {
    requireTools("unshare", "ip");
    // Not as a child of this test runner (NODE_TEST_CONTEXT): the inner run reports in plain TAP.
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const r = await run(
      "unshare",
      ["-n", "sh", "-c", 'ip link set lo up && exec "$0" "$1"', process.execPath, file],
      { env: { ...env, WGE_ISOLATED_NETNS: "1" }, allowFail: true, timeoutMs },
    );
    // The inner tests and their diagnostics, in this run's report.
    const summary = /^# (Subtest|tests|suites|pass|fail|cancelled|skipped|todo|duration_ms)\b/;
    for (const line of r.stdout.split("\n"))
      if (/^(not )?ok \d+ - |^# /.test(line) && !summary.test(line)) t.diagnostic(line);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  });
  return false;
}

/**
 * A new namespace `ns` (an old one of that name is deleted first) with lo up and a "WAN": veth d0
 * 192.0.2.1/24 (peer d1) and the default route via 192.0.2.254 — nothing answers there.
 */
export function freshNamespace(ns: string): void {
  spawnSync("ip", ["netns", "del", ns]);
  execFileSync("ip", ["netns", "add", ns]);
  for (const argv of [
    ["ip", "link", "set", "lo", "up"],
    ["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"],
    ["ip", "address", "add", "192.0.2.1/24", "dev", "d0"],
    ["ip", "link", "set", "d0", "up"],
    ["ip", "link", "set", "d1", "up"],
    ["ip", "route", "add", "default", "via", "192.0.2.254"],
  ])
    execFileSync("ip", ["netns", "exec", ns, ...argv]);
}
