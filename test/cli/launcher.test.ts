import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { symlinkSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { tempDir } from "../support/tmp.js";

const LAUNCHER = fileURLToPath(new URL("../../../bin/wg-egress", import.meta.url));

test("the launcher finds the CLI when started through a symlink from another directory", () => {
  const dir = tempDir("wgetest-launcher-");
  const link = join(dir, "wg-egress");
  symlinkSync(LAUNCHER, link);
  const r = spawnSync(link, ["proxy", "--help"], { cwd: dir, encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /--listen <host:port>/);
});
