// In-process TTL store, bounded by entry count and, when given a way to weigh entries, by their total weight
// (the response cache's bytes); an entry past its TTL is gone on the next read. Per instance only (the Redis
// store is shared by replicas).
//
// Entries belong to an owner (the tenant). Past a bound, the least recently used entry of the owner that holds
// the most goes first (largest by count past the count bound, by weight past the weight bound; owners.ts). So
// one tenant can push another's entries out only while that other holds more than it: a tenant that fills the
// store with one-off questions takes the space nobody else uses, and each tenant keeps at least an equal share
// of what it asks to keep. With one owner this is plain least-recently-used.
import type { TtlStore } from '../ttl-store.js';
import { Holdings, OwnerHeap, type Linked } from './owners.js';

export interface WeightBound<V> {
  /** The weight of one entry, e.g. an estimate of the bytes it holds. */
  weigh(key: string, value: V): number;
  /** The most the entries may weigh together; past it, the heaviest owner loses its least recently used. */
  max: number;
}

interface Slot<V> extends Linked<Slot<V>> {
  key: string;
  value: V;
  expiresAt: number;
  weight: number;
  owner: Holdings<Slot<V>>;
}

export class MemoryTtlStore<V> implements TtlStore<V> {
  readonly kind = 'memory';
  private readonly entries = new Map<string, Slot<V>>();
  private readonly owners = new Map<string, Holdings<Slot<V>>>();
  private readonly byCount = new OwnerHeap<Holdings<Slot<V>>>((h) => h.count);
  private readonly byWeight = new OwnerHeap<Holdings<Slot<V>>>((h) => h.weight);
  private weight = 0;
  private uses = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
    private readonly bound?: WeightBound<V>,
  ) {}

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.drop(e);
      return undefined;
    }
    e.owner.touch(e);
    this.used(e.owner);
    return e.value;
  }

  set(key: string, value: V, ttlMs: number, owner: string): number {
    const old = this.entries.get(key);
    if (old) this.drop(old);
    const weight = this.bound ? this.bound.weigh(key, value) : 0;
    // One entry heavier than the whole bound would empty the store and still not fit: it is not kept.
    if (this.bound && weight > this.bound.max) return 0;
    let mine = this.owners.get(owner);
    if (!mine) this.owners.set(owner, (mine = new Holdings(owner)));
    const slot: Slot<V> = { key, value, expiresAt: this.now() + ttlMs, weight, owner: mine, prev: undefined, next: undefined };
    this.entries.set(key, slot);
    mine.add(slot, weight);
    this.weight += weight;
    this.used(mine);
    const maxWeight = this.bound?.max ?? Infinity;
    let evicted = 0;
    for (;; evicted++) {
      const overCount = this.entries.size > this.maxEntries;
      if (!overCount && this.weight <= maxWeight) return evicted;
      const from = (overCount ? this.byCount : this.byWeight).top() as Holdings<Slot<V>>;
      this.drop(from.first as Slot<V>);
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
    this.owners.clear();
    this.byCount.clear();
    this.byWeight.clear();
    this.weight = 0;
  }

  private drop(e: Slot<V>): void {
    this.entries.delete(e.key);
    this.weight -= e.weight;
    const o = e.owner;
    o.remove(e, e.weight);
    if (o.count > 0) return this.resort(o);
    this.owners.delete(o.name);
    this.byCount.remove(o);
    this.byWeight.remove(o);
  }

  private used(o: Holdings<Slot<V>>): void {
    o.used = ++this.uses;
    this.resort(o);
  }

  private resort(o: Holdings<Slot<V>>): void {
    this.byCount.update(o);
    if (this.bound) this.byWeight.update(o);
  }
}
