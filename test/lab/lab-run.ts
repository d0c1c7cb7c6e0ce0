import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { MAIN } from "../support/cli.js";

/**
 * The issue's end-to-end proof through the real CLI: `lab up`, `lab test --only …`, `lab down`, holding
 * /tmp/wgelab.lock for the whole sequence so nobody else's lab run interleaves with ours. The scenarios
 * are split over two test files (lab.system, lab-repair.system) so each stays within a file's time budget.
 */
export function labRun(scenarios: number[], timeoutMs: number): string {
  const node = JSON.stringify(process.execPath);
  const cli = (cmd: string) => `${node} ${JSON.stringify(MAIN)} --log-level warn lab ${cmd}`;
  const script = `${cli("up")} || exit 10; ${cli(`test --only ${scenarios.join(",")}`)}; rc=$?; ${cli("down")} || exit 11; exit $rc`;
  const r = spawnSync("flock", ["-w", "600", "/tmp/wgelab.lock", "sh", "-c", script], {
    encoding: "utf8",
    timeout: timeoutMs,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, out);
  assert.match(r.stdout, /lab is up/);
  for (const n of scenarios) assert.match(r.stdout, new RegExp(`^PASS ${n} `, "m"), out);
  assert.doesNotMatch(r.stdout, /^FAIL/m);
  assert.match(r.stdout, /lab is down; nothing left behind/);
  return r.stdout;
}
