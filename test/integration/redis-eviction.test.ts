// A Redis that may evict what a store must keep is said out loud (src/stores/redis/eviction-check.ts): budget
// windows and remembered tiers have TTLs, so any eviction policy under maxmemory can drop them; the ledger stream
// has none, so only an allkeys-* policy can. Redis itself evicts silently. Checked on a private redis-server
// whose policy the test changes, and on a Redis Cluster where one master differs.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis } from '../../src/stores/redis/connect.js';
import { evictionRisks, riskFromInfo, watchEviction, type EvictionRisk } from '../../src/stores/redis/eviction-check.js';
import { redisAndClusterForFile, type RedisServer } from '../helpers/redis-server.js';
import { chatRequestHeaders } from '../../src/dev/envoy-client.js';
import { jsonBody, metricValue, startTiergate } from '../helpers/tiergate.js';

const servers = redisAndClusterForFile();

describe('riskFromInfo', () => {
  const info = (maxmemory: number, policy: string) => `# Memory\r\nused_memory:1000\r\nmaxmemory:${maxmemory}\r\nmaxmemory_human:x\r\nmaxmemory_policy:${policy}\r\n`;
  it.each([
    [0, 'allkeys-lru', 'every key', undefined],
    [1e8, 'noeviction', 'every key', undefined],
    [1e8, 'volatile-lru', 'every key', 'volatile-lru'],
    [1e8, 'volatile-ttl', 'keys without a TTL', undefined],
    [1e8, 'allkeys-lfu', 'keys without a TTL', 'allkeys-lfu'],
    [1e8, 'allkeys-random', 'every key', 'allkeys-random'],
  ] as const)('maxmemory %d, %s, keeping %s: %s', (maxmemory, policy, keep, risk) => {
    expect(riskFromInfo(info(maxmemory, policy), keep)?.policy).toBe(risk);
  });
  it('an answer without the fields (a server that hides them) is no finding', () => {
    expect(riskFromInfo('# Memory\r\nused_memory:1\r\n', 'every key')).toBeUndefined();
  });
});

describe('a store whose Redis may evict its keys says so, at every connect', () => {
  const admin = () => new Redis(servers.redis.url);
  let a: Redis;
  beforeAll(() => {
    a = admin();
  });
  afterAll(async () => {
    await a.config('SET', 'maxmemory', '0');
    await a.config('SET', 'maxmemory-policy', 'noeviction');
    a.disconnect();
  });

  it('budgets and affinity warn under volatile-lru, the ledger stream only under allkeys-*; none under noeviction', async () => {
    await a.config('SET', 'maxmemory', '64mb');
    await a.config('SET', 'maxmemory-policy', 'volatile-lru');
    const url = servers.redis.url;
    const t = await startTiergate(
      {
        budgets: { store: 'redis', redis: { url, keyPrefix: 'evict:b:' } },
        routing: { affinity: { store: 'redis', redis: { url, keyPrefix: 'evict:a:' } } },
        ledger: { sinks: [{ type: 'redis', url, stream: 'evict:ledger' }] },
      },
      {},
      { ownSinks: true },
    );
    try {
      const risk = (store: string) => metricValue(t.app, 'tiergate_redis_eviction_risk', { store });
      const risks = () => Promise.all(['budgets', 'affinity', 'ledger:redis'].map(risk));
      await expect.poll(risks).toEqual([1, 1, 0]);
      const warned = t.logs.filter((l) => l.includes('"redis.eviction_risk"')).map((l) => JSON.parse(l) as { store: string; nodes: unknown[] });
      expect(warned.map((w) => w.store).sort()).toEqual(['affinity', 'budgets']);
      expect(warned[0]?.nodes).toEqual([{ node: `127.0.0.1:${servers.redis.port}`, maxmemory: 64 * 1024 * 1024, policy: 'volatile-lru' }]);

      // Each reconnect checks again: the server now may evict anything, then the operator fixes it.
      await a.config('SET', 'maxmemory-policy', 'allkeys-lru');
      await a.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      await expect.poll(risks, { timeout: 5000 }).toEqual([1, 1, 1]);
      expect(t.logs.some((l) => l.includes('"redis.eviction_risk"') && l.includes('"store":"ledger:redis"') && l.includes('allkeys-lru'))).toBe(true);
      await a.config('SET', 'maxmemory-policy', 'noeviction');
      await a.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      await expect.poll(risks, { timeout: 5000 }).toEqual([0, 0, 0]);
    } finally {
      await t.stop();
    }
  });
});

describe('the cache beside the budgets', () => {
  it('starting with the cache on the budgets\' Redis server (another database) warns once, whatever the policy', async () => {
    const base = servers.redis.url;
    const t = await startTiergate({
      cache: { store: 'redis', redis: { url: `${base}/2`, keyPrefix: 'evict:c:' } },
      budgets: { store: 'redis', redis: { url: base, keyPrefix: 'evict:shared:' } },
    });
    try {
      const shared = t.logs.filter((l) => l.includes('"config.redis_shared"')).map((l) => JSON.parse(l) as { level: string; path: string; message: string });
      expect(shared).toHaveLength(1);
      expect(shared[0]).toMatchObject({ level: 'warn', path: 'cache.redis' });
      expect(shared[0]?.message).toContain(`the same Redis server as budgets.redis (127.0.0.1:${servers.redis.port}`);
    } finally {
      await t.stop();
    }
  });
});

describe('watchEviction', () => {
  it('a connection already ready is checked at once, and again each time it becomes ready after a drop', async () => {
    const c = new Redis(servers.redis.url);
    try {
      await expect.poll(() => c.status).toBe('ready');
      const reports: Array<EvictionRisk[] | Error> = [];
      watchEviction(c, 'every key', (r) => reports.push(r));
      await expect.poll(() => reports.length).toBe(1);
      c.disconnect(true);
      await expect.poll(() => reports.length).toBe(2);
      expect(reports).toEqual([[], []]);
    } finally {
      c.disconnect();
    }
  });
});

describe('a server that will not say', () => {
  it('a user without INFO (managed services rename or deny it): the store works, the check says it could not look', async () => {
    const a = new Redis(servers.redis.url);
    await a.call('ACL', 'SETUSER', 'noinfo', 'on', '>secret-pw', '~*', '&*', '+@all', '-info');
    const url = `redis://noinfo:secret-pw@127.0.0.1:${servers.redis.port}`;
    const t = await startTiergate({ budgets: { store: 'redis', redis: { url, keyPrefix: 'evict:noinfo:' } }, tenants: { '*': { requestsPerMinute: 100 } } });
    try {
      await expect.poll(() => t.logs.find((l) => l.includes('"redis.eviction_unchecked"'))).toBeDefined();
      const line = t.logs.find((l) => l.includes('"redis.eviction_unchecked"')) as string;
      expect(JSON.parse(line)).toMatchObject({ level: 'info', store: 'budgets' });
      expect(JSON.parse(line).error).toMatch(/NOPERM/);
      expect(line).not.toContain('secret-pw');
      expect(t.logs.some((l) => l.includes('"redis.eviction_risk"'))).toBe(false);
      // The budget store itself needs no INFO: a request is admitted through it.
      const s = t.pool.open();
      await s.sendRequestHeaders(chatRequestHeaders(), false);
      expect((await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'Say hi' }] }))).kind).toBe('continue');
      s.close();
      expect(await metricValue(t.app, 'tiergate_budget_store_degraded')).toBe(0);
      expect(await a.keys('evict:noinfo:*')).not.toEqual([]);
    } finally {
      await t.stop();
      await a.call('ACL', 'DELUSER', 'noinfo');
      a.disconnect();
    }
  });
});

describe('on a Redis Cluster', () => {
  it('every master is read: one with an evicting policy is named, the others are not', async () => {
    const [first, second] = servers.cluster.nodes as readonly [RedisServer, RedisServer];
    const one = new Redis(second.url);
    await one.config('SET', 'maxmemory', '32mb');
    await one.config('SET', 'maxmemory-policy', 'allkeys-lru');
    const c = connectRedis({ url: first.url, cluster: true, connectTimeoutMs: 1000, commandTimeoutMs: 1000 });
    try {
      await new Promise((r) => c.once('ready', r));
      expect(await evictionRisks(c, 'keys without a TTL')).toEqual([{ node: `127.0.0.1:${second.port}`, maxmemory: 32 * 1024 * 1024, policy: 'allkeys-lru' }]);
    } finally {
      c.disconnect();
      await one.config('SET', 'maxmemory', '0');
      one.disconnect();
    }
  });
});
