import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dirs: string[] = [];
process.on("exit", () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory under the system temp dir, removed when the test file's process exits. */
export function tempDir(prefix = "wgetest-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** A 0600 file `name` with `text` in a fresh temp dir; returns its path. */
export function writeTemp(name: string, text: string): string {
  const p = join(tempDir(), name);
  writeFileSync(p, text, { mode: 0o600 });
  return p;
}
