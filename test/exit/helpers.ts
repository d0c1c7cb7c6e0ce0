import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";

/** Shared by the exit/secrets tests: run the real CLI, make a temp config. */

export const CLI = join(import.meta.dirname, "../../src/cli/main.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI asynchronously (a fake API in this process must keep answering meanwhile). */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}, input = ""): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, HCLOUD_TOKEN: "", HCLOUD_ENDPOINT: "", WG_EGRESS_CONFIG: "", ...env },
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (d: Buffer) => out.push(d));
  child.stderr.on("data", (d: Buffer) => err.push(d));
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
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

const dirs: string[] = [];
process.on("exit", () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory under the system temp dir, removed when the test file's process exits. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** A config file in `dir` whose secrets live in `dir` too; `extra` is merged at the top level. */
export function writeConfig(dir: string, extra: Record<string, unknown> = {}, header = ""): string {
  const file = join(dir, "config.yaml");
  // Every file a command may write (secrets, the gateway's key) stays inside the test's directory.
  const gateway = { privateKeyFile: join(dir, "gateway.key"), ...(extra.gateway as object | undefined) };
  const base = { secrets: { file: join(dir, "secrets.age"), identityFile: join(dir, "age.key") } };
  writeFileSync(file, header + stringify({ ...base, ...extra, gateway }));
  return file;
}
