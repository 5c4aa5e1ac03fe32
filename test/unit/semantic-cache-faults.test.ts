// The semantic cache's service when its parts fail: an embedder that keeps failing opens the breaker, and then
// no question is sent to it (each lookup is an embedder_down bypass, not a wait for the deadline) until the
// cooldown's trial; an index or answer store that fails is an index_error bypass; adding a vector while the
// breaker is open sends nothing; an index that adds asynchronously (Redis) has its evictions and failures counted.
// And an embedder too far behind to answer within the lookup's deadline: the lookup misses at once.
// The integration suite covers lookups through a request; this one holds the service's own rules.
import { describe, expect, it } from 'vitest';
import { EmbedderBusyError, normalise, type Embedder } from '../../src/cache/embedders/embedder.js';
import { questionFeatures } from '../../src/cache/guards.js';
import { SemanticCache, embedderKeyPart, type SemanticSeed } from '../../src/cache/semantic-cache.js';
import { configSchema } from '../../src/config/schema.js';
import type { CacheEntry, CacheStore } from '../../src/stores/cache-store.js';
import { MemoryCacheStore } from '../../src/stores/memory/cache-store.js';
import { MemoryVectorIndex } from '../../src/stores/memory/vector-index.js';
import type { VectorIndex, VectorMatch } from '../../src/stores/vector-index.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { captureLogger, metricValue } from '../helpers/tiergate.js';

const cfg = () => ({ ...configSchema.parse({}).cache, breaker: { failures: 2, cooldownMs: 1000 } });
const VECTOR = normalise(Float32Array.from({ length: 8 }, (_, i) => i + 1));

class FlakyEmbedder implements Embedder {
  readonly id = 'test:flaky';
  calls = 0;
  fail = false;
  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    this.calls++;
    if (this.fail) throw new Error('embedder down');
    return texts.map(() => VECTOR);
  }
  async close(): Promise<void> {}
}

/** An index whose search and add can fail, and whose add answers with a promise, as the Redis ones do. */
class FlakyIndex implements VectorIndex {
  readonly kind = 'redis';
  searches = 0;
  searchFails = false;
  addFails = false;
  adds = 0;
  evicts = 0;
  private readonly inner = new MemoryVectorIndex(() => 0, 100);
  search(...args: Parameters<VectorIndex['search']>): VectorMatch[] | Promise<VectorMatch[]> {
    this.searches++;
    if (this.searchFails) return Promise.reject(new Error('search failed'));
    return this.inner.search(...args);
  }
  add(...args: Parameters<VectorIndex['add']>): Promise<number> {
    this.adds++;
    if (this.addFails) return Promise.reject(new Error('add failed'));
    this.inner.add(...args);
    return Promise.resolve(this.evicts);
  }
  async close(): Promise<void> {}
}

function service(opts: { embedder?: Embedder; index?: VectorIndex; store?: CacheStore; now?: () => number } = {}) {
  const metrics = createMetrics();
  const { log, logs } = captureLogger();
  const embedder = opts.embedder ?? new FlakyEmbedder();
  const store = opts.store ?? new MemoryCacheStore(100, 1 << 20);
  const semantic = new SemanticCache(embedder, opts.index ?? new FlakyIndex(), store, metrics, log, opts.now ?? (() => 0));
  const degraded = () => metricValue({ metrics }, 'tiergate_cache_store_degraded', { part: 'semantic' });
  const evictions = () => metricValue({ metrics }, 'tiergate_cache_evictions_total', { kind: 'semantic' });
  const lookups = (result: string, reason: string) => metricValue({ metrics }, 'tiergate_cache_lookups_total', { kind: 'semantic', result, reason });
  return { semantic, embedder, store, degraded, evictions, lookups, logs };
}

const query = (question = 'What is the capital of France?') => ({ tenant: 'acme', partition: 'p1', question, threshold: 0.9 });
const ENTRY: CacheEntry = { answer: { model: 'm', systemFingerprint: null, choices: [], usage: null }, storedAt: 0 };
const settled = () => new Promise((r) => setImmediate(r));

describe('the semantic cache when its parts fail', () => {
  it('an embedder that keeps failing opens the breaker: no question is sent to it until the cooldown\'s one trial', async () => {
    let t = 0;
    const embedder = new FlakyEmbedder();
    embedder.fail = true;
    const { semantic, degraded, logs } = service({ embedder, now: () => t });
    expect(await semantic.lookup(query(), cfg())).toEqual({ result: 'bypass', reason: 'embedder_error' });
    expect(await semantic.lookup(query(), cfg())).toEqual({ result: 'bypass', reason: 'embedder_error' });
    expect(await degraded()).toBe(1);
    expect(await semantic.lookup(query(), cfg())).toEqual({ result: 'bypass', reason: 'embedder_down' });
    expect(embedder.calls).toBe(2);
    t = 1000;
    embedder.fail = false;
    expect((await semantic.lookup(query(), cfg())).result).toBe('miss');
    expect(embedder.calls).toBe(3);
    expect(await degraded()).toBe(0);
    const warnings = logs.filter((l) => l.includes('cache.semantic_failed'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('"op":"embed"');
  });

  it('an index that fails to search, or an answer store that fails to read, is an index_error bypass, warned of once', async () => {
    const index = new FlakyIndex();
    const store = new MemoryCacheStore(100, 1 << 20);
    const { semantic, logs } = service({ index, store });
    // A vector indexed, pointing at an answer the store then fails to read.
    const miss = await semantic.lookup(query(), cfg());
    semantic.add('acme', (miss as { seed: SemanticSeed }).seed, 'k1', 60_000, cfg().semantic);
    await settled();
    store.set('k1', ENTRY, 60_000, 'acme');
    expect(await semantic.lookup(query(), cfg())).toMatchObject({ result: 'hit', entry: ENTRY });
    (store as { get: CacheStore['get'] }).get = () => Promise.reject(new Error('store down'));
    expect(await semantic.lookup(query(), cfg())).toEqual({ result: 'bypass', reason: 'index_error' });
    index.searchFails = true;
    expect(await semantic.lookup(query(), cfg())).toEqual({ result: 'bypass', reason: 'index_error' });
    // One warning per interval for an outage, naming the first operation that failed.
    const ops = logs.filter((l) => l.includes('cache.semantic_failed')).map((l) => JSON.parse(l).op);
    expect(ops).toEqual(['get']);
  });

  it('adding a vector: evictions counted, a failure counted by the breaker, nothing sent while it is open', async () => {
    const index = new FlakyIndex();
    const { semantic, degraded, evictions } = service({ index });
    const seed: SemanticSeed = { partition: 'p1:test_flaky', vector: VECTOR, features: questionFeatures('q') };
    index.evicts = 3;
    semantic.add('acme', seed, 'k1', 60_000, cfg().semantic);
    await settled();
    expect(await evictions()).toBe(3);
    index.evicts = 0;
    // Failed adds open the breaker (an add has no request's settings: the last a lookup's failure gave, else
    // three failures)…
    index.addFails = true;
    for (const k of ['k2', 'k3']) semantic.add('acme', seed, k, 60_000, cfg().semantic);
    await settled();
    expect(await degraded()).toBe(0);
    semantic.add('acme', seed, 'k3b', 60_000, cfg().semantic);
    await settled();
    expect(await degraded()).toBe(1);
    // …and then nothing more is sent.
    const adds = index.adds;
    semantic.add('acme', seed, 'k4', 60_000, cfg().semantic);
    await settled();
    expect(index.adds).toBe(adds);
  });

  it('vectors of two embedders never share a partition: the id is part of it, outside characters escaped', () => {
    const a = service({ embedder: Object.assign(new FlakyEmbedder(), { id: 'openai:e5-large' }) as FlakyEmbedder }).semantic;
    const b = service({ embedder: Object.assign(new FlakyEmbedder(), { id: 'openai:e5-small' }) as FlakyEmbedder }).semantic;
    expect(a.partitionOf('p')).toBe('p:openai_3a_e5-large');
    expect(a.partitionOf('p')).not.toBe(b.partitionOf('p'));
  });

  it('the embedder id is escaped one-to-one: ids that differ only in characters outside [A-Za-z0-9.-] stay apart', () => {
    // Each of these would have been `openai_org_e5` under a plain replace-by-underscore.
    const ids = ['openai:org/e5', 'openai:org_e5', 'openai_org:e5', 'openai:org:e5', 'openai:org{e5', 'openai:org\u00e9e5', 'openai:org\u{1f600}e5'];
    const parts = ids.map(embedderKeyPart);
    expect(new Set(parts).size).toBe(ids.length);
    for (const p of parts) expect(p).toMatch(/^[A-Za-z0-9._-]+$/);
    expect(embedderKeyPart('openai:org/e5')).toBe('openai_3a_org_2f_e5');
    // A character beyond the BMP is one escape (its code point), not two halves.
    expect(embedderKeyPart('a\u{1f600}')).toBe('a_1f600_');
    expect(embedderKeyPart('BAAI.bge-m3')).toBe('BAAI.bge-m3');
  });

  it('close() closes the embedder and the index, each even when the other fails to close, and never throws', async () => {
    const closed: string[] = [];
    const embedder = new FlakyEmbedder();
    embedder.close = async () => {
      closed.push('embedder');
      throw new Error('embedder close failed');
    };
    const index = new FlakyIndex();
    index.close = async () => {
      closed.push('index');
      throw new Error('index close failed');
    };
    const { semantic } = service({ embedder, index });
    await expect(semantic.close()).resolves.toBeUndefined();
    expect(closed.sort()).toEqual(['embedder', 'index']);
  });
});

/** An embedder that says how far behind it is (soonestMs) and answers each question only when told to. */
class BehindEmbedder implements Embedder {
  readonly id = 'test:behind';
  soonest = 0;
  refuse = false;
  readonly asked: Array<{ owner: string | undefined; answer(): void }> = [];
  readonly told: string[] = [];
  soonestMs(_text: string, owner: string): number {
    this.told.push(owner);
    return this.soonest;
  }
  embed(texts: readonly string[], owner?: string): Promise<Float32Array[]> {
    if (this.refuse) return Promise.reject(new EmbedderBusyError(128));
    return new Promise((resolve) => this.asked.push({ owner, answer: () => resolve(texts.map(() => VECTOR)) }));
  }
  async close(): Promise<void> {}
}

describe('the semantic cache when its embedder is behind', () => {
  // A minute: were the lookup to wait for the deadline, the test would time out.
  const patient = () => ({ ...cfg(), semantic: { ...cfg().semantic, lookupDeadlineMs: 60_000 } });

  it("a vector the embedder's backlog puts past the deadline is a miss at once; the question is still asked, and its vector comes for the answer's entry", async () => {
    const embedder = new BehindEmbedder();
    embedder.soonest = 60_001;
    const index = new FlakyIndex();
    const { semantic, lookups } = service({ embedder, index });
    const r = await semantic.lookup(query(), patient());
    expect(r).toMatchObject({ result: 'miss', reason: 'embedder_behind' });
    expect(embedder.told).toEqual(['acme']);
    expect(embedder.asked.map((a) => a.owner)).toEqual(['acme']);
    expect(await lookups('miss', 'embedder_behind')).toBe(1);
    expect(await lookups('miss', 'deadline')).toBe(0);
    embedder.asked[0]?.answer();
    const seed = r.result === 'miss' && r.reason === 'embedder_behind' ? await r.seed : undefined;
    expect(seed?.vector).toEqual(VECTOR);
    expect(seed?.partition).toBe(semantic.partitionOf('p1'));
    // The lookup missed already: its vector comes for the entry, not for a search nobody waits for.
    await settled();
    expect(index.searches).toBe(0);
  });

  it('a vector that comes after its deadline is kept for the entry, and nothing is searched with it', async () => {
    const embedder = new BehindEmbedder();
    const index = new FlakyIndex();
    const { semantic } = service({ embedder, index });
    const r = await semantic.lookup(query(), { ...cfg(), semantic: { ...cfg().semantic, lookupDeadlineMs: 1 } });
    expect(r).toMatchObject({ result: 'miss', reason: 'deadline' });
    embedder.asked[0]?.answer();
    const seed = r.result === 'miss' && r.reason === 'deadline' ? await r.seed : undefined;
    expect(seed?.vector).toEqual(VECTOR);
    await settled();
    expect(index.searches).toBe(0);
    // In time, it is searched with.
    const inTime = semantic.lookup(query(), patient());
    await settled();
    embedder.asked[1]?.answer();
    expect(await inTime).toMatchObject({ result: 'miss', reason: 'not_found' });
    expect(index.searches).toBe(1);
  });

  it('a vector foreseen just at the deadline is waited for', async () => {
    const embedder = new BehindEmbedder();
    embedder.soonest = 60_000;
    const { semantic, lookups } = service({ embedder });
    let done = false;
    const pending = semantic.lookup(query(), patient()).finally(() => (done = true));
    // Past the turns of the loop a lookup given up at once takes (a deadline of 0), it is still waiting.
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    embedder.asked[0]?.answer();
    expect(await pending).toMatchObject({ result: 'miss', reason: 'not_found' });
    expect(await lookups('miss', 'embedder_behind')).toBe(0);
  });

  it('a question the full queue refuses is still an embedder_busy bypass when the embedder is behind (its alert reads that)', async () => {
    const embedder = new BehindEmbedder();
    embedder.soonest = 60_001;
    embedder.refuse = true;
    const { semantic, lookups } = service({ embedder });
    expect(await semantic.lookup(query(), patient())).toEqual({ result: 'bypass', reason: 'embedder_busy' });
    expect(await lookups('bypass', 'embedder_busy')).toBe(1);
    expect(await lookups('miss', 'embedder_behind')).toBe(0);
  });
});
