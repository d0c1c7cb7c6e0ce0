import assert from "node:assert/strict";
import { after, before } from "node:test";
import { labLeftovers } from "../../src/lab/down.js";
import { ADDR2 } from "../../src/lab/second-exit.js";
import { ADDR, LEAK_COUNTER, LEAK_TABLE, NS } from "../../src/lab/topology.js";
import { inNs } from "../../src/lab/up.js";
import { run } from "../../src/util/run.js";
import { MAIN } from "../support/cli.js";
import { acquireLabLock } from "../support/lablock.js";
import { requireTools } from "../support/tools.js";

/** The two-exit lab's test files: exit one's and exit two's public addresses, the leak counter, and the file's lab. */

export const ONE = ADDR.exitPublic;
export const TWO = ADDR2.exitPublic;

/** Packets that left through the home line (the lab's leak counter). */
export async function leaked(): Promise<number> {
  const r = await inNs(NS.inet, ["nft", "list", "counter", "inet", LEAK_TABLE, LEAK_COUNTER]);
  return Number(/packets (\d+)/.exec(r.stdout)?.[1] ?? Number.NaN);
}

const lab = (args: string[]) =>
  run(process.execPath, [MAIN, "--log-level", "warn", "lab", ...args], {
    allowFail: true,
    timeoutMs: 180_000,
  });

/**
 * Hooks of a test file on the two-exit lab: /tmp/wgelab.lock for the whole file, `lab up --exits 2`
 * before, `lab down` after, with nothing left behind.
 */
export function useTwoExitLab(): void {
  let lock: { release: () => void } | undefined;
  before(async () => {
    requireTools("curl", "flock", "setpriv", "wg", "wireguard-go", "nft", "ss", "/usr/bin/python3");
    lock = await acquireLabLock();
    const up = await lab(["up", "--exits", "2"]);
    assert.equal(up.code, 0, up.stderr);
  });
  after(async () => {
    const down = await lab(["down"]);
    lock?.release();
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(await labLeftovers(), []);
  });
}
