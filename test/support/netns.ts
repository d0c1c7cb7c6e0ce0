import { type ChildProcess, spawn } from "node:child_process";
import { run } from "../../src/util/run.js";

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
