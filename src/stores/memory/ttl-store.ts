// In-process TTL store: a Map in least-recently-used order, bounded by entry count and, when given a way to
// weigh entries, by their total weight (the response cache's bytes); an entry past its TTL is gone on the next
// read. Per instance only (the Redis store is shared by replicas).
import type { TtlStore } from '../ttl-store.js';

export interface WeightBound<V> {
  /** The weight of one entry, e.g. an estimate of the bytes it holds. */
  weigh(key: string, value: V): number;
  /** The most the entries may weigh together; the least recently used go first past it. */
  max: number;
}

export class MemoryTtlStore<V> implements TtlStore<V> {
  readonly kind = 'memory';
  private readonly entries = new Map<string, { value: V; expiresAt: number; weight: number }>();
  private weight = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
    private readonly bound?: WeightBound<V>,
  ) {}

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.drop(key);
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, e); // most recently used goes last
    return e.value;
  }

  set(key: string, value: V, ttlMs: number): void {
    this.drop(key);
    const weight = this.bound ? this.bound.weigh(key, value) : 0;
    // One entry heavier than the whole bound would empty the store and still not fit: it is not kept.
    if (this.bound && weight > this.bound.max) return;
    this.entries.set(key, { value, expiresAt: this.now() + ttlMs, weight });
    this.weight += weight;
    const maxWeight = this.bound?.max ?? Infinity;
    while (this.entries.size > this.maxEntries || this.weight > maxWeight) {
      this.drop(this.entries.keys().next().value as string);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** What the entries weigh together (0 without a weight bound). */
  get totalWeight(): number {
    return this.weight;
  }

  async close(): Promise<void> {
    this.entries.clear();
    this.weight = 0;
  }

  private drop(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.weight -= e.weight;
  }
}
