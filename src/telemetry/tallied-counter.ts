// A prom-client Counter for the increments every request makes: they are summed in a Map by label values and
// folded into the counter when it is read (its `collect` hook, which /metrics and every get() call first).
// prom-client's own inc() validates the label names and builds a sorted hash string of the label set on each
// call; at 1,000 requests/s, with the CPU's caches cold at every request, the four increments of a ledger row
// alone measured 12.6 µs per request (bench:variants, 8 of 8 rounds). Exposition stays prom-client's.
import { Counter, type CounterConfiguration, type LabelValues } from 'prom-client';

interface Pending<L extends string> {
  labels: LabelValues<L>;
  n: number;
  /** The series exists in the counter (an increment of 0 creates it there too, as prom-client does). */
  folded: boolean;
}

export class TalliedCounter<L extends string> {
  private readonly counter: Counter<L>;
  private readonly name: string;
  private readonly names: readonly L[];
  /** One entry per label set seen (labels are low-cardinality by design); n is what is not yet folded in. */
  private readonly pending = new Map<string, Pending<L>>();

  constructor(config: CounterConfiguration<L> & { labelNames: readonly L[] }) {
    this.name = config.name;
    this.names = config.labelNames;
    const fold = () => this.fold();
    this.counter = new Counter<L>({ ...config, collect: fold });
  }

  inc(labels: LabelValues<L>, n = 1): void {
    // Refused here, as prom-client would: at fold time the error would break /metrics instead of the caller.
    if (!Number.isFinite(n) || n < 0) throw new TypeError(`${this.name}: not a valid increment: ${n}`);
    let key = '';
    for (const name of this.names) key += `${labels[name] ?? ''}\u0000`;
    const p = this.pending.get(key);
    if (p) p.n += n;
    else this.pending.set(key, { labels: this.inDeclaredOrder(labels), n, folded: false });
  }

  /** prom-client prints labels in the order of the first object it saw for a series: make it the declared one. */
  private inDeclaredOrder(labels: LabelValues<L>): LabelValues<L> {
    const ordered: LabelValues<L> = {};
    for (const name of this.names) if (labels[name] !== undefined) ordered[name] = labels[name];
    return ordered;
  }

  private fold(): void {
    for (const p of this.pending.values()) {
      if (p.n === 0 && p.folded) continue;
      this.counter.inc(p.labels, p.n);
      p.n = 0;
      p.folded = true;
    }
  }
}
