// A fixed-bucket histogram for the per-message hot path, registered in a prom-client Registry as a custom
// metric (prom-client formats anything whose get() returns a metric object). prom-client's own observe()
// hashes the label object and updates string-keyed buckets on every call: ~2 µs each, the largest cost
// tiergate added per request in the bench/extproc-bench.ts profile. Here one label value maps to one
// counts array, found once, and an observation is a short loop and two additions.
import type { Registry } from 'prom-client';

interface Series {
  counts: Float64Array;
  sum: number;
  count: number;
}

export interface Observer {
  observe(value: number): void;
}

export class FastHistogram {
  private readonly series = new Map<string, Series>();
  private readonly observers = new Map<string, Observer>();
  readonly aggregator = 'sum';
  readonly type = 'histogram';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelName: string,
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** As prom-client's metrics have it: the manifests' and dashboard's tests check their queries against it. */
  get labelNames(): readonly string[] {
    return [this.labelName];
  }

  /** The observer for one label value (made once, then a Map lookup). */
  labels(value: string): Observer {
    const known = this.observers.get(value);
    if (known) return known;
    const series: Series = { counts: new Float64Array(this.buckets.length), sum: 0, count: 0 };
    this.series.set(value, series);
    const bounds = this.buckets;
    const observer: Observer = {
      observe(v: number) {
        series.sum += v;
        series.count++;
        for (let i = 0; i < bounds.length; i++) {
          if (v <= (bounds[i] as number)) {
            // Not `(… as number)++`: Stryker's mutant of that (`… as number--`) does not parse, which hid every
            // suite importing this file from a mutation run.
            series.counts[i] = (series.counts[i] as number) + 1;
            break;
          }
        }
      },
    };
    this.observers.set(value, observer);
    return observer;
  }

  /** prom-client's metric interface: the Prometheus histogram series, cumulative buckets with `le`. */
  get() {
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    for (const [labelValue, s] of this.series) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += s.counts[i] as number;
        values.push({ metricName: `${this.name}_bucket`, labels: { le, [this.labelName]: labelValue }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', [this.labelName]: labelValue }, value: s.count });
      values.push({ metricName: `${this.name}_sum`, labels: { [this.labelName]: labelValue }, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: { [this.labelName]: labelValue }, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.series.clear();
    this.observers.clear();
  }
}
