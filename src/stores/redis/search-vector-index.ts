// The vector index on Redis's own vector search (the query engine built into Redis 8, or Redis Stack's
// RediSearch): one HNSW index per vector size, documents as hashes {p: partition tag, w: word-set tag, v: float32
// vector, f: guard features, k: exact-cache key}, searched with a KNN query filtered by partition (and, under the
// lexical guard, by word set). Capacity per partition, and per tenant across its partitions, is kept by the same
// kind of sorted sets as the bucket index.
// Standalone Redis only: on an open-source Cluster each shard would index only its own keys.
import { createHash } from 'node:crypto';
import { ReplyError, type Redis } from 'ioredis';
import type { QuestionFeatures } from '../../cache/guards.js';
import type { VectorEntry, VectorIndex, VectorMatch } from '../vector-index.js';
import { connectionState } from './connect.js';

// KEYS[1] partition zset, KEYS[2] document, KEYS[3] the tenant's zset of its documents in every partition by
// expiry (members "<partition zset>\n<document prefix>\n<id>"), for cache.redis.maxEntriesPerTenant. ARGV: id,
// now, ttlMs, maxEntries, document key prefix, tenant cap, then field/value pairs.
const ADD = `
local id, now, ttl, max, prefix, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('PEXPIRE', KEYS[2], ttl)
-- Insertion order, strictly, as in the bucket index (vector-index.ts): a tie within a millisecond would be broken
-- by the random id, and the cap could evict the entry just added instead of the oldest.
redis.call('ZREM', KEYS[1], id)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
local score, last = now, redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] and tonumber(last[2]) >= score then score = tonumber(last[2]) + 0.001 end
redis.call('ZADD', KEYS[1], score, id)
redis.call('PEXPIRE', KEYS[1], ttl)
local over = redis.call('ZCARD', KEYS[1]) - max
if over > 0 then
  for _, oid in ipairs(redis.call('ZRANGE', KEYS[1], 0, over - 1)) do
    redis.call('DEL', prefix .. oid)
    redis.call('ZREM', KEYS[1], oid)
    redis.call('ZREM', KEYS[3], KEYS[1] .. '\\n' .. prefix .. '\\n' .. oid)
  end
end
redis.call('ZADD', KEYS[3], now + ttl, KEYS[1] .. '\\n' .. prefix .. '\\n' .. id)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local past = redis.call('ZCARD', KEYS[3]) - cap
local evicted = math.max(over, 0) + math.max(past, 0)
if past > 0 then
  for _, m in ipairs(redis.call('ZRANGE', KEYS[3], 0, past - 1)) do
    local a = string.find(m, '\\n', 1, true)
    local b = string.find(m, '\\n', a + 1, true)
    local oid = string.sub(m, b + 1)
    redis.call('DEL', string.sub(m, a + 1, b - 1) .. oid)
    redis.call('ZREM', string.sub(m, 1, a - 1), oid)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, past - 1)
end
if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
return evicted
`;

type ScriptClient = Redis & { tiergateFtAdd(...args: Array<string | number | Buffer>): Promise<number> };

/**
 * Whether the server has vector search: FT._LIST exists (Redis 8, Redis Stack) or not (stock Redis 7). Only the
 * server's own refusal is a no (an unknown command, or one this user may not run); a timeout or a dropped
 * connection rejects, and the caller asks again later. Taken for a no, one stalled probe put a replica on the
 * bucket index for good while the others used the server's: two layouts of one cache, blind to each other.
 */
export async function hasVectorSearch(redis: Redis): Promise<boolean> {
  try {
    await redis.call('FT._LIST');
    return true;
  } catch (err) {
    if (err instanceof ReplyError) return false;
    throw err;
  }
}

/** Tags hold only hex: no TAG-query escaping needed. */
const tag = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 32);

export class RedisSearchVectorIndex implements VectorIndex {
  readonly kind = 'redis';
  private readonly redis: ScriptClient;
  private readonly created = new Map<number, Promise<void>>();

  constructor(
    client: Redis,
    private readonly prefix: string,
    private readonly now: () => number = Date.now,
    /** cache.redis.maxEntriesPerTenant: a tenant's documents across its partitions; past it, the soonest to expire go. */
    private readonly maxPerTenant = Number.MAX_SAFE_INTEGER,
  ) {
    this.redis = client as ScriptClient;
    this.redis.defineCommand('tiergateFtAdd', { lua: ADD });
  }

  indexName(dims: number): string {
    return `${this.prefix}vec:${dims}`;
  }

  private docPrefix(dims: number): string {
    return `${this.prefix}fv:${dims}:`;
  }

  /** Created once per vector size; "Index already exists" (another instance made it) is success. */
  private ensureIndex(dims: number): Promise<void> {
    let p = this.created.get(dims);
    if (!p) {
      p = this.redis
        .call('FT.CREATE', this.indexName(dims), 'ON', 'HASH', 'PREFIX', '1', this.docPrefix(dims), 'SCHEMA', 'p', 'TAG', 'w', 'TAG', 'v', 'VECTOR', 'HNSW', '6', 'TYPE', 'FLOAT32', 'DIM', String(dims), 'DISTANCE_METRIC', 'COSINE')
        .then(
          () => undefined,
          (err: Error) => {
            if (/already exists/i.test(err.message)) return;
            this.created.delete(dims);
            throw err;
          },
        );
      this.created.set(dims, p);
    }
    return p;
  }

  async search(tenant: string, partition: string, buckets: readonly string[], vector: Float32Array, minScore: number, limit: number): Promise<VectorMatch[]> {
    if (this.redis.status !== 'ready') throw new Error(`vector index not connected (${connectionState(this.redis)})`);
    await this.ensureIndex(vector.length);
    // Under the lexical guard the caller passes the one word-set bucket: filter on it too.
    const words = buckets.length === 1 && buckets[0]?.startsWith('w:') ? ` @w:{${tag(buckets[0])}}` : '';
    const query = `@p:{${tag(`${tenant}\0${partition}`)}}${words}=>[KNN ${limit} @v $B AS d]`;
    const blob = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength);
    const reply = (await this.redis.callBuffer('FT.SEARCH', this.indexName(vector.length), query, 'PARAMS', '2', 'B', blob, 'RETURN', '3', 'd', 'f', 'k', 'SORTBY', 'd', 'ASC', 'LIMIT', '0', String(limit), 'DIALECT', '2')) as unknown[];
    const out: VectorMatch[] = [];
    // [total, key, [field, value, …], key, […], …]
    for (let i = 2; i < reply.length; i += 2) {
      // A document that expired while the query ran is still counted and named, but its fields are a null array
      // (FT.SEARCH's documented reply): a miss for that entry, not a failed lookup.
      const fields = reply[i] as Buffer[] | null;
      if (!Array.isArray(fields)) continue;
      const get = (name: string) => {
        for (let j = 0; j + 1 < fields.length; j += 2) if (fields[j]?.toString() === name) return fields[j + 1]?.toString();
        return undefined;
      };
      const d = Number(get('d'));
      const f = get('f');
      const k = get('k');
      if (!Number.isFinite(d) || f === undefined || k === undefined) continue;
      const score = 1 - d; // COSINE distance is 1 − cosine similarity
      if (score >= minScore) out.push({ score, features: JSON.parse(f) as QuestionFeatures, storeKey: k });
    }
    return out.sort((a, b) => b.score - a.score);
  }

  async add(tenant: string, partition: string, buckets: readonly string[], entry: VectorEntry, ttlMs: number, maxEntries: number): Promise<number> {
    if (this.redis.status !== 'ready') throw new Error(`vector index not connected (${connectionState(this.redis)})`);
    const dims = entry.vector.length;
    await this.ensureIndex(dims);
    const docs = `${this.docPrefix(dims)}{t:${tenant}}:${partition}:`;
    const words = buckets.length === 1 && buckets[0]?.startsWith('w:') ? tag(buckets[0]) : 'none';
    const vec = Buffer.from(entry.vector.buffer, entry.vector.byteOffset, entry.vector.byteLength);
    return this.redis.tiergateFtAdd(
      3,
      `${this.prefix}{t:${tenant}}:fp:${partition}`,
      `${docs}${entry.id}`,
      `${this.prefix}{t:${tenant}}:ft`,
      entry.id,
      this.now(),
      Math.round(ttlMs),
      maxEntries,
      docs,
      this.maxPerTenant,
      'p',
      tag(`${tenant}\0${partition}`),
      'w',
      words,
      'v',
      vec,
      'f',
      JSON.stringify(entry.features),
      'k',
      entry.storeKey,
    );
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
