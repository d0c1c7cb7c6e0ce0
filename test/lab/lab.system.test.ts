import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { before, test } from "node:test";
import { MAIN } from "../support/cli.js";
import { requireTools } from "../support/tools.js";

before(() => requireTools("flock", "curl", "wg", "wireguard-go", "nft", "setpriv", "unbound"));

/**
 * The end-to-end proof through the real CLI: `lab up`, `lab test` (scenarios 1–11), `lab down`.
 * Holds /tmp/wgelab.lock for the whole sequence so nobody else's lab run interleaves with ours.
 */

test("lab up, lab test, lab down", { timeout: 480_000 }, () => {
  const node = JSON.stringify(process.execPath);
  const cli = (cmd: string) => `${node} ${JSON.stringify(MAIN)} --log-level warn lab ${cmd}`;
  const script = `${cli("up")} || exit 10; ${cli("test")}; rc=$?; ${cli("down")} || exit 11; exit $rc`;
  const r = spawnSync("flock", ["-w", "600", "/tmp/wgelab.lock", "sh", "-c", script], {
    encoding: "utf8",
    timeout: 470_000,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, out);
  assert.match(r.stdout, /lab is up/);
  for (let n = 1; n <= 11; n++) assert.match(r.stdout, new RegExp(`^PASS ${n} `, "m"), out);
  assert.doesNotMatch(r.stdout, /^FAIL/m);
  assert.match(r.stdout, /lab is down; nothing left behind/);
});
