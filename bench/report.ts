/** Pure rendering of benchmark figures: the comparison table and the PASS/FAIL verdicts of issue 14. */
import { ratio } from "./stats.js";

/** The median figures of one target (undefined = not measured or not applicable). */
export interface Figures {
  /** Single-stream throughput, MB/s (10^6 bytes). */
  single?: number;
  /** 8-stream aggregate throughput, MB/s. */
  multi?: number;
  /** Connections per second, one at a time and 32 concurrent. */
  rateSeq?: number;
  rate32?: number;
  /** Handshake latency (greeting sent → CONNECT reply), ms. */
  hsSeqP50?: number;
  hsSeqP99?: number;
  hs32P50?: number;
  hs32P99?: number;
  /** Memory growth per idle proxied connection, KiB (RSS as the issue asks; PSS is fair to forking dante). */
  idleRssKiB?: number;
  idlePssKiB?: number;
  /** CPU seconds (user+system, whole process tree) per GiB relayed in the single-stream run. */
  cpuPerGiB?: number;
  /** Proxy CPU µs per connection in the 32-concurrent rate test: robust to how busy the host is. */
  cpuPerConnUs?: number;
  /** Failed or lost connections over all runs of all tests. */
  failed: number;
}

type Key = Exclude<keyof Figures, "failed">;

interface Row {
  label: string;
  value: (f: Figures, direct: Figures | undefined) => number | undefined;
  digits: number;
}

const pick =
  (key: Key) =>
  (f: Figures): number | undefined =>
    f[key];
const ofDirect =
  (key: "single" | "multi") =>
  (f: Figures, d: Figures | undefined): number | undefined => {
    const r = ratio(f[key], d?.[key]);
    return r === undefined ? undefined : r * 100;
  };

const ROWS: Row[] = [
  { label: "1-stream MB/s", value: pick("single"), digits: 0 },
  { label: "1-stream % of direct", value: ofDirect("single"), digits: 1 },
  { label: "8-stream MB/s", value: pick("multi"), digits: 0 },
  { label: "8-stream % of direct", value: ofDirect("multi"), digits: 1 },
  { label: "conn/s sequential", value: pick("rateSeq"), digits: 0 },
  { label: "conn/s 32 concurrent", value: pick("rate32"), digits: 0 },
  { label: "handshake p50 ms (seq)", value: pick("hsSeqP50"), digits: 3 },
  { label: "handshake p99 ms (seq)", value: pick("hsSeqP99"), digits: 3 },
  { label: "handshake p50 ms (32)", value: pick("hs32P50"), digits: 3 },
  { label: "handshake p99 ms (32)", value: pick("hs32P99"), digits: 3 },
  { label: "RSS KiB / idle conn", value: pick("idleRssKiB"), digits: 1 },
  { label: "PSS KiB / idle conn", value: pick("idlePssKiB"), digits: 1 },
  { label: "CPU s / GiB (1-stream)", value: pick("cpuPerGiB"), digits: 2 },
  { label: "CPU µs / conn (32)", value: pick("cpuPerConnUs"), digits: 0 },
  { label: "failed/lost connections", value: (f) => f.failed, digits: 0 },
];

export function fmt(n: number | undefined, digits: number): string {
  if (n === undefined || !Number.isFinite(n)) return "-";
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Aligns cells into columns: the first left-aligned, the rest right-aligned. */
export function alignColumns(rows: readonly (readonly string[])[]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  "))
    .join("\n");
}

export const SUBJECT = "wg-egress";
/** Ratio columns: the rivals, and the naive Node relay (how far we are from Node's own floor). */
const RIVALS = ["microsocks", "microsocks-1.0.5", "dante", "node-naive"] as const;

/**
 * One row per metric, one column per target, then wg-egress's ratio to each rival
 * (for latency, memory and CPU a ratio below 1 is better).
 */
export function renderTable(figures: ReadonlyMap<string, Figures>): string {
  const names = [...figures.keys()];
  const direct = figures.get("direct");
  const subject = figures.get(SUBJECT);
  const header = ["", ...names, ...RIVALS.map((r) => `${SUBJECT}/${r}`)];
  const body = ROWS.map((row) => {
    const cells = names.map((n) => fmt(row.value(figures.get(n)!, direct), row.digits));
    const ratios = RIVALS.map((r) => {
      const rival = figures.get(r);
      if (!subject || !rival || row.label.startsWith("failed")) return "-";
      const x = ratio(row.value(subject, direct), row.value(rival, direct));
      return x === undefined ? "-" : `${fmt(x, 2)}x`;
    });
    return [row.label, ...cells, ...ratios];
  });
  return alignColumns([header, ...body]);
}

export interface Verdict {
  check: string;
  value?: number;
  /** undefined when a figure is missing (target not selected or failed to run). */
  pass?: boolean;
}

function judged(check: string, value: number | undefined, ok: (v: number) => boolean): Verdict {
  return { check, value, pass: value === undefined ? undefined : ok(value) };
}

/** Idle connections must cost at most this much RSS each. */
const IDLE_RSS_MAX_KIB = 8;

/**
 * The targets of issue 14, judged for wg-egress: connection setup at Node's floor (the naive relay),
 * handshake latency and throughput against the C proxies, CPU per byte, memory per idle connection.
 */
export function verdicts(figures: ReadonlyMap<string, Figures>): Verdict[] {
  const s = figures.get(SUBJECT);
  const vs = (rival: string, key: Key) => ratio(s?.[key], figures.get(rival)?.[key]);
  return [
    judged("conn/s sequential >= 1.0x node-naive", vs("node-naive", "rateSeq"), (r) => r >= 1),
    judged("conn/s 32 concurrent >= 1.0x node-naive", vs("node-naive", "rate32"), (r) => r >= 1),
    judged("handshake p99 (32) <= dante", vs("dante", "hs32P99"), (r) => r <= 1),
    judged("1-stream throughput >= 1.0x dante", vs("dante", "single"), (r) => r >= 1),
    judged("1-stream throughput >= 1.0x microsocks-1.0.5", vs("microsocks-1.0.5", "single"), (r) => r >= 1),
    judged("1-stream throughput >= 50% of direct", vs("direct", "single"), (r) => r >= 0.5),
    judged("CPU per GiB <= 0.8x microsocks-1.0.5", vs("microsocks-1.0.5", "cpuPerGiB"), (r) => r <= 0.8),
    judged(`RSS per idle conn <= ${IDLE_RSS_MAX_KIB} KiB`, s?.idleRssKiB, (v) => v <= IDLE_RSS_MAX_KIB),
    judged("no connection lost", s?.failed, (v) => v === 0),
  ];
}

export function renderVerdicts(list: readonly Verdict[]): string {
  return list
    .map((v) => {
      const mark = v.pass === undefined ? "n/a " : v.pass ? "PASS" : "FAIL";
      return `${mark}  ${v.check}${v.value === undefined ? "" : ` (${fmt(v.value, 2)})`}`;
    })
    .join("\n");
}
