// The exact cache's service over stores that misbehave: a failing store opens the breaker (no more calls until
// the cooldown, lookups counted as store_down, writes as failed), a trial after the cooldown closes it again, and
// every lookup and write is counted once by what it came to. The integration suite (test/integration/cache.test.ts)
// covers the cache through a request; this one holds the service's own rules.
import { describe, expect, it } from 'vitest';
import { ResponseCache } from '../../src/cache/response-cache.js';
import { configSchema } from '../../src/config/schema.js';
import type { CacheEntry, CacheStore } from '../../src/stores/cache-store.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { captureLogger, metricValue } from '../helpers/tiergate.js';

const cfg = (breaker = { failures: 2, cooldownMs: 1000 }, lookupDeadlineMs = 50) => ({ ...configSchema.parse({}).cache, breaker, lookupDeadlineMs });
const ENTRY: CacheEntry = { answer: { model: 'm', content: 'hi' } as unknown as CacheEntry['answer'], storedAt: 0 };

/** A store whose next answers are scripted: 'ok', 'throw' (synchronously), 'reject', 'hang'; sync answers when asked. */
class ScriptedStore implements CacheStore {
  readonly kind = 'redis';
  gets = 0;
  sets = 0;
  mode: 'ok' | 'throw' | 'reject' | 'hang' | 'slow' = 'ok';
  /** How late a 'slow' store answers. */
  slowMs = 0;
  sync = false;
  evicts = 0;
  readonly entries = new Map<string, CacheEntry>();
  get(key: string): CacheEntry | undefined | Promise<CacheEntry | undefined> {
    this.gets++;
    return this.answer(() => this.entries.get(key));
  }
  set(key: string, value: CacheEntry): number | Promise<number> {
    this.sets++;
    return this.answer(() => {
      this.entries.set(key, value);
      return this.evicts;
    });
  }
  private answer<T>(ok: () => T): T | Promise<T> {
    if (this.mode === 'throw') throw new Error('not connected');
    if (this.mode === 'reject') return Promise.reject(new Error('boom'));
    if (this.mode === 'hang') return new Promise(() => undefined);
    if (this.mode === 'slow') return new Promise((r) => setTimeout(() => r(ok()), this.slowMs));
    return this.sync ? ok() : Promise.resolve(ok());
  }
  closed = 0;
  async close(): Promise<void> {
    this.closed++;
  }
}

function service(store: CacheStore, now = () => 0) {
  const metrics = createMetrics();
  const { log, logs } = captureLogger();
  const values = async (m: { get(): Promise<{ values: Array<{ labels: Record<string, unknown>; value: number }> }> }) =>
    Object.fromEntries((await m.get()).values.filter((v) => v.value !== 0).map((v) => [Object.values(v.labels).map(String).join(':'), v.value]));
  const counts = async () => ({ lookups: await values(metrics.cacheLookups), writes: await values(metrics.cacheWrites), evictions: await values(metrics.cacheEvictions) });
  const degraded = () => metricValue({ metrics }, 'tiergate_cache_store_degraded', { part: 'exact' });
  return { cache: new ResponseCache(store, 'tg:', metrics, log, now), counts, degraded, logs };
}

const settled = () => new Promise((r) => setImmediate(r));

describe('the exact cache service', () => {
  it('keys name their tenant, hash-tagged so a tenant\'s entries share a Redis Cluster slot', () => {
    const { cache } = service(new ScriptedStore());
    expect(cache.storeKey('acme', 'x', 'abc')).toBe('tg:{t:acme}:x:abc');
  });

  it('a hit, a miss and a stored answer, each counted once; evictions counted by kind', async () => {
    const store = new ScriptedStore();
    const { cache, counts } = service(store);
    expect(await cache.lookup('k', cfg())).toEqual({ result: 'miss', reason: 'not_found' });
    store.evicts = 2;
    cache.save('acme', 'k', ENTRY, 60_000, cfg());
    await settled();
    expect(await cache.lookup('k', cfg())).toEqual({ result: 'hit', entry: ENTRY });
    store.evicts = 0;
    cache.save('acme', 'k2', ENTRY, 60_000, cfg());
    await settled();
    expect(await counts()).toEqual({ lookups: { 'exact:miss:not_found': 1, 'exact:hit:found': 1 }, writes: { stored: 2 }, evictions: { exact: 2 } });
  });

  it('a synchronous store (memory) answers without a promise, counted the same', async () => {
    const store = new ScriptedStore();
    store.sync = true;
    const { cache, counts } = service(store);
    cache.save('acme', 'k', ENTRY, 60_000, cfg());
    const hit = cache.lookup('k', cfg());
    expect(hit).not.toBeInstanceOf(Promise);
    expect(hit).toEqual({ result: 'hit', entry: ENTRY });
    expect(cache.lookup('other', cfg())).toEqual({ result: 'miss', reason: 'not_found' });
    expect(await counts()).toEqual({ lookups: { 'exact:hit:found': 1, 'exact:miss:not_found': 1 }, writes: { stored: 1 }, evictions: {} });
  });

  it('a store slower than the deadline is a miss (deadline); the request does not wait for it', async () => {
    const store = new ScriptedStore();
    store.mode = 'hang';
    const { cache, counts } = service(store);
    expect(await cache.lookup('k', cfg(undefined, 30))).toEqual({ result: 'miss', reason: 'deadline' });
    expect((await counts()).lookups).toEqual({ 'exact:miss:deadline': 1 });
  });

  it('a store that answers every lookup after the deadline opens the breaker; late answers and writes do not close it', async () => {
    // Before: a Redis answering in 40 ms against the 30 ms deadline cost every request 30 ms for a miss, and each
    // late answer, and each request's write, counted as a success, so the breaker never opened.
    let t = 0;
    const store = new ScriptedStore();
    store.mode = 'slow';
    store.slowMs = 40;
    const { cache, counts, degraded, logs } = service(store, () => t);
    // Each request as it goes: its lookup late, then its answer stored (which succeeds, 40 ms later).
    for (const k of ['a', 'b']) {
      expect(await cache.lookup(k, cfg(undefined, 30))).toEqual({ result: 'miss', reason: 'deadline' });
      cache.save('acme', k, ENTRY, 60_000, cfg(undefined, 30));
    }
    expect(await degraded()).toBe(1);
    // The late answers and the first write have come (the second came after the breaker had opened, so it was
    // not sent): still open, no request waits on the store, none writes to it.
    await new Promise((r) => setTimeout(r, 60));
    expect(store.entries.size).toBe(1);
    expect(await degraded()).toBe(1);
    expect(cache.lookup('c', cfg(undefined, 30))).toEqual({ result: 'bypass', reason: 'store_down' });
    cache.save('acme', 'c', ENTRY, 60_000, cfg(undefined, 30));
    expect([store.gets, store.sets]).toEqual([2, 1]);
    // The trial after the cooldown is late too: open again at once, for another cooldown. A write asked for first
    // is not sent and leaves the trial to the lookup (a write's success could not close the breaker, so a trial it
    // took would leave the breaker open for good).
    t = 1000;
    cache.save('acme', 'x', ENTRY, 60_000, cfg(undefined, 30));
    expect(await cache.lookup('d', cfg(undefined, 30))).toEqual({ result: 'miss', reason: 'deadline' });
    expect(cache.lookup('e', cfg(undefined, 30))).toEqual({ result: 'bypass', reason: 'store_down' });
    // A store back at speed closes it on the next trial.
    t = 2000;
    store.slowMs = 1;
    expect(await cache.lookup('f', cfg(undefined, 30))).toEqual({ result: 'miss', reason: 'not_found' });
    expect(await degraded()).toBe(0);
    expect(await counts()).toMatchObject({ lookups: { 'exact:miss:deadline': 3, 'exact:bypass:store_down': 2, 'exact:miss:not_found': 1 }, writes: { stored: 1, failed: 3 } });
    const warnings = logs.filter((l) => l.includes('cache.store_failed'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('no answer within its 30 ms deadline');
  });

  it.each(['throw', 'reject'] as const)('a store that fails (%s) opens the breaker: bypasses without a call until the cooldown, then one trial', async (mode) => {
    let t = 0;
    const store = new ScriptedStore();
    store.mode = mode;
    const { cache, counts, degraded, logs } = service(store, () => t);
    expect(await cache.lookup('a', cfg())).toEqual({ result: 'bypass', reason: 'store_error' });
    expect(await degraded()).toBe(0);
    expect(await cache.lookup('b', cfg())).toEqual({ result: 'bypass', reason: 'store_error' });
    expect(await degraded()).toBe(1);
    // Open: neither lookups nor writes reach the store.
    expect(await cache.lookup('c', cfg())).toEqual({ result: 'bypass', reason: 'store_down' });
    cache.save('acme', 'c', ENTRY, 60_000, cfg());
    expect([store.gets, store.sets]).toEqual([2, 0]);
    // After the cooldown one trial goes through; a healthy store closes the breaker.
    t = 1000;
    store.mode = 'ok';
    expect(await cache.lookup('d', cfg())).toEqual({ result: 'miss', reason: 'not_found' });
    expect(await degraded()).toBe(0);
    cache.save('acme', 'd', ENTRY, 60_000, cfg());
    await settled();
    expect([store.gets, store.sets]).toEqual([3, 1]);
    expect(await counts()).toEqual({
      lookups: { 'exact:bypass:store_error': 2, 'exact:bypass:store_down': 1, 'exact:miss:not_found': 1 },
      writes: { failed: 1, stored: 1 },
      evictions: {},
    });
    // One warning for the outage, naming the operation, never a line per request.
    const warnings = logs.filter((l) => l.includes('cache.store_failed'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('"op":"get"');
  });

  it('a write that fails is counted failed and toward the breaker, and never throws to the caller', async () => {
    const store = new ScriptedStore();
    const { cache, counts, degraded, logs } = service(store);
    for (const mode of ['throw', 'reject'] as const) {
      store.mode = mode;
      expect(() => cache.save('acme', 'k', ENTRY, 60_000, cfg())).not.toThrow();
      await settled();
    }
    expect((await counts()).writes).toEqual({ failed: 2 });
    expect(await degraded()).toBe(1);
    expect(logs.filter((l) => l.includes('cache.store_failed'))[0]).toContain('"op":"set"');
  });

  it('close() closes its store, once (a shutdown releases the store\'s Redis connection)', async () => {
    const store = new ScriptedStore();
    const { cache } = service(store);
    await cache.close();
    expect(store.closed).toBe(1);
  });
});
