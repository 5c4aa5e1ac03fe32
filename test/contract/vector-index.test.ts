// One contract for both vector indexes (memory, Redis, Redis Cluster): found in its partition only, scored
// exactly and best first, capacity-bounded per partition (oldest out), expiring with its TTL.
import { beforeAll, describe, expect, it } from 'vitest';
import { normalise } from '../../src/cache/embedders/embedder.js';
import { questionFeatures } from '../../src/cache/guards.js';
import { lshBuckets } from '../../src/cache/lsh.js';
import { MemoryVectorIndex } from '../../src/stores/memory/vector-index.js';
import { RedisVectorIndex } from '../../src/stores/redis/vector-index.js';
import { RedisSearchVectorIndex } from '../../src/stores/redis/search-vector-index.js';
import { AutoRedisVectorIndex } from '../../src/stores/redis/auto-vector-index.js';
import { RedisSearchStandIn } from '../helpers/redis-search-standin.js';
import { connectRedis } from '../../src/stores/redis/connect.js';
import { MAX_PER_BUCKET, type VectorIndex } from '../../src/stores/vector-index.js';
import { createServer, type AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { redisAndClusterForFile } from '../helpers/redis-server.js';

const servers = redisAndClusterForFile();
let standIn: RedisSearchStandIn;
beforeAll(async () => {
  standIn = await RedisSearchStandIn.start(servers.redis.url);
  servers.beforeDown(() => standIn.close());
}, 30_000);

async function ready(x: VectorIndex): Promise<VectorIndex> {
  servers.beforeDown(() => x.close());
  if (x instanceof RedisVectorIndex || x instanceof AutoRedisVectorIndex) await expect.poll(() => x.redis.status, { timeout: 5000 }).toBe('ready');
  return x;
}
/** Each index on a clock the caller gives (Date.now, or one a test holds), under a key prefix of its own. */
const clocked: Record<string, (now: () => number) => Promise<VectorIndex>> = {
  memory: (now) => ready(new MemoryVectorIndex(now)),
  redis: (now) => ready(new RedisVectorIndex(connectRedis({ url: servers.redis.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000 }), `vt${Date.now()}${ids++}:`, now)),
  'redis cluster': (now) => ready(new RedisVectorIndex(connectRedis({ url: servers.cluster.url, cluster: true, connectTimeoutMs: 1000, commandTimeoutMs: 1000 }), `vt${Date.now()}${ids++}:`, now)),
  // Chosen by what the server can do: FT.SEARCH behind the stand-in (see test/helpers/redis-search-standin.ts).
  'redis vector search (stand-in)': (now) => ready(new AutoRedisVectorIndex({ url: standIn.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000, keyPrefix: `vs${Date.now()}${ids++}:` }, now)),
};
const makers: Record<string, () => Promise<VectorIndex>> = Object.fromEntries(Object.entries(clocked).map(([name, make]) => [name, () => make(Date.now)]));

/** A unit vector near `base`: base plus a little of direction `k`. */
function near(base: number, k: number, amount: number, dims = 64): Float32Array {
  const v = new Float32Array(dims);
  v[base] = 1;
  v[k] = amount;
  return normalise(v);
}
const features = questionFeatures('q');
let ids = 0;
const entry = (vector: Float32Array, storeKey: string) => ({ id: `e${ids++}`, vector, features, storeKey });

describe.each(Object.keys(makers))('%s vector index', (name) => {
  const make = makers[name] as () => Promise<VectorIndex>;

  it('finds entries in the same bucket and partition, scored exactly and best first, above minScore only', async () => {
    const x = await make();
    const q = near(0, 1, 0);
    await x.add('acme', 'p1', ['w:x'], entry(near(0, 1, 0.1), 'close'), 60_000, 100);
    await x.add('acme', 'p1', ['w:x'], entry(near(0, 1, 0.3), 'further'), 60_000, 100);
    await x.add('acme', 'p1', ['w:x'], entry(near(2, 1, 0), 'unrelated'), 60_000, 100);
    const found = await x.search('acme', 'p1', ['w:x'], q, 0.9, 5);
    expect(found.map((m) => m.storeKey)).toEqual(['close', 'further']);
    expect(found[0]?.score).toBeCloseTo(1 / Math.sqrt(1.01), 5);
    expect(found[0]?.features).toEqual(features);
    expect(await x.search('acme', 'p1', ['w:x'], q, 0.99, 5)).toHaveLength(1);
    expect(await x.search('acme', 'p1', ['w:x'], q, 0.9, 1)).toHaveLength(1);
  });

  it('never crosses a tenant, a partition or a bucket', async () => {
    const x = await make();
    const v = near(3, 4, 0);
    await x.add('acme', 'p2', ['w:y'], entry(v, 'acme-entry'), 60_000, 100);
    expect(await x.search('globex', 'p2', ['w:y'], v, 0.5, 5)).toEqual([]);
    expect(await x.search('acme', 'p3', ['w:y'], v, 0.5, 5)).toEqual([]);
    expect(await x.search('acme', 'p2', ['w:z'], v, 0.5, 5)).toEqual([]);
    expect((await x.search('acme', 'p2', ['w:y'], v, 0.5, 5)).map((m) => m.storeKey)).toEqual(['acme-entry']);
  });

  it('never compares vectors of different lengths: an embeddings endpoint redeployed with another model under the same name', async () => {
    // The first dimensions of a 96-dimension vector equal to the 64-dimension query would score 1 if compared.
    const x = await make();
    const q = near(0, 1, 0);
    const longer = new Float32Array(96);
    longer.set(q);
    await x.add('acme', 'p9', ['w:d'], entry(normalise(longer), 'other-model'), 60_000, 100);
    expect(await x.search('acme', 'p9', ['w:d'], q, 0.5, 5)).toEqual([]);
    await x.add('acme', 'p9', ['w:d'], entry(near(0, 1, 0.1), 'same-model'), 60_000, 100);
    expect((await x.search('acme', 'p9', ['w:d'], q, 0.5, 5)).map((m) => m.storeKey)).toEqual(['same-model']);
  });

  it('keeps at most maxEntries per partition, evicting the oldest, and says how many it evicted', async () => {
    const x = await make();
    const evicted: number[] = [];
    for (let i = 0; i < 5; i++) {
      evicted.push(await x.add('acme', 'p4', ['w:cap'], entry(near(5, 6, i / 100), `k${i}`), 60_000, 3));
      await new Promise((r) => setTimeout(r, 2)); // distinct insertion times
    }
    const left = (await x.search('acme', 'p4', ['w:cap'], near(5, 6, 0), 0.5, 10)).map((m) => m.storeKey).sort();
    expect(left).toEqual(['k2', 'k3', 'k4']);
    expect(evicted).toEqual([0, 0, 0, 1, 1]);
  });

  it('entries expire with their TTL', async () => {
    const x = await make();
    const v = near(7, 8, 0);
    // 400 ms: long enough that a stalled runner still finds it before it expires.
    await x.add('acme', 'p5', ['w:ttl'], entry(v, 'short'), 400, 100);
    expect(await x.search('acme', 'p5', ['w:ttl'], v, 0.5, 5)).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 600));
    expect(await x.search('acme', 'p5', ['w:ttl'], v, 0.5, 5)).toEqual([]);
  });

  it('a candidate scoring exactly minScore is found: the threshold is "at least"', async () => {
    const x = await make();
    const q = near(15, 16, 0);
    await x.add('acme', 'p10', ['w:eq'], entry(near(15, 16, 0.25), 'edge'), 60_000, 100);
    const [first] = await x.search('acme', 'p10', ['w:eq'], q, 0, 5);
    expect(first?.storeKey).toBe('edge');
    expect((await x.search('acme', 'p10', ['w:eq'], q, first?.score as number, 5)).map((m) => m.storeKey)).toEqual(['edge']);
  });

  it('with LSH buckets, a close vector is found and a far one is not even a candidate', async () => {
    const x = await make();
    // Vector search has no buckets: an exact KNN returns the far vector too, below any useful threshold.
    if (x instanceof AutoRedisVectorIndex) return;
    const v = near(9, 10, 0, 512);
    const close = near(9, 10, 0.2, 512); // cosine 0.98
    await x.add('acme', 'p6', lshBuckets(close), entry(close, 'lsh-close'), 60_000, 100);
    const far = near(11, 12, 0, 512);
    await x.add('acme', 'p6', lshBuckets(far), entry(far, 'lsh-far'), 60_000, 100);
    expect((await x.search('acme', 'p6', lshBuckets(v), v, 0, 10)).map((m) => m.storeKey)).toEqual(['lsh-close']);
  });
});

describe.each(['redis', 'redis cluster', 'redis vector search (stand-in)'] as const)('%s vector index: cache.redis.maxEntriesPerTenant', (kind) => {
  const capped = (max: number): Promise<VectorIndex> => {
    const prefix = `vcap${Date.now()}${ids++}:`;
    if (kind === 'redis vector search (stand-in)') return ready(new AutoRedisVectorIndex({ url: standIn.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000, keyPrefix: prefix, maxEntriesPerTenant: max }));
    const url = kind === 'redis' ? servers.redis.url : servers.cluster.url;
    return ready(new RedisVectorIndex(connectRedis({ url, cluster: kind === 'redis cluster', connectTimeoutMs: 1000, commandTimeoutMs: 1000 }), prefix, Date.now, max));
  };
  const found = async (x: VectorIndex, tenant: string, partition: string, v: Float32Array) => (await x.search(tenant, partition, ['w:t'], v, 0.5, 10)).map((m) => m.storeKey).sort();

  it("bounds a tenant's entries across all its partitions (a partition per conversation), soonest to expire out; another tenant's stay", async () => {
    const x = await capped(3);
    const v = near(9, 10, 0);
    await x.add('globex', 'g', ['w:t'], entry(v, 'g0'), 60_000, 100);
    // One entry per partition, as a tenant whose every turn is a new conversation prefix makes them.
    const evicted: number[] = [];
    for (let i = 0; i < 5; i++) {
      evicted.push(await x.add('acme', `p${i}`, ['w:t'], entry(v, `a${i}`), 60_000, 100));
      await new Promise((r) => setTimeout(r, 2)); // distinct expiry times
    }
    const left = await Promise.all([0, 1, 2, 3, 4].map((i) => found(x, 'acme', `p${i}`, v)));
    expect(left).toEqual([[], [], ['a2'], ['a3'], ['a4']]);
    expect(evicted).toEqual([0, 0, 0, 1, 1]);
    expect(await found(x, 'globex', 'g', v)).toEqual(['g0']);
    // A partition's own bound still applies, and what it evicts no longer counts toward the tenant's.
    expect(await x.add('acme', 'p4', ['w:t'], entry(v, 'a5'), 60_000, 1)).toBe(1);
    expect(await found(x, 'acme', 'p4', v)).toEqual(['a5']);
    expect(await found(x, 'acme', 'p2', v)).toEqual(['a2']);
  });
});

describe.each(['memory', 'redis', 'redis cluster'])('%s vector index: crowded buckets', (name) => {
  it('a bucket gives at most MAX_PER_BUCKET candidates, and an evicted entry leaves every bucket it was in', async () => {
    const x = await (makers[name] as () => Promise<VectorIndex>)();
    const v = near(17, 18, 0);
    const n = MAX_PER_BUCKET + 6;
    for (let i = 0; i < n; i++) await x.add('acme', 'crowd', ['w:a', 'w:b'], entry(near(17, 18, i / 1000), `c${i}`), 60_000, 1000);
    // The same entries in both buckets: one set of candidates, not two.
    expect(await x.search('acme', 'crowd', ['w:a', 'w:b'], v, -1, 1000)).toHaveLength(MAX_PER_BUCKET);
    // Capped at two, the partition evicts all but the last two. Were the evicted ids left in the second bucket,
    // they would be its first MAX_PER_BUCKET candidates and the live two would never be reached.
    for (let i = 0; i < n; i++) await x.add('acme', 'churn', ['w:a', 'w:b'], entry(v, `n${i}`), 60_000, 2);
    expect((await x.search('acme', 'churn', ['w:b'], v, -1, 10)).map((m) => m.storeKey).sort()).toEqual([`n${n - 2}`, `n${n - 1}`]);
  });
});

// On a clock the test holds (clocked, above): insertion order and expiry, to the millisecond.
const T = 1_800_000_000_000;

describe.each(Object.keys(clocked))('%s vector index on a clock that stands still', (name) => {
  const make = clocked[name] as (now: () => number) => Promise<VectorIndex>;

  it('entries added in the same millisecond still leave oldest first under the partition cap, whatever their ids', async () => {
    const x = await make(() => T);
    const v = near(21, 22, 0);
    // Ids in reverse order of their adding: a tie broken by the id would evict the newest.
    const evicted: number[] = [];
    for (const id of ['z-oldest', 'm-middle', 'a-newest']) evicted.push(await x.add('acme', 'same-ms', ['w:s'], { id, vector: v, features, storeKey: id }, 60_000, 2));
    expect((await x.search('acme', 'same-ms', ['w:s'], v, 0.5, 5)).map((m) => m.storeKey).sort()).toEqual(['a-newest', 'm-middle']);
    expect(evicted).toEqual([0, 0, 1]);
  });

});

// Vector search leaves expiry to Redis' own key expiry (real time); these indexes judge it by the clock.
describe.each(['memory', 'redis', 'redis cluster'])('%s vector index on a clock the test moves', (name) => {
  it('an entry is live until the millisecond its TTL ends, and gone at it', async () => {
    const make = clocked[name] as (now: () => number) => Promise<VectorIndex>;
    let now = T;
    const x = await make(() => now);
    const v = near(23, 24, 0);
    await x.add('acme', 'ttl-edge', ['w:e'], entry(v, 'edge'), 60_000, 10);
    now = T + 59_999;
    expect(await x.search('acme', 'ttl-edge', ['w:e'], v, 0.5, 5)).toHaveLength(1);
    now = T + 60_000;
    expect(await x.search('acme', 'ttl-edge', ['w:e'], v, 0.5, 5)).toEqual([]);
  });
});

describe.each(['redis', 'redis vector search', 'redis chosen on first use'])('%s vector index before it is connected', (kind) => {
  it('a lookup or an add fails at once, saying so, instead of waiting for a connection', async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const opts = { url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 200, commandTimeoutMs: 200 };
    const auto = kind === 'redis chosen on first use' ? new AutoRedisVectorIndex({ ...opts, keyPrefix: 'dead:' }) : undefined;
    const client = auto?.redis ?? connectRedis(opts);
    client.on('error', () => undefined);
    const x = auto ?? (kind === 'redis' ? new RedisVectorIndex(client, 'dead:') : new RedisSearchVectorIndex(client as never, 'dead:'));
    try {
      const v = near(0, 1, 0);
      await expect(x.search('acme', 'p', ['w:x'], v, 0.5, 5)).rejects.toThrow(/^vector index not connected \((connecting|reconnecting|connect|wait)(; last error: connect ECONNREFUSED 127\.0\.0\.1:\d+)?\)$/);
      await expect(x.add('acme', 'p', ['w:x'], entry(v, 'k'), 60_000, 10)).rejects.toThrow(/^vector index not connected/);
    } finally {
      await x.close();
    }
    // Closed, the index lets its connection go: no reconnecting for ever behind a stopped cache.
    await expect.poll(() => client.status, { timeout: 2000 }).toBe('end');
  });
});

describe('memory vector index', () => {
  it("past the bound on all partitions, the tenant holding the most gives up its oldest; among equals, the one that stored longest ago; another tenant's stay", () => {
    const x = new MemoryVectorIndex(Date.now, 4);
    const v = near(25, 26, 0);
    const add = (tenant: string, key: string) => x.add(tenant, 'p', ['w:f'], entry(v, key), 60_000, 100);
    const held = (tenant: string) => x.search(tenant, 'p', ['w:f'], v, 0.5, 10).map((m) => m.storeKey).sort();
    expect([add('acme', 'a1'), add('acme', 'a2'), add('globex', 'g1'), add('globex', 'g2')]).toEqual([0, 0, 0, 0]);
    // Two apiece: acme stored longest ago, so acme gives.
    expect(add('initech', 'i1')).toBe(1);
    expect([held('acme'), held('globex'), held('initech')]).toEqual([['a2'], ['g1', 'g2'], ['i1']]);
    // globex now holds the most.
    expect(add('globex', 'g3')).toBe(1);
    expect([held('acme'), held('globex'), held('initech')]).toEqual([['a2'], ['g2', 'g3'], ['i1']]);
    // initech reaches two: equal with globex, which stored longer ago and gives. At three, initech gives.
    expect(add('initech', 'i2')).toBe(1);
    expect([held('acme'), held('globex'), held('initech')]).toEqual([['a2'], ['g3'], ['i1', 'i2']]);
    expect(add('initech', 'i3')).toBe(1);
    expect([held('acme'), held('globex'), held('initech')]).toEqual([['a2'], ['g3'], ['i2', 'i3']]);
  });

  it('bounds all partitions together: the oldest partition gives up its oldest entries first', () => {
    const x = new MemoryVectorIndex(Date.now, 3);
    const v = near(1, 2, 0);
    x.add('acme', 'old', ['w:a'], entry(v, 'old-1'), 60_000, 100);
    x.add('acme', 'old', ['w:a'], entry(v, 'old-2'), 60_000, 100);
    expect(x.add('acme', 'new', ['w:a'], entry(v, 'new-1'), 60_000, 100)).toBe(0);
    expect(x.add('acme', 'new', ['w:a'], entry(v, 'new-2'), 60_000, 100)).toBe(1);
    expect(x.search('acme', 'old', ['w:a'], v, 0.5, 5).map((m) => m.storeKey)).toEqual(['old-2']);
    expect(x.search('acme', 'new', ['w:a'], v, 0.5, 5).map((m) => m.storeKey).sort()).toEqual(['new-1', 'new-2']);
  });
});

describe('the Redis vector index picks what the server can do', () => {
  it('stock Redis 7 (no search module): buckets in plain data structures', async () => {
    const x = (await makers.redis!()) as RedisVectorIndex;
    expect(x).toBeInstanceOf(RedisVectorIndex);
    const auto = (await ready(new AutoRedisVectorIndex({ url: servers.redis.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000, keyPrefix: 'auto7:' }))) as AutoRedisVectorIndex;
    await auto.search('t', 'p', ['w:x'], near(0, 1, 0), 0.5, 5);
    expect(auto.mode).toBe('buckets');
  });

  it('a server with vector search: one HNSW index per vector size, KNN queries filtered by partition and word set', async () => {
    const prefix = `vsq${Date.now()}:`;
    const x = (await ready(new AutoRedisVectorIndex({ url: standIn.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000, keyPrefix: prefix }))) as AutoRedisVectorIndex;
    const v = near(13, 14, 0);
    await x.add('acme', 'p', ['w:abc'], entry(v, 'ft-entry'), 60_000, 100);
    expect((await x.search('acme', 'p', ['w:abc'], v, 0.5, 5)).map((m) => m.storeKey)).toEqual(['ft-entry']);
    expect(x.mode).toBe('search');
    const create = standIn.ftCommands.find((c) => c[0] === 'FT.CREATE' && c[1] === `${prefix}vec:64`);
    expect(create).toEqual(['FT.CREATE', `${prefix}vec:64`, 'ON', 'HASH', 'PREFIX', '1', `${prefix}fv:64:`, 'SCHEMA', 'p', 'TAG', 'w', 'TAG', 'v', 'VECTOR', 'HNSW', '6', 'TYPE', 'FLOAT32', 'DIM', '64', 'DISTANCE_METRIC', 'COSINE']);
    const query = standIn.ftCommands.filter((c) => c[0] === 'FT.SEARCH' && c[1] === `${prefix}vec:64`).at(-1);
    expect(query?.[2]).toMatch(/^@p:\{[0-9a-f]{32}\} @w:\{[0-9a-f]{32}\}=>\[KNN 5 @v \$B AS d\]$/);
    expect(query?.slice(3)).toEqual(['PARAMS', '2', 'B', '<256 bytes>', 'RETURN', '3', 'd', 'f', 'k', 'SORTBY', 'd', 'ASC', 'LIMIT', '0', '5', 'DIALECT', '2']);
  });

  it('a probe with no answer in time decides nothing: the call fails, and the next asks again and finds vector search', async () => {
    // Taken for "no vector search", one stalled probe put a replica on buckets for good while the others used the
    // server's index: two layouts of one cache, each replica blind to the other's entries.
    const x = (await ready(new AutoRedisVectorIndex({ url: standIn.url, connectTimeoutMs: 1000, commandTimeoutMs: 100, keyPrefix: `vsp${Date.now()}:` }))) as AutoRedisVectorIndex;
    standIn.delayNextList = 300;
    const v = near(15, 16, 0);
    await expect(x.search('acme', 'p', ['w:x'], v, 0.5, 5)).rejects.toThrow('Command timed out');
    expect(x.mode).toBe('pending');
    // The late answer drains first; then the probe is asked again.
    await new Promise((r) => setTimeout(r, 400));
    expect(await x.search('acme', 'p', ['w:x'], v, 0.5, 5)).toEqual([]);
    expect(x.mode).toBe('search');
  });
});

describe('the Redis vector search index', () => {
  const searchIndex = (prefix: string) => ready(new AutoRedisVectorIndex({ url: standIn.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000, keyPrefix: prefix }));

  // FT.SEARCH scores from its index, then reads each result's hash: a hash that expired in between is still
  // named, with a null array for its fields (the command's documentation); one loaded without a field the
  // reply needs is as unusable. Either is a miss for that entry; the lookup still answers with the others.
  it.each([
    ['expired while the query ran (a null array)', (key: string, r: Redis) => r.del(key)],
    ['loaded without its exact-cache key', (key: string, r: Redis) => r.hdel(key, 'k')],
  ])('a best match %s is left out, and the next one answers', async (_, spoil) => {
    const x = await searchIndex(`vse${Date.now()}${ids++}:`);
    const q = near(27, 28, 0);
    await x.add('acme', 'p', ['w:spoil'], entry(near(27, 28, 0.05), 'spoiled'), 60_000, 10);
    await x.add('acme', 'p', ['w:spoil'], entry(near(27, 28, 0.2), 'next'), 60_000, 10);
    standIn.beforeLoad = async (keys, r) => {
      await spoil(keys[0] as string, r);
    };
    try {
      expect((await x.search('acme', 'p', ['w:spoil'], q, 0.5, 5)).map((m) => m.storeKey)).toEqual(['next']);
    } finally {
      standIn.beforeLoad = undefined;
    }
  });

  it('is created once per vector size; "already exists" from another instance is success', async () => {
    const prefix = `vs1${Date.now()}:`;
    const a = await searchIndex(prefix);
    const b = await searchIndex(prefix);
    const v = near(29, 30, 0);
    for (let i = 0; i < 3; i++) await a.add('acme', 'p', ['w:once'], entry(v, `a${i}`), 60_000, 10);
    await b.add('acme', 'p', ['w:once'], entry(v, 'b0'), 60_000, 10);
    expect((await b.search('acme', 'p', ['w:once'], v, 0.5, 10)).map((m) => m.storeKey).sort()).toEqual(['a0', 'a1', 'a2', 'b0']);
    // One attempt per instance: the second was told the index already exists.
    expect(standIn.ftCommands.filter((c) => c[0] === 'FT.CREATE' && c[1] === `${prefix}vec:64`)).toHaveLength(2);
  });

  it('an FT.CREATE that fails fails that add, and the next add creates the index', async () => {
    const prefix = `vsf${Date.now()}:`;
    const x = await searchIndex(prefix);
    const v = near(35, 36, 0);
    standIn.failNextCreate = 'OOM command not allowed when used memory > maxmemory';
    await expect(x.add('acme', 'p', ['w:f'], entry(v, 'refused'), 60_000, 10)).rejects.toThrow(/OOM/);
    await x.add('acme', 'p', ['w:f'], entry(v, 'kept'), 60_000, 10);
    expect((await x.search('acme', 'p', ['w:f'], v, 0.5, 5)).map((m) => m.storeKey)).toEqual(['kept']);
    expect(standIn.ftCommands.filter((c) => c[0] === 'FT.CREATE' && c[1] === `${prefix}vec:64`)).toHaveLength(2);
  });

  it('without the lexical guard (LSH buckets), a KNN query over the whole partition: no word-set filter', async () => {
    const prefix = `vsl${Date.now()}:`;
    const x = await searchIndex(prefix);
    const v = near(31, 32, 0, 512);
    const close = near(31, 32, 0.2, 512);
    await x.add('acme', 'p', lshBuckets(close), entry(close, 'lsh-entry'), 60_000, 10);
    // Buckets of a far vector: the bucket indexes would not even see the entry; KNN scores it.
    const far = near(33, 34, 0, 512);
    expect((await x.search('acme', 'p', lshBuckets(far), v, 0.5, 5)).map((m) => m.storeKey)).toEqual(['lsh-entry']);
    const query = standIn.ftCommands.filter((c) => c[0] === 'FT.SEARCH' && c[1] === `${prefix}vec:512`).at(-1);
    expect(query?.[2]).toMatch(/^@p:\{[0-9a-f]{32}\}=>\[KNN 5 @v \$B AS d\]$/);
  });
});
