import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/**
 * Replaces `path` atomically: a temporary file in the same directory (created with the final mode, so a
 * secret is never readable by others even for a moment), synced, then renamed over the target. Without
 * `mode`, an existing file keeps its mode; a new one gets 0600.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode?: number): void {
  let finalMode = mode;
  if (finalMode === undefined) {
    try {
      finalMode = statSync(path).mode & 0o7777;
    } catch {
      finalMode = 0o600;
    }
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, "wx", finalMode);
  try {
    writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}
