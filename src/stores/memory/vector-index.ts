// In-process vector index: per partition a Map of entries in insertion order (the oldest goes first when the
// partition is full) and a Map from bucket to entry ids. Candidates are scored exactly (dot product of unit
// vectors = cosine).
import { dot } from '../../cache/embedders/embedder.js';
import { MAX_PER_BUCKET, type VectorEntry, type VectorIndex, type VectorMatch } from '../vector-index.js';

interface Stored extends VectorEntry {
  buckets: readonly string[];
  expiresAt: number;
}

interface Partition {
  entries: Map<string, Stored>;
  buckets: Map<string, Set<string>>;
}

export class MemoryVectorIndex implements VectorIndex {
  readonly kind = 'memory';
  private readonly partitions = new Map<string, Partition>();
  private total = 0;

  constructor(
    private readonly now: () => number = Date.now,
    /** All partitions together; past it the oldest partition gives up its oldest entry (the memory bound). */
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
          this.remove(p, e);
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

  add(tenant: string, partition: string, buckets: readonly string[], entry: VectorEntry, ttlMs: number, maxEntries: number): void {
    const key = `${tenant}\0${partition}`;
    let p = this.partitions.get(key);
    if (!p) this.partitions.set(key, (p = { entries: new Map(), buckets: new Map() }));
    const old = p.entries.get(entry.id);
    if (old) this.remove(p, old);
    const stored: Stored = { ...entry, buckets, expiresAt: this.now() + ttlMs };
    p.entries.set(entry.id, stored);
    for (const b of buckets) {
      let set = p.buckets.get(b);
      if (!set) p.buckets.set(b, (set = new Set()));
      set.add(entry.id);
    }
    this.total++;
    while (p.entries.size > maxEntries) this.remove(p, p.entries.values().next().value as Stored);
    while (this.total > this.maxTotal) {
      const [oldestKey, oldest] = this.partitions.entries().next().value as [string, Partition];
      const first = oldest.entries.values().next().value as Stored | undefined;
      if (first) this.remove(oldest, first);
      if (oldest.entries.size === 0) this.partitions.delete(oldestKey);
    }
  }

  private remove(p: Partition, e: Stored): void {
    if (p.entries.delete(e.id)) this.total--;
    for (const b of e.buckets) {
      const set = p.buckets.get(b);
      set?.delete(e.id);
      if (set?.size === 0) p.buckets.delete(b);
    }
  }

  async close(): Promise<void> {
    this.partitions.clear();
    this.total = 0;
  }
}
