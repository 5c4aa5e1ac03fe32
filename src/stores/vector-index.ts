// The semantic cache's vector index: entries (a vector, the question's guard features and the exact-cache key of
// its answer) in partitions (tenant + context fingerprint + embedder), found through buckets (src/cache/lsh.ts).
// Bounded per partition (oldest evicted first), by TTL, and across partitions (the memory index by its total,
// shared fairly; the Redis ones per tenant, cache.redis.maxEntriesPerTenant). One interface, a memory and a Redis implementation,
// one contract suite (test/contract/vector-index.test.ts).
import type { QuestionFeatures } from '../cache/guards.js';

export interface VectorEntry {
  id: string;
  vector: Float32Array;
  features: QuestionFeatures;
  /** Where the answer lives in the cache store. */
  storeKey: string;
}

export interface VectorMatch {
  score: number;
  features: QuestionFeatures;
  storeKey: string;
}

export interface VectorIndex {
  readonly kind: 'memory' | 'redis';
  /** Candidates from these buckets scoring at least minScore, best first, at most `limit`. */
  search(tenant: string, partition: string, buckets: readonly string[], vector: Float32Array, minScore: number, limit: number): VectorMatch[] | Promise<VectorMatch[]>;
  /** Resolves to how many entries were removed to make room (the bounds; not those that expired). */
  add(tenant: string, partition: string, buckets: readonly string[], entry: VectorEntry, ttlMs: number, maxEntries: number): number | Promise<number>;
  close(): Promise<void>;
}

/** Candidates fetched per bucket at most: a crowded bucket cannot turn one lookup into a scan. */
export const MAX_PER_BUCKET = 64;
