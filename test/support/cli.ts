import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The compiled CLI, as `bin/wg-egress` runs it. */
export const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

export interface CliResult {
  /** Exit code; -1 when killed by a signal (or the timeout). */
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
}

/**
 * Runs the real CLI to completion, asynchronously (a fake server in the test's own process keeps
 * answering meanwhile). The environment never points at a real config or cloud API.
 */
export function cli(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { ...process.env, WG_EGRESS_CONFIG: "", HCLOUD_TOKEN: "", HCLOUD_ENDPOINT: "", ...opts.env },
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (d: Buffer) => out.push(d));
  child.stderr.on("data", (d: Buffer) => err.push(d));
  child.stdin.on("error", () => {}); // the command may exit without reading its stdin
  child.stdin.end(opts.input ?? "");
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      });
    }),
  );
}
