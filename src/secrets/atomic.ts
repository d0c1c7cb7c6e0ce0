import {
  closeSync,
  fchmodSync,
  fchownSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readlinkSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  writeSync,
} from "node:fs";
import { basename, dirname, isAbsolute, join } from "node:path";
import { OperationError, UsageError, UserError } from "../util/errors.js";

/**
 * The one writer of config, key and secret files. Replaces `path` atomically: a temporary file next to the
 * target is written, synced, given the final owner, group and mode, then renamed over it (readers see the
 * old or the new file, never a partial one; a secret is never readable by others, not even for a moment).
 * - A symlink is written through: its final target is replaced, the link stays (a config kept elsewhere).
 * - An existing file keeps its owner, group and mode (root:wg-egress-proxy 0640 stays that); `mode` replaces
 *   the mode (secrets: always 0600). A new file gets `mode`, else 0600. The umask never narrows it.
 * - `exclusive`: refuse to replace an existing file (linked into place, so a concurrent writer cannot slip in).
 * - Missing parent directories are created 0755: the files carry their own modes, and a proxy user must be
 *   able to reach a 0640 config inside.
 * Nothing is left behind on failure; errors are one line naming the file.
 */

export interface WriteOptions {
  exclusive?: boolean;
}

const MAX_LINKS = 40;

/** Where a write to `path` must land: the final target of a symlink chain (which may not exist yet). */
export function writeTarget(path: string): string {
  let p = path;
  for (let i = 0; i < MAX_LINKS; i++) {
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch {
      return p;
    }
    if (!st.isSymbolicLink()) return p;
    const link = readlinkSync(p);
    p = isAbsolute(link) ? link : join(dirname(p), link);
  }
  throw new OperationError(`cannot write ${path}: too many levels of symbolic links`);
}

function failure(path: string, e: unknown): UserError {
  if (e instanceof UserError) return e;
  const err = e as NodeJS.ErrnoException;
  const hint =
    err.code === "EACCES" || err.code === "EPERM"
      ? ": permission denied (run as root, or as the owner of the file and its directory)"
      : err.code === "EROFS"
        ? ": read-only file system"
        : `: ${err.code ?? err.message}`;
  return new OperationError(`cannot write ${path}${hint}`);
}

export function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode?: number,
  opts: WriteOptions = {},
): void {
  const target = writeTarget(path);
  let existing: Stats | undefined;
  try {
    existing = statSync(target);
  } catch {
    existing = undefined;
  }
  if (existing && opts.exclusive)
    throw new UsageError(`${path} already exists: keep it, or pass --force to replace it`);
  const finalMode = mode ?? (existing ? existing.mode & 0o7777 : 0o600);
  const dir = dirname(target);
  const tmp = join(dir, `.${basename(target)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  let fd: number | undefined;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    // Created 0600 whatever the final mode: the content is not readable by others before it is complete.
    fd = openSync(tmp, "wx", 0o600);
    writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    fsyncSync(fd);
    if (existing) keepOwner(fd, existing, path);
    fchmodSync(fd, finalMode);
    closeSync(fd);
    fd = undefined;
    if (opts.exclusive) {
      linkSync(tmp, target);
      rmSync(tmp);
    } else renameSync(tmp, target);
    syncDir(dir);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    if ((e as NodeJS.ErrnoException).code === "EEXIST" && opts.exclusive)
      throw new UsageError(`${path} already exists: keep it, or pass --force to replace it`);
    throw failure(path, e);
  }
}

/** The replacement gets the old file's owner and group; refusing is better than a proxy that cannot read. */
function keepOwner(fd: number, st: Stats, path: string): void {
  try {
    fchownSync(fd, st.uid, st.gid);
  } catch (e) {
    const uid = process.geteuid?.();
    const gid = process.getegid?.();
    if (st.uid === uid && st.gid === gid) return;
    throw new OperationError(
      `cannot keep the owner and group of ${path} (uid ${st.uid}, gid ${st.gid}) when replacing it as uid ${uid}: ${(e as NodeJS.ErrnoException).code}; run as root or as its owner`,
    );
  }
}

/** The rename itself is durable only once the directory is synced. */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // some file systems refuse to sync a directory; the rename is done either way
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
