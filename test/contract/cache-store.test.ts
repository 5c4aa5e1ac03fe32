// One contract for both cache stores (memory, Redis, Redis Cluster): round trip, absent keys, overwrite, TTL,
// and keys of two tenants never meeting.
import { describe, expect, it } from 'vitest';
import type { CacheEntry, CacheStore } from '../../src/stores/cache-store.js';
import { MemoryCacheStore } from '../../src/stores/memory/cache-store.js';
import { RedisCacheStore } from '../../src/stores/redis/cache-store.js';
import { redisAndClusterForFile } from '../helpers/redis-server.js';

const servers = redisAndClusterForFile();

async function ready(s: CacheStore): Promise<CacheStore> {
  servers.beforeDown(() => s.close());
  if (s instanceof RedisCacheStore) await expect.poll(() => s.redis.status, { timeout: 5000 }).toBe('ready');
  return s;
}

const makers: Record<string, () => Promise<CacheStore>> = {
  memory: () => ready(new MemoryCacheStore(1000)),
  redis: () => ready(new RedisCacheStore({ url: servers.redis.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000 })),
  'redis cluster': () => ready(new RedisCacheStore({ url: servers.cluster.url, cluster: true, connectTimeoutMs: 1000, commandTimeoutMs: 1000 })),
};

const entry = (content: string): CacheEntry => ({
  storedAt: 1,
  answer: { model: 'm', systemFingerprint: null, usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }, choices: [{ index: 0, content, refusal: null, toolCalls: [], finishReason: 'stop' }] },
});
let n = 0;
const key = (tenant: string) => `test:cache:{t:${tenant}}:x:${n++}`;

describe.each(Object.keys(makers))('%s cache store', (name) => {
  const make = makers[name] as () => Promise<CacheStore>;

  it('returns what was stored, and nothing for a key never stored', async () => {
    const s = await make();
    const k = key('acme');
    await s.set(k, entry('Paris.'), 60_000);
    expect(await s.get(k)).toEqual(entry('Paris.'));
    expect(await s.get(key('acme'))).toBeUndefined();
  });

  it('a second store under the same key replaces the first', async () => {
    const s = await make();
    const k = key('acme');
    await s.set(k, entry('old'), 60_000);
    await s.set(k, entry('new'), 60_000);
    expect((await s.get(k))?.answer.choices[0]?.content).toBe('new');
  });

  it('an entry is gone after its TTL', async () => {
    const s = await make();
    const k = key('acme');
    // 400 ms: long enough that a stalled runner still reads it back before it expires.
    await s.set(k, entry('short-lived'), 400);
    expect(await s.get(k)).toBeDefined();
    await new Promise((r) => setTimeout(r, 600));
    expect(await s.get(k)).toBeUndefined();
  });

  it('the same hash under two tenants is two entries', async () => {
    const s = await make();
    await s.set('test:cache:{t:acme}:x:same', entry('acme'), 60_000);
    await s.set('test:cache:{t:globex}:x:same', entry('globex'), 60_000);
    expect((await s.get('test:cache:{t:acme}:x:same'))?.answer.choices[0]?.content).toBe('acme');
    expect((await s.get('test:cache:{t:globex}:x:same'))?.answer.choices[0]?.content).toBe('globex');
  });
});

describe('memory cache store', () => {
  it('keeps at most maxEntries, dropping the least recently used', () => {
    const s = new MemoryCacheStore(2);
    s.set('a', entry('a'), 60_000);
    s.set('b', entry('b'), 60_000);
    s.get('a'); // a is now more recent than b
    s.set('c', entry('c'), 60_000);
    expect([s.get('a') !== undefined, s.get('b') !== undefined, s.get('c') !== undefined]).toEqual([true, false, true]);
    expect(s.size).toBe(2);
  });
});
