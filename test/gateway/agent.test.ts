import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff, backoffMs } from "../../src/gateway/agent.js";

test("backoff: the first attempt goes at once, then 1, 2, 4 … 30 s after the previous one", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map(backoffMs), [0, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  const b = new Backoff();
  assert.equal(b.delay(0), 0);
  b.record(0);
  assert.ok(b.active);
  assert.equal(b.delay(0), 1000);
  assert.equal(b.delay(400), 600);
  b.record(1000);
  assert.equal(b.delay(1000), 2000);
  b.reset();
  assert.equal(b.delay(1000), 0);
  assert.ok(!b.active);
});

test("restart backoff forgets restarts older than its window", () => {
  const b = new Backoff(60_000);
  b.record(0);
  b.record(1_000);
  assert.equal(b.delay(1_000), 2_000);
  assert.equal(b.delay(61_500), 0, "both restarts are older than a minute");
});
