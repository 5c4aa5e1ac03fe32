// Semantic lookup latency with 100,000 entries in one partition, on the memory index and on the Redis index (a
// private redis-server), for both bucket schemes: the word-set bucket of the lexical guard (the default) and LSH
// (lexical guard off). Queries are near-duplicates of stored entries (cosine ≈ 0.95) and unrelated vectors.
// The baseline, in the same process, is an exact scan of the whole partition in memory.
// Prints p50/p99 and ratios; never asserts.   npm run bench:vectors [-- ENTRIES]
import { normalise, dot } from '../src/cache/embedders/embedder.js';
import { questionFeatures } from '../src/cache/guards.js';
import { bucketsFor } from '../src/cache/lsh.js';
import { MemoryVectorIndex } from '../src/stores/memory/vector-index.js';
import { RedisVectorIndex } from '../src/stores/redis/vector-index.js';
import { connectRedis } from '../src/stores/redis/connect.js';
import type { VectorIndex } from '../src/stores/vector-index.js';
import { quantile as pct } from './stats.js';
import { RedisServer } from '../test/helpers/redis-server.js';

const ENTRIES = Number(process.argv[2] ?? 100_000);
const DIMS = 512;
const QUERIES = 1000;

// mulberry32: exact 32-bit integer arithmetic, so 51 million draws do not fall into a short cycle.
let state = 42;
function rand(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
}
const randomUnit = () => normalise(Float32Array.from({ length: DIMS }, rand));
function nearTo(v: Float32Array, noise: number): Float32Array {
  return normalise(v.map((x) => x + rand() * noise));
}

console.log(`building ${ENTRIES.toLocaleString('en')} entries of ${DIMS} dimensions…`);
const vectors = Array.from({ length: ENTRIES }, randomUnit);
// Word-set keys: one per entry (distinct questions), as the lexical guard would give.
const words = vectors.map((_, i) => questionFeatures(`question number ${i} about topic ${i % 977}`).wordsKey);
const features = questionFeatures('q');


async function fill(index: VectorIndex, lexical: boolean): Promise<void> {
  const batch: Array<Promise<number> | number> = [];
  for (let i = 0; i < ENTRIES; i++) {
    batch.push(index.add('bench', 'p', bucketsFor(vectors[i] as Float32Array, words[i] as string, lexical), { id: `e${i}`, vector: vectors[i] as Float32Array, features, storeKey: `k${i}` }, 3_600_000, ENTRIES));
    if (batch.length >= 256) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
}

async function measure(index: VectorIndex, lexical: boolean): Promise<{ p50: number; p99: number; found: number }> {
  const times: number[] = [];
  let found = 0;
  for (let q = 0; q < QUERIES; q++) {
    const i = (q * 7919) % ENTRIES;
    // Half the queries rephrase a stored entry (same words, a close vector), half ask something new.
    const near = q % 2 === 0;
    const v = near ? nearTo(vectors[i] as Float32Array, 0.015) : randomUnit();
    const w = near ? (words[i] as string) : `none-${q}`;
    const t = performance.now();
    const r = await index.search('bench', 'p', bucketsFor(v, w, lexical), v, 0.9, 5);
    times.push(performance.now() - t);
    if (near && r[0]?.storeKey === `k${i}`) found++;
  }
  return { p50: pct(times, 0.5), p99: pct(times, 0.99), found };
}

// Baseline: an exact scan of the partition.
const scanTimes: number[] = [];
for (let q = 0; q < 50; q++) {
  const v = nearTo(vectors[q] as Float32Array, 0.015);
  const t = performance.now();
  let best = -1;
  for (const x of vectors) best = Math.max(best, dot(v, x));
  scanTimes.push(performance.now() - t);
}
const scanP50 = pct(scanTimes, 0.5);
console.log(`exact scan of the partition (baseline): p50 ${scanP50.toFixed(2)} ms, p99 ${pct(scanTimes, 0.99).toFixed(2)} ms`);

const redis = await RedisServer.start();
try {
  for (const lexical of [true, false]) {
    for (const kind of ['memory', 'redis'] as const) {
      const index: VectorIndex = kind === 'memory' ? new MemoryVectorIndex() : new RedisVectorIndex(connectRedis({ url: redis.url, connectTimeoutMs: 2000, commandTimeoutMs: 5000 }), `bench${lexical ? 'w' : 'l'}:`);
      if (index instanceof RedisVectorIndex) while (index.redis.status !== 'ready') await new Promise((r) => setTimeout(r, 20));
      const t = performance.now();
      await fill(index, lexical);
      const fillS = (performance.now() - t) / 1000;
      const m = await measure(index, lexical);
      console.log(
        `${kind.padEnd(6)} ${lexical ? 'word-set bucket (lexical guard on) ' : 'LSH, 24×14 bits (lexical guard off)'}  p50 ${m.p50.toFixed(3)} ms  p99 ${m.p99.toFixed(3)} ms  ` +
          `(${(scanP50 / m.p50).toFixed(0)}× faster than the scan at p50; rephrasings found ${m.found}/${QUERIES / 2}; filled in ${fillS.toFixed(1)} s)`,
      );
      await index.close();
    }
  }
} finally {
  await redis.down();
}
