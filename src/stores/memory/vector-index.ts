// In-process vector index: per partition a Map of entries in insertion order (the oldest goes first when the
// partition is full) and a Map from bucket to entry ids. Candidates are scored exactly (dot product of unit
// vectors = cosine). Past the bound on all partitions together, the tenant holding the most entries gives up its
// oldest (memory/owners.ts), so one tenant's questions cannot push every other tenant's out.
import { dot } from '../../cache/embedders/embedder.js';
import { MAX_PER_BUCKET, type VectorEntry, type VectorIndex, type VectorMatch } from '../vector-index.js';
import { Holdings, OwnerHeap, type Linked } from './owners.js';

interface Stored extends VectorEntry, Linked<Stored> {
  buckets: readonly string[];
  expiresAt: number;
  partition: Partition;
}

interface Partition {
  entries: Map<string, Stored>;
  buckets: Map<string, Set<string>>;
  key: string;
  /** Its tenant's entries across all its partitions, oldest first. */
  tenant: Holdings<Stored>;
}

export class MemoryVectorIndex implements VectorIndex {
  readonly kind = 'memory';
  private readonly partitions = new Map<string, Partition>();
  private readonly tenants = new Map<string, Holdings<Stored>>();
  private readonly largest = new OwnerHeap<Holdings<Stored>>((h) => h.count);
  private total = 0;
  private adds = 0;

  constructor(
    private readonly now: () => number = Date.now,
    /** All partitions together; past it the tenant holding the most gives up its oldest entry (the memory bound). */
    private readonly maxTotal = Number.POSITIVE_INFINITY,
  ) {}

  search(tenant: string, partition: string, buckets: readonly string[], vector: Float32Array, minScore: number, limit: number): VectorMatch[] {
    const p = this.partitions.get(`${tenant}\0${partition}`);
    if (!p) return [];
    const now = this.now();
    const seen = new Set<string>();
    const out: VectorMatch[] = [];
    for (const b of buckets) {
      let n = 0;
      for (const id of p.buckets.get(b) ?? []) {
        if (n++ >= MAX_PER_BUCKET) break;
        if (seen.has(id)) continue;
        seen.add(id);
        const e = p.entries.get(id);
        if (!e) continue;
        if (e.expiresAt <= now) {
          this.remove(e);
          continue;
        }
        // Another model's vector (an embeddings endpoint redeployed under the same name): never comparable, as
        // in the Redis indexes. dot() would score the query against the stored vector's first dimensions.
        if (e.vector.length !== vector.length) continue;
        const score = dot(vector, e.vector);
        if (score >= minScore) out.push({ score, features: e.features, storeKey: e.storeKey });
      }
    }
    return out.sort((a, b) => b.score - a.score).slice(0, limit);
  }

  add(tenant: string, partition: string, buckets: readonly string[], entry: VectorEntry, ttlMs: number, maxEntries: number): number {
    const key = `${tenant}\0${partition}`;
    // An entry stored again under its id replaces the old one; removed first, since it may have been its
    // partition's or its tenant's last.
    const old = this.partitions.get(key)?.entries.get(entry.id);
    if (old) this.remove(old);
    let mine = this.tenants.get(tenant);
    if (!mine) this.tenants.set(tenant, (mine = new Holdings(tenant)));
    let p = this.partitions.get(key);
    if (!p) this.partitions.set(key, (p = { entries: new Map(), buckets: new Map(), key, tenant: mine }));
    const stored: Stored = { ...entry, buckets, expiresAt: this.now() + ttlMs, partition: p, prev: undefined, next: undefined };
    p.entries.set(entry.id, stored);
    mine.add(stored, 0); // counted only: the index has no weight bound
    mine.used = ++this.adds;
    this.largest.update(mine);
    for (const b of buckets) {
      let set = p.buckets.get(b);
      if (!set) p.buckets.set(b, (set = new Set()));
      set.add(entry.id);
    }
    this.total++;
    let evicted = 0;
    for (; p.entries.size > maxEntries; evicted++) this.remove(p.entries.values().next().value as Stored);
    for (; this.total > this.maxTotal; evicted++) this.remove((this.largest.top() as Holdings<Stored>).first as Stored);
    return evicted;
  }

  private remove(e: Stored): void {
    const p = e.partition;
    if (p.entries.get(e.id) !== e) return;
    p.entries.delete(e.id);
    this.total--;
    for (const b of e.buckets) {
      const set = p.buckets.get(b);
      set?.delete(e.id);
      if (set?.size === 0) p.buckets.delete(b);
    }
    if (p.entries.size === 0) this.partitions.delete(p.key);
    const t = p.tenant;
    t.remove(e, 0);
    if (t.count > 0) return this.largest.update(t);
    this.tenants.delete(t.name);
    this.largest.remove(t);
  }

  async close(): Promise<void> {
    this.partitions.clear();
    this.tenants.clear();
    this.largest.clear();
    this.total = 0;
  }
}
