import assert from "node:assert/strict";
import { test } from "node:test";
import { parseIperfJson } from "../../bench/iperf.js";
import { kbField, parseStat } from "../../bench/procfs.js";
import {
  alignColumns,
  type Figures,
  fmt,
  renderTable,
  renderVerdicts,
  verdicts,
} from "../../bench/report.js";
import { connectRequest, replyLength } from "../../bench/socks-wire.js";
import { median, percentile, ratio } from "../../bench/stats.js";

test("median ignores missing runs and averages the middle pair", () => {
  assert.equal(median([3, undefined, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([undefined, Number.NaN]), undefined);
});

test("percentile is nearest-rank on sorted values", () => {
  const v = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(v, 50), 50);
  assert.equal(percentile(v, 99), 99);
  assert.equal(percentile([7], 99), 7);
  assert.equal(percentile([], 50), undefined);
});

test("ratio is undefined when a side is missing or zero", () => {
  assert.equal(ratio(6, 3), 2);
  assert.equal(ratio(6, 0), undefined);
  assert.equal(ratio(undefined, 3), undefined);
});

test("fmt groups thousands and shows missing values as a dash", () => {
  assert.equal(fmt(3300.4, 0), "3,300");
  assert.equal(fmt(0.12345, 3), "0.123");
  assert.equal(fmt(undefined, 1), "-");
});

test("alignColumns left-aligns the first column and right-aligns the rest", () => {
  assert.equal(
    alignColumns([
      ["a", "1"],
      ["bbb", "222"],
    ]),
    "a      1\nbbb  222",
  );
});

const figures = new Map<string, Figures>([
  ["direct", { single: 3000, failed: 0 }],
  ["wg-egress", { single: 1800, rateSeq: 9000, rate32: 9000, idleRssKiB: 30, failed: 0 }],
  ["microsocks", { single: 300, rateSeq: 8000, rate32: 8600, idleRssKiB: 13, failed: 0 }],
]);

test("the table shows ratios to each rival and % of direct", () => {
  const table = renderTable(figures);
  const row = (label: string) =>
    table
      .split("\n")
      .find((l) => l.startsWith(label))
      ?.split(/\s{2,}/);
  assert.deepEqual(row("1-stream MB/s"), ["1-stream MB/s", "3,000", "1,800", "300", "6.00x", "-", "-", "-"]);
  assert.deepEqual(row("1-stream % of direct"), [
    "1-stream % of direct",
    "100.0",
    "60.0",
    "10.0",
    "6.00x",
    "-",
    "-",
    "-",
  ]);
  assert.deepEqual(row("failed/lost connections"), [
    "failed/lost connections",
    "0",
    "0",
    "0",
    "-",
    "-",
    "-",
    "-",
  ]);
  assert.match(table.split("\n")[0], /wg-egress\/microsocks/);
});

test("verdicts judge wg-egress against the targets of issue 14", () => {
  const all = new Map<string, Figures>([
    ["direct", { single: 3000, failed: 0 }],
    [
      "wg-egress",
      { single: 1800, rateSeq: 3000, rate32: 2400, hs32P99: 18, cpuPerGiB: 0.8, idleRssKiB: 7.5, failed: 0 },
    ],
    ["node-naive", { rateSeq: 2900, rate32: 2500, failed: 0 }],
    ["dante", { single: 1700, hs32P99: 20, failed: 0 }],
    ["microsocks-1.0.5", { single: 1750, cpuPerGiB: 1.1, failed: 0 }],
  ]);
  const byCheck = new Map(verdicts(all).map((v) => [v.check, v]));
  const pass = (check: string) => byCheck.get(check)?.pass;
  assert.equal(pass("conn/s sequential >= 1.0x node-naive"), true);
  assert.equal(pass("conn/s 32 concurrent >= 1.0x node-naive"), false);
  assert.equal(byCheck.get("conn/s 32 concurrent >= 1.0x node-naive")?.value, 2400 / 2500);
  assert.equal(pass("handshake p99 (32) <= dante"), true);
  assert.equal(pass("1-stream throughput >= 1.0x dante"), true);
  assert.equal(pass("1-stream throughput >= 1.0x microsocks-1.0.5"), true);
  assert.equal(pass("1-stream throughput >= 50% of direct"), true);
  assert.equal(pass("CPU per GiB <= 0.8x microsocks-1.0.5"), true);
  assert.equal(pass("RSS per idle conn <= 8 KiB"), true);
  assert.equal(pass("no connection lost"), true);
  // a rival that was not measured (microsocks 1.0.5 without MICROSOCKS_105) leaves its checks n/a
  const without = new Map(all);
  without.delete("microsocks-1.0.5");
  assert.match(renderVerdicts(verdicts(without)), /^n\/a {3}CPU per GiB <= 0\.8x microsocks-1\.0\.5$/m);
  const lossy = new Map(all).set("wg-egress", { ...all.get("wg-egress")!, failed: 2, idleRssKiB: 9 });
  assert.match(renderVerdicts(verdicts(lossy)), /^FAIL {2}no connection lost \(2\.00\)$/m);
  assert.match(renderVerdicts(verdicts(lossy)), /^FAIL {2}RSS per idle conn <= 8 KiB \(9\.00\)$/m);
});

test("parseStat reads ppid and CPU time even with a ') ' in the command name", () => {
  const stat = "42 (a) b) S 7 42 42 0 -1 4194560 100 0 0 0 150 50 20 30 20 0 1 0 5 1000 100";
  assert.deepEqual(parseStat(stat), { ppid: 7, cpuSec: 2.5 });
});

test("kbField finds a kB line or gives 0", () => {
  const status = "Name:\tnode\nVmRSS:\t   51200 kB\nVmSwap:\t0 kB\n";
  assert.equal(kbField(status, "VmRSS"), 51200);
  assert.equal(kbField(status, "Pss"), 0);
});

test("SOCKS5 CONNECT request and reply lengths", () => {
  assert.deepEqual([...connectRequest("127.0.0.1", 1080)], [5, 1, 0, 1, 127, 0, 0, 1, 4, 56]);
  assert.throws(() => connectRequest("example.com", 80), /IPv4/);
  assert.equal(replyLength(Buffer.from([5, 0, 0, 1])), undefined);
  assert.equal(replyLength(Buffer.from([5, 0, 0, 1, 127])), 10);
  assert.equal(replyLength(Buffer.from([5, 0, 0, 4, 0])), 22);
  assert.equal(replyLength(Buffer.from([5, 0, 0, 3, 11])), 18);
  assert.throws(() => replyLength(Buffer.from([4, 0, 0, 1, 0])), /version/);
});

test("parseIperfJson uses the receiver's summary and surfaces iperf3 errors", () => {
  const ok = JSON.stringify({
    end: { sum_received: { bytes: 2e9, seconds: 2 }, sum_sent: { bytes: 3e9, seconds: 2 } },
  });
  assert.deepEqual(parseIperfJson(ok), { bytes: 2e9, seconds: 2, mbPerSec: 1000 });
  assert.throws(() => parseIperfJson(JSON.stringify({ error: "unable to connect" })), /unable to connect/);
  assert.throws(() => parseIperfJson("{}"), /no receiver summary/);
});
