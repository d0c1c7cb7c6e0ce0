import { Counter, type LabelValues, type Metric, type MetricValueWithName, type Registry } from "prom-client";

/**
 * Metrics updated once or more per proxied connection, kept in plain numbers. prom-client builds a
 * hash string from the labels and checks them on every inc and observe, and its histogram keys its
 * buckets by the bound's decimal text: per connection that was 15k of the proxy's 229k instructions
 * (callgrind, steady state). Both stay exact at every scrape.
 */

/**
 * The series of a metric by their one or two label values. Two map lookups by the values themselves,
 * not one by a key joined from them: label values are strings made once (literals, exit names), whose
 * hash V8 keeps, while a joined key is a new string to build and hash for every update.
 */
class SeriesIndex<T> {
  private readonly byFirst = new Map<string, Map<string, T>>();
  /** Every series, in the order they were first used. */
  readonly list: T[] = [];

  constructor(private readonly make: (a: string, b: string) => T) {}

  get(a: string, b: string): T {
    let bySecond = this.byFirst.get(a);
    if (bySecond === undefined) {
      bySecond = new Map();
      this.byFirst.set(a, bySecond);
    }
    let series = bySecond.get(b);
    if (series === undefined) {
      series = this.make(a, b);
      bySecond.set(b, series);
      this.list.push(series);
    }
    return series;
  }
}

/** The labels of a series: `names` paired with the values `a` and `b` (as many as there are names). */
function seriesLabels(names: readonly string[], a: string, b: string): Record<string, string> {
  const labels: Record<string, string> = {};
  if (names[0] !== undefined) labels[names[0]] = a;
  if (names[1] !== undefined) labels[names[1]] = b;
  return labels;
}

/**
 * Increments of a counter with one or two labels, added to the prom-client counter when it is
 * collected (call flushInto from its `collect`).
 */
export class DeferredCounter<L extends string> {
  private readonly pending: SeriesIndex<{ labels: LabelValues<L>; n: number }>;

  constructor(labelNames: readonly [L] | readonly [L, L]) {
    this.pending = new SeriesIndex((a, b) => ({
      labels: seriesLabels(labelNames, a, b) as LabelValues<L>,
      n: 0,
    }));
  }

  /** Adds `n` to the series of label values `a` (and `b`, for a second label). */
  add(n: number, a: string, b = ""): void {
    this.pending.get(a, b).n += n;
  }

  /** Adds what was counted since the last scrape to `counter`. */
  flushInto(counter: Counter<L>): void {
    for (const p of this.pending.list) {
      if (p.n === 0) continue;
      counter.inc(p.labels, p.n);
      p.n = 0;
    }
  }
}

/** A metric as prom-client's registry reads it (its own typing has `type` as a number). */
interface Exposition {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: MetricValueWithName<string>[];
}

/**
 * A counter (registered in `registers`, printed as prom-client prints it) that is counted through the
 * DeferredCounter returned.
 */
export function deferredCounter<L extends string>(config: {
  name: string;
  help: string;
  labelNames: readonly [L] | readonly [L, L];
  registers: Registry[];
}): DeferredCounter<L> {
  const pending = new DeferredCounter(config.labelNames);
  new Counter({
    ...config,
    collect() {
      pending.flushInto(this);
    },
  });
  return pending;
}

/** One series of a BucketHistogram: keep it, and observe on it. */
export class HistogramSeries {
  /** Observations per bucket (the last one: above every bound); not cumulative. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Record<string, string>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/**
 * A Prometheus histogram in prom-client's registry (same exposition as its Histogram), whose
 * observations cost a bucket search and three additions.
 */
export class BucketHistogram<L extends string = never> {
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly all: SeriesIndex<HistogramSeries>;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
    registry: Registry,
    labelNames: readonly [] | readonly [L, L] = [],
  ) {
    this.all = new SeriesIndex((a, b) => new HistogramSeries(seriesLabels(labelNames, a, b), bounds));
    registry.registerMetric(this as unknown as Metric);
    if (labelNames.length === 0) this.series(); // zeros from the start, as prom-client's
  }

  /** The series of these label values (none for a histogram without labels). */
  series(a = "", b = ""): HistogramSeries {
    return this.all.get(a, b);
  }

  /** What the registry prints: per series its cumulative buckets, then _sum and _count. */
  async get(): Promise<Exposition> {
    const values: MetricValueWithName<string>[] = [];
    for (const s of this.all.list) {
      let below = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        below += s.counts[i]!;
        const le = i < this.bounds.length ? this.bounds[i]! : "+Inf";
        values.push({ metricName: `${this.name}_bucket`, labels: { le, ...s.labels }, value: below });
      }
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count });
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    };
  }

  /** Zeroes every series (callers keep their series: see series()). */
  reset(): void {
    for (const s of this.all.list) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}
