// One contract for both cache stores (memory, Redis, Redis Cluster): round trip, absent keys, overwrite, TTL,
// and keys of two tenants never meeting.
import { describe, expect, it } from 'vitest';
import type { CacheEntry, CacheStore } from '../../src/stores/cache-store.js';
import { answerBytes } from '../../src/cache/answer.js';
import { MemoryCacheStore } from '../../src/stores/memory/cache-store.js';
import { RedisCacheStore } from '../../src/stores/redis/cache-store.js';
import { redisAndClusterForFile } from '../helpers/redis-server.js';

const servers = redisAndClusterForFile();

async function ready(s: CacheStore): Promise<CacheStore> {
  servers.beforeDown(() => s.close());
  if (s instanceof RedisCacheStore) await expect.poll(() => s.redis.status, { timeout: 5000 }).toBe('ready');
  return s;
}

const redisStore = (kind: 'redis' | 'redis cluster', maxPerTenant: number) =>
  new RedisCacheStore({ url: kind === 'redis' ? servers.redis.url : servers.cluster.url, cluster: kind === 'redis cluster', connectTimeoutMs: 1000, commandTimeoutMs: 1000 }, maxPerTenant);

const makers: Record<string, () => Promise<CacheStore>> = {
  memory: () => ready(new MemoryCacheStore(1000, 64 * 1024 * 1024)),
  redis: () => ready(redisStore('redis', 1000)),
  'redis cluster': () => ready(redisStore('redis cluster', 1000)),
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
    await s.set(k, entry('Paris.'), 60_000, 'acme');
    expect(await s.get(k)).toEqual(entry('Paris.'));
    expect(await s.get(key('acme'))).toBeUndefined();
  });

  it('a second store under the same key replaces the first', async () => {
    const s = await make();
    const k = key('acme');
    await s.set(k, entry('old'), 60_000, 'acme');
    await s.set(k, entry('new'), 60_000, 'acme');
    expect((await s.get(k))?.answer.choices[0]?.content).toBe('new');
  });

  it('an entry is gone after its TTL', async () => {
    const s = await make();
    const k = key('acme');
    // 400 ms: long enough that a stalled runner still reads it back before it expires.
    await s.set(k, entry('short-lived'), 400, 'acme');
    expect(await s.get(k)).toBeDefined();
    await new Promise((r) => setTimeout(r, 600));
    expect(await s.get(k)).toBeUndefined();
  });

  it('the same hash under two tenants is two entries', async () => {
    const s = await make();
    await s.set('test:cache:{t:acme}:x:same', entry('acme'), 60_000, 'acme');
    await s.set('test:cache:{t:globex}:x:same', entry('globex'), 60_000, 'globex');
    expect((await s.get('test:cache:{t:acme}:x:same'))?.answer.choices[0]?.content).toBe('acme');
    expect((await s.get('test:cache:{t:globex}:x:same'))?.answer.choices[0]?.content).toBe('globex');
  });
});

describe.each(['redis', 'redis cluster'] as const)('%s cache store: cache.redis.maxEntriesPerTenant', (kind) => {
  const tenant = () => `cap${n++}`;
  const capped = (max: number) => ready(redisStore(kind, max)) as Promise<RedisCacheStore>;
  const present = async (s: CacheStore, keys: string[]) => Promise.all(keys.map(async (k) => (await s.get(k)) !== undefined));

  it("past the cap, the tenant's entries that expire soonest make room; another tenant's are untouched", async () => {
    const s = await capped(3);
    const [acme, globex] = [tenant(), tenant()];
    const a = [0, 1, 2, 3].map(() => key(acme));
    const g = [0, 1, 2].map(() => key(globex));
    for (const k of [...a.slice(0, 3), ...g]) expect(await s.set(k, entry(k), 60_000, k.includes(acme) ? acme : globex)).toBe(0);
    expect(await s.set(a[3] as string, entry('fourth'), 60_000, acme)).toBe(1); // what made room, for the metric
    expect(await present(s, a)).toEqual([false, true, true, true]); // the first stored expires first
    expect(await present(s, g)).toEqual([true, true, true]);
    // A shorter TTL expires sooner, so it makes room before older entries with longer ones.
    const short = key(acme);
    await s.set(short, entry('short'), 10_000, acme);
    await s.set(key(acme), entry('next'), 60_000, acme);
    expect(await s.get(short)).toBeUndefined();
    expect(await present(s, a.slice(2))).toEqual([true, true]);
  });

  it('entries stored in a burst make room in the order they were stored, whatever their names', async () => {
    // Scored in whole milliseconds, a burst tied and the cap went by key name: in a scratch run of 1,000 bursts of
    // four keys named against their order, the first stored outlived another 981 times. Now scored to the microsecond.
    const s = await capped(3);
    const t = tenant();
    const keys = ['z', 'y', 'x', 'w'].map((name) => `test:cache:{t:${t}}:x:${name}`);
    for (const k of keys) await s.set(k, entry(k), 60_000, t);
    expect(await present(s, keys)).toEqual([false, true, true, true]);
  });

  it('a stored-again key counts once, and expired entries do not count', async () => {
    const s = await capped(2);
    const t = tenant();
    const k = key(t);
    for (let i = 0; i < 3; i++) await s.set(k, entry(`v${i}`), 60_000, t);
    const other = key(t);
    await s.set(other, entry('other'), 60_000, t);
    expect(await present(s, [k, other])).toEqual([true, true]);
    const later = tenant();
    for (const brief of [key(later), key(later)]) await s.set(brief, entry('brief'), 300, later);
    await new Promise((r) => setTimeout(r, 500));
    const fresh = [key(later), key(later)];
    for (const f of fresh) await s.set(f, entry('fresh'), 60_000, later);
    expect(await present(s, fresh)).toEqual([true, true]);
  });

  it('a damaged entry reads as a miss, and the next store replaces it', async () => {
    const s = await capped(3);
    const t = tenant();
    const k = key(t);
    await s.redis.set(k, '{"storedAt":1,"answer":', 'PX', 60_000);
    expect(await s.get(k)).toBeUndefined();
    await s.set(k, entry('again'), 60_000, t);
    expect(await s.get(k)).toEqual(entry('again'));
  });

  it("a key that does not hold its tenant's hash tag is refused and nothing is stored", async () => {
    const s = await capped(3);
    const k = key('acme');
    // The owner must be the tag's tenant: any other would put the entry and its index in different slots.
    await expect(s.set(k, entry('x'), 60_000, 'globex')).rejects.toThrow('cache store: the key does not name its tenant');
    await expect(s.set('test:cache:untagged', entry('x'), 60_000, 'acme')).rejects.toThrow('cache store: the key does not name its tenant');
    expect(await s.get(k)).toBeUndefined();
  });

  it('holds across replicas storing at once: exactly the cap remains', async () => {
    const [one, two] = [await capped(10), await capped(10)];
    const t = tenant();
    const keys = Array.from({ length: 60 }, () => key(t));
    await Promise.all(keys.map((k, i) => (i % 2 ? one : two).set(k, entry(k), 60_000, t)));
    expect((await present(one, keys)).filter(Boolean)).toHaveLength(10);
  });
});

it('a Redis cache store not connected fails each call at once, naming itself', async () => {
  const s = new RedisCacheStore({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 200, commandTimeoutMs: 200 }, 10);
  try {
    await expect(s.get(key('acme'))).rejects.toThrow(/^cache store not connected \((connecting|reconnecting|connect)(; last error: connect ECONNREFUSED 127\.0\.0\.1:1)?\)$/);
    await expect(s.set(key('acme'), entry('x'), 1000, 'acme')).rejects.toThrow(/^cache store not connected /);
  } finally {
    await s.close();
  }
});

describe('memory cache store', () => {
  it('keeps at most maxEntries, dropping the least recently used', () => {
    const s = new MemoryCacheStore(2, 64 * 1024 * 1024);
    s.set('a', entry('a'), 60_000, 'acme');
    s.set('b', entry('b'), 60_000, 'acme');
    s.get('a'); // a is now more recent than b
    expect(s.set('c', entry('c'), 60_000, 'acme')).toBe(1); // what made room, for the metric
    expect([s.get('a') !== undefined, s.get('b') !== undefined, s.get('c') !== undefined]).toEqual([true, false, true]);
    expect(s.size).toBe(2);
  });

  // Long answers must not outgrow the heap because the count allows it (cache.maxBytes).
  const weight = (k: string, content: string) => 2 * k.length + answerBytes(entry(content).answer);
  const present = (s: MemoryCacheStore, keys: string[]) => keys.filter((k) => s.get(k) !== undefined);

  it('keeps its answers within maxBytes, dropping the least recently used', () => {
    const long = 'x'.repeat(10_000);
    const one = weight('a', long);
    const s = new MemoryCacheStore(1000, 3 * one);
    for (const k of ['a', 'b', 'c']) s.set(k, entry(long), 60_000, 'acme');
    expect(s.totalWeight).toBe(3 * one);
    s.get('a'); // a is now more recent than b
    s.set('d', entry(long), 60_000, 'acme');
    expect(present(s, ['a', 'b', 'c', 'd'])).toEqual(['a', 'c', 'd']);
    expect(s.totalWeight).toBe(3 * one);
    // A long answer may push out several short ones.
    s.set('e', entry('x'.repeat(25_000)), 60_000, 'acme');
    expect(s.totalWeight).toBeLessThanOrEqual(3 * one);
    expect(present(s, ['a', 'c', 'd', 'e'])).toEqual(['e']);
  });

  it('counts an overwritten or expired entry once, and does not keep one heavier than the whole bound', () => {
    let now = 0;
    const s = new MemoryCacheStore(1000, 100_000, () => now);
    s.set('a', entry('short'), 1000, 'acme');
    s.set('a', entry('x'.repeat(1000)), 1000, 'acme');
    expect(s.totalWeight).toBe(weight('a', 'x'.repeat(1000)));
    now = 2000;
    expect(s.get('a')).toBeUndefined();
    expect(s.totalWeight).toBe(0);
    s.set('b', entry('fits'), 60_000, 'acme');
    s.set('huge', entry('x'.repeat(60_000)), 60_000, 'acme');
    expect(present(s, ['b', 'huge'])).toEqual(['b']);
    expect(s.totalWeight).toBe(weight('b', 'fits'));
  });

  it('estimates an answer at two bytes per character of its text, whatever the script', () => {
    const ascii = answerBytes(entry('a'.repeat(1000)).answer);
    const korean = answerBytes(entry('가'.repeat(1000)).answer);
    expect(korean).toBe(ascii);
    expect(ascii - answerBytes(entry('').answer)).toBe(2000);
    const withCall = entry('');
    withCall.answer.choices[0]?.toolCalls.push({ id: 'call_1', type: 'function', function: { name: 'get', arguments: 'y'.repeat(500) } });
    expect(answerBytes(withCall.answer)).toBeGreaterThan(answerBytes(entry('').answer) + 1000);
  });
});
