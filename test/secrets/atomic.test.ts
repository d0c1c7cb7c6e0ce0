import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { writeFileAtomic } from "../../src/secrets/atomic.js";
import { UserError } from "../../src/util/errors.js";
import { tempDir } from "../support/tmp.js";

/** The one writer of config, key and secret files, on the real file system. */

const mode = (p: string) => statSync(p).mode & 0o7777;

test("a symlinked file is written through: the target is replaced, the link stays (relative, absolute, chained, dangling)", () => {
  const dir = tempDir("wgetest-atomic-");
  mkdirSync(join(dir, "real"));
  const target = join(dir, "real", "config.yaml");
  writeFileSync(target, "old\n", { mode: 0o640 });
  symlinkSync("real/config.yaml", join(dir, "rel.yaml"));
  symlinkSync(target, join(dir, "abs.yaml"));
  symlinkSync(join(dir, "rel.yaml"), join(dir, "chain.yaml"));
  for (const link of ["rel.yaml", "abs.yaml", "chain.yaml"]) {
    writeFileAtomic(join(dir, link), `via ${link}\n`);
    assert.ok(lstatSync(join(dir, link)).isSymbolicLink(), `${link} is still a link`);
    assert.equal(readFileSync(target, "utf8"), `via ${link}\n`);
    assert.equal(mode(target), 0o640);
  }
  assert.equal(readlinkSync(join(dir, "rel.yaml")), "real/config.yaml");
  symlinkSync("real/new.key", join(dir, "dangling.key"));
  writeFileAtomic(join(dir, "dangling.key"), "k\n", 0o600);
  assert.ok(lstatSync(join(dir, "dangling.key")).isSymbolicLink());
  assert.equal(readFileSync(join(dir, "real", "new.key"), "utf8"), "k\n");
  assert.deepEqual(readdirSync(join(dir, "real")).sort(), ["config.yaml", "new.key"], "no temporary file");
});

test("an existing file keeps its owner, group and mode, whatever the umask; `mode` replaces only the mode", () => {
  const dir = tempDir("wgetest-atomic-");
  const file = join(dir, "config.yaml");
  writeFileSync(file, "a: 1\n");
  chmodSync(file, 0o640);
  // As root: the README's root:wg-egress-proxy (uid/gid 400). Otherwise: one of our own other groups.
  const root = process.getuid?.() === 0;
  const gid = root ? 400 : process.getgroups?.().find((g) => g !== process.getegid?.());
  assert.ok(gid !== undefined, "this test needs root or a supplementary group");
  chownSync(file, root ? 400 : process.getuid!(), gid);
  const before = statSync(file);
  const umask = process.umask(0o077);
  try {
    writeFileAtomic(file, "a: 2\n");
  } finally {
    process.umask(umask);
  }
  const after = statSync(file);
  assert.equal(readFileSync(file, "utf8"), "a: 2\n");
  assert.deepEqual([after.uid, after.gid, after.mode & 0o7777], [before.uid, before.gid, 0o640]);
  assert.notEqual(after.ino, before.ino, "replaced by rename, not rewritten in place");
  writeFileAtomic(file, "secret\n", 0o600);
  assert.deepEqual([statSync(file).uid, statSync(file).gid, mode(file)], [before.uid, before.gid, 0o600]);
});

test("a new file is 0600 unless told otherwise; missing directories are created 0755, not 0700", () => {
  const dir = tempDir("wgetest-atomic-");
  const file = join(dir, "etc", "wg-egress", "gateway.key");
  writeFileAtomic(file, "k\n");
  assert.equal(mode(file), 0o600);
  assert.equal(mode(join(dir, "etc", "wg-egress")), 0o755, "a uid-400 proxy can reach a 0640 config here");
  writeFileAtomic(join(dir, "etc", "wg-egress", "config.yaml"), "x: 1\n", 0o644);
  assert.equal(mode(join(dir, "etc", "wg-egress", "config.yaml")), 0o644);
});

test("exclusive refuses an existing file and leaves it as it was; failures leave no temporary file", () => {
  const dir = tempDir("wgetest-atomic-");
  const file = join(dir, "gateway.key");
  writeFileAtomic(file, "first\n", 0o600, { exclusive: true });
  assert.throws(
    () => writeFileAtomic(file, "second\n", 0o600, { exclusive: true }),
    (e) => e instanceof UserError && /already exists: keep it, or pass --force/.test(e.message),
  );
  assert.equal(readFileSync(file, "utf8"), "first\n");
  // The rename fails: the target is a non-empty directory.
  const blocker = join(dir, "blocked");
  mkdirSync(join(blocker, "inside"), { recursive: true });
  assert.throws(
    () => writeFileAtomic(blocker, "x\n"),
    (e) => e instanceof UserError && e.exitCode === 1 && e.message.startsWith(`cannot write ${blocker}: `),
  );
  assert.deepEqual(readdirSync(dir).sort(), ["blocked", "gateway.key"], "no temporary file left behind");
});
