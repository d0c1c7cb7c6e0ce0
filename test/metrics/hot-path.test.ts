import assert from "node:assert/strict";
import { test } from "node:test";
import { Histogram, Registry } from "prom-client";
import { BucketHistogram, deferredCounter } from "../../src/metrics/hot-path.js";

const BOUNDS = [0.001, 0.01, 0.1, 1];

/** Deterministic values on and around every bound, below the first and above the last. */
function values(): number[] {
  const out = [0, 0.0005, 5, 1e6];
  for (const b of BOUNDS) out.push(b, b * 0.999, b * 1.001);
  for (let i = 0; i < 200; i++) out.push(((i * 7919) % 1000) / 400);
  return out;
}

test("BucketHistogram prints exactly what prom-client's Histogram prints for the same observations", async () => {
  const ours = new Registry();
  const theirs = new Registry();
  const h = new BucketHistogram("t_seconds", "help text", BOUNDS, ours, ["exit", "outcome"]);
  const ref = new Histogram({
    name: "t_seconds",
    help: "help text",
    buckets: BOUNDS,
    labelNames: ["exit", "outcome"],
    registers: [theirs],
  });
  const series = [
    ["one", "ok"],
    ["two", "ok"],
    ["one", "ENOTFOUND"],
  ] as const;
  values().forEach((v, i) => {
    const [exit, outcome] = series[i % series.length]!;
    h.series(exit, outcome).observe(v);
    ref.observe({ exit, outcome }, v);
  });
  assert.equal(await ours.metrics(), await theirs.metrics());
});

test("BucketHistogram without labels matches too, from the first scrape (all zeros)", async () => {
  const ours = new Registry();
  const theirs = new Registry();
  const h = new BucketHistogram("h_seconds", "h", BOUNDS, ours);
  const ref = new Histogram({ name: "h_seconds", help: "h", buckets: BOUNDS, registers: [theirs] });
  assert.equal(await ours.metrics(), await theirs.metrics());
  assert.match(await ours.metrics(), /^h_seconds_count 0$/m);
  const s = h.series();
  for (const v of values()) {
    s.observe(v);
    ref.observe(v);
  }
  assert.equal(await ours.metrics(), await theirs.metrics());
  // a reset zeroes it, and a series handle kept from before still counts
  ours.resetMetrics();
  s.observe(0.05);
  assert.match(await ours.metrics(), /^h_seconds_count 1$/m);
  assert.match(await ours.metrics(), /^h_seconds_bucket\{le="0.01"\} 0$/m);
});

test("DeferredCounter adds what was counted to its counter at each scrape, exactly once", async () => {
  const registry = new Registry();
  const pending = deferredCounter({
    name: "c_total",
    help: "c",
    labelNames: ["result", "reply"],
    registers: [registry],
  });
  const bytes = deferredCounter({
    name: "b_total",
    help: "b",
    labelNames: ["direction"],
    registers: [registry],
  });
  pending.add(1, "ok", "succeeded");
  pending.add(1, "ok", "succeeded");
  pending.add(1, "refused", "not_allowed");
  bytes.add(10, "up");
  let text = await registry.metrics();
  assert.match(text, /^c_total\{result="ok",reply="succeeded"\} 2$/m);
  assert.match(text, /^c_total\{result="refused",reply="not_allowed"\} 1$/m);
  assert.match(text, /^b_total\{direction="up"\} 10$/m);
  pending.add(1, "ok", "succeeded");
  bytes.add(5, "up");
  bytes.add(7, "down");
  text = await registry.metrics();
  assert.match(text, /^c_total\{result="ok",reply="succeeded"\} 3$/m);
  assert.match(text, /^c_total\{result="refused",reply="not_allowed"\} 1$/m);
  assert.match(text, /^b_total\{direction="up"\} 15$/m);
  assert.match(text, /^b_total\{direction="down"\} 7$/m);
  assert.equal(await registry.metrics(), text, "a scrape with nothing new changes nothing");
});
