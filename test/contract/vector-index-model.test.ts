// The bucket-based vector indexes side by side on generated histories: the same adds (partitions, LSH-style
// buckets, a per-partition cap) and searches (buckets, a floor, a limit) go to the memory index, to Redis and to
// Redis Cluster, and every search must find the same entries in the same order with the same scores. The
// contract suite states the rules case by case; this looks for the sequences it does not list.
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { normalise } from '../../src/cache/embedders/embedder.js';
import { questionFeatures } from '../../src/cache/guards.js';
import { MemoryVectorIndex } from '../../src/stores/memory/vector-index.js';
import { connectRedis } from '../../src/stores/redis/connect.js';
import { RedisVectorIndex } from '../../src/stores/redis/vector-index.js';
import type { VectorIndex } from '../../src/stores/vector-index.js';
import { redisAndClusterForFile } from '../helpers/redis-server.js';
import { fuzzRuns, fuzzTimeout, sameOnAll } from '../helpers/generated.js';

const servers = redisAndClusterForFile();
const DIMS = 16;
const BUCKETS = ['w:a', 'w:b', 'w:c'];

type Op =
  | { op: 'add'; partition: number; buckets: string[]; vector: number[]; maxEntries: number }
  | { op: 'search'; partition: number; buckets: string[]; vector: number[]; minScore: number; limit: number };

// Dense: every component at least 0.05 either way, so no two scores tie exactly (an exact tie has no one "best").
const vector = fc.array(fc.tuple(fc.double({ min: 0.05, max: 1, noNaN: true }), fc.boolean()).map(([x, neg]) => (neg ? -x : x)), { minLength: DIMS, maxLength: DIMS });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('add' as const), partition: fc.nat(1), buckets: fc.subarray(BUCKETS, { minLength: 1 }), vector, maxEntries: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('search' as const), partition: fc.nat(1), buckets: fc.subarray(BUCKETS, { minLength: 1 }), vector, minScore: fc.constantFrom(-1, 0, 0.5), limit: fc.integer({ min: 1, max: 5 }) }) },
);

const features = questionFeatures('q');
async function play(index: VectorIndex, ops: readonly Op[], history: number): Promise<unknown[]> {
  const out: unknown[] = [];
  let n = 0;
  for (const o of ops) {
    const partition = `h${history}p${o.partition}`;
    const v = normalise(Float32Array.from(o.vector));
    if (o.op === 'add') {
      // Ids in no particular order, as tiergate's random ones are.
      const id = `e${((n + 1) * 2_654_435_761) % 1_000_003}`;
      // How many entries made room: the eviction counter's figure, the same on every index.
      out.push(['evicted', await index.add('t', partition, o.buckets, { id, vector: v, features, storeKey: `k${n}` }, 600_000, o.maxEntries)]);
      n++;
      continue;
    }
    const found = await index.search('t', partition, o.buckets, v, o.minScore, o.limit);
    out.push(found.map((m) => [m.storeKey, Math.round(m.score * 1e5) / 1e5]));
  }
  return out;
}

describe('vector indexes agree on generated histories (fast-check)', () => {
  const indexes: Record<string, VectorIndex> = {};
  beforeAll(async () => {
    indexes.memory = new MemoryVectorIndex();
    const redis = new RedisVectorIndex(connectRedis({ url: servers.redis.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000 }), `vm${Date.now()}:`);
    const cluster = new RedisVectorIndex(connectRedis({ url: servers.cluster.url, cluster: true, connectTimeoutMs: 1000, commandTimeoutMs: 1000 }), `vm${Date.now()}:`);
    Object.assign(indexes, { redis, cluster });
    for (const x of Object.values(indexes)) servers.beforeDown(() => x.close());
    // The Redis indexes answer only once connected (a lookup never waits for a connection).
    for (const x of [redis, cluster]) {
      for (let i = 0; i < 100 && x.redis.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 50));
    }
  });

  it('memory, Redis and Redis Cluster find the same entries, in the same order, with the same scores, and evict as many', async () => {
    let found = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 16, size: 'max' }), async (ops) => {
        const memory = await sameOnAll(indexes.memory as VectorIndex, [indexes.redis as VectorIndex, indexes.cluster as VectorIndex], ops, play);
        found += (memory as unknown[][]).filter((r) => r[0] !== 'evicted' && r.length > 0).length;
      }),
      { numRuns: fuzzRuns(60) },
    );
    console.log(`vector histories: ${found} searches found entries`);
    // Searches find things, so the agreement is about results, not about empty lists.
    expect(found).toBeGreaterThan(10);
  }, fuzzTimeout(60, 120_000));
});
