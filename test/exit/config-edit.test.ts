import assert from "node:assert/strict";
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { setConfigValues } from "../../src/exit/config-edit.js";
import { UserError } from "../../src/util/errors.js";
import { tempDir } from "../support/tmp.js";

test("set-endpoint edits keep comments and the file mode, replace atomically, and are idempotent", () => {
  const dir = tempDir("wgetest-cfg-");
  const file = join(dir, "config.yaml");
  writeFileSync(
    file,
    "# top comment\ngateway:\n  # the tunnel interface\n  interface: wg-egress # inline\nproxy: {}\n",
  );
  chmodSync(file, 0o640);
  assert.deepEqual(setConfigValues(file, { "gateway.peer.endpoint": "203.0.113.5:51820" }), [
    "gateway.peer.endpoint",
  ]);
  const text = readFileSync(file, "utf8");
  for (const c of ["# top comment", "# the tunnel interface", "interface: wg-egress # inline"])
    assert.ok(text.includes(c), text);
  assert.match(text, /peer:\n\s+endpoint: 203\.0\.113\.5:51820/);
  assert.equal(statSync(file).mode & 0o777, 0o640);
  assert.deepEqual(setConfigValues(file, { "gateway.peer.endpoint": "203.0.113.5:51820" }), []);
  assert.deepEqual(readdirSync(dir), ["config.yaml"], "no temporary file left behind");

  const fresh = join(dir, "new.yaml");
  setConfigValues(fresh, { "gateway.peer.endpoint": "203.0.113.5:51820" });
  assert.equal(readFileSync(fresh, "utf8"), "gateway:\n  peer:\n    endpoint: 203.0.113.5:51820\n");

  writeFileSync(file, "gateway: [unclosed\n");
  assert.throws(() => setConfigValues(file, { "gateway.peer.endpoint": "x:1" }), UserError);
});
