// One contract for both response affinity stores (memory, Redis, Redis Cluster): round trip, absent keys,
// overwrite, TTL, and keys of two tenants never meeting.
import { describe, expect, it } from 'vitest';
import type { AffinityStore } from '../../src/stores/affinity-store.js';
import { MemoryAffinityStore } from '../../src/stores/memory/affinity-store.js';
import { RedisAffinityStore } from '../../src/stores/redis/affinity-store.js';
import { redisAndClusterForFile } from '../helpers/redis-server.js';

const servers = redisAndClusterForFile();

async function ready(s: AffinityStore): Promise<AffinityStore> {
  servers.beforeDown(() => s.close());
  if (s instanceof RedisAffinityStore) await expect.poll(() => s.redis.status, { timeout: 5000 }).toBe('ready');
  return s;
}

const makers: Record<string, () => Promise<AffinityStore>> = {
  memory: () => ready(new MemoryAffinityStore(1000)),
  redis: () => ready(new RedisAffinityStore({ url: servers.redis.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000 })),
  'redis cluster': () => ready(new RedisAffinityStore({ url: servers.cluster.url, cluster: true, connectTimeoutMs: 1000, commandTimeoutMs: 1000 })),
};

let n = 0;
const key = (tenant: string) => `test:affinity:{t:${tenant}}:resp_${n++}`;

describe.each(Object.keys(makers))('%s affinity store', (name) => {
  const make = makers[name] as () => Promise<AffinityStore>;

  it('returns the tier stored, and nothing for a response never stored', async () => {
    const s = await make();
    const k = key('acme');
    await s.set(k, 'strong', 60_000, 'acme');
    expect(await s.get(k)).toBe('strong');
    expect(await s.get(key('acme'))).toBeUndefined();
  });

  it('a second store under the same key replaces the first', async () => {
    const s = await make();
    const k = key('acme');
    await s.set(k, 'weak', 60_000, 'acme');
    await s.set(k, 'strong', 60_000, 'acme');
    expect(await s.get(k)).toBe('strong');
  });

  it('an entry is gone after its TTL', async () => {
    const s = await make();
    const k = key('acme');
    await s.set(k, 'strong', 400, 'acme');
    expect(await s.get(k)).toBe('strong');
    await new Promise((r) => setTimeout(r, 600));
    expect(await s.get(k)).toBeUndefined();
  });

  it('the same response id under two tenants is two entries', async () => {
    const s = await make();
    await s.set('test:affinity:{t:acme}:resp_same', 'strong', 60_000, 'acme');
    await s.set('test:affinity:{t:globex}:resp_same', 'weak', 60_000, 'globex');
    expect(await s.get('test:affinity:{t:acme}:resp_same')).toBe('strong');
    expect(await s.get('test:affinity:{t:globex}:resp_same')).toBe('weak');
  });
});

describe('memory affinity store', () => {
  it('keeps at most maxEntries, dropping the least recently used', () => {
    const s = new MemoryAffinityStore(2);
    s.set('a', 'weak', 60_000, 'acme');
    s.set('b', 'weak', 60_000, 'acme');
    s.get('a');
    s.set('c', 'strong', 60_000, 'acme');
    expect([s.get('a'), s.get('b'), s.get('c')]).toEqual(['weak', undefined, 'strong']);
  });
});
