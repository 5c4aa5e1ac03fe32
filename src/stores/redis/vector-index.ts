// Redis vector index for stock Redis 7 (no search module): per entry a hash {v: float32 bytes, f: guard
// features, k: exact-cache key, b: its buckets}; per bucket a sorted set of entry ids scored by expiry; per
// partition a sorted set of ids in insertion order (by time, strictly increasing), for the capacity bound; per
// tenant a sorted set of its entries in every partition by expiry, for the tenant's bound (a partition is a whole
// conversation but its last question, so a tenant makes a new one with nearly every turn, and a bound per
// partition alone bounds nothing). Adding is one script (insert, then evict while over either bound) and
// searching is one script (gather each bucket's live ids, return their vectors); scoring is exact, here. All
// keys of a tenant share its hash tag, so on a Redis Cluster each script runs on one slot. Entry keys are built
// inside the scripts from a prefix: they are in the same slot as the declared keys by construction.
import type { Cluster, Redis } from 'ioredis';
import { dot } from '../../cache/embedders/embedder.js';
import type { QuestionFeatures } from '../../cache/guards.js';
import { MAX_PER_BUCKET, type VectorEntry, type VectorIndex, type VectorMatch } from '../vector-index.js';
import { connectionState } from './connect.js';

// KEYS[1] partition zset, KEYS[2] entry hash, KEYS[3] tenant zset, KEYS[4..] bucket zsets.
// ARGV: id, now, expiresAt, ttlMs, maxEntries, vector, features, storeKey, bucket list, partition base (its keys'
// prefix), tenant cap. Tenant zset members are "<partition base>\n<id>".
const ADD = `
local id, now, exp, ttl, max, base, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[10], tonumber(ARGV[11])
-- Drops one entry of this tenant (any partition): its hash, its bucket memberships, its place in the partition.
local function drop(pbase, oid)
  local ekey = pbase .. 'e:' .. oid
  local b = redis.call('HGET', ekey, 'b')
  if b then
    for bucket in string.gmatch(b, '[^ ]+') do redis.call('ZREM', pbase .. 'b:' .. bucket, oid) end
  end
  redis.call('DEL', ekey)
  redis.call('ZREM', pbase .. 'p', oid)
end
redis.call('HSET', KEYS[2], 'v', ARGV[6], 'f', ARGV[7], 'k', ARGV[8], 'b', ARGV[9])
redis.call('PEXPIRE', KEYS[2], ttl)
for i = 4, #KEYS do
  redis.call('ZADD', KEYS[i], exp, id)
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  redis.call('PEXPIRE', KEYS[i], ttl)
end
-- Insertion order, strictly: entries added in the same millisecond would otherwise tie, and a tie is broken by
-- the (random) id, so the cap could evict the newest. A millisecond is ~4,000 steps of a score this size.
redis.call('ZREM', KEYS[1], id)
local score, last = now, redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] and tonumber(last[2]) >= score then score = tonumber(last[2]) + 0.001 end
redis.call('ZADD', KEYS[1], score, id)
redis.call('PEXPIRE', KEYS[1], ttl)
local over = redis.call('ZCARD', KEYS[1]) - max
if over > 0 then
  for _, oid in ipairs(redis.call('ZRANGE', KEYS[1], 0, over - 1)) do
    drop(base, oid)
    redis.call('ZREM', KEYS[3], base .. '\\n' .. oid)
  end
end
redis.call('ZADD', KEYS[3], exp, base .. '\\n' .. id)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local past = redis.call('ZCARD', KEYS[3]) - cap
local evicted = math.max(over, 0) + math.max(past, 0)
if past > 0 then
  for _, m in ipairs(redis.call('ZRANGE', KEYS[3], 0, past - 1)) do
    local nl = string.find(m, '\\n', 1, true)
    drop(string.sub(m, 1, nl - 1), string.sub(m, nl + 1))
  end
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, past - 1)
end
if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
return evicted
`;

// KEYS: bucket zsets. ARGV: now, per-bucket limit, entry key prefix. Returns {id, v, f, k, …} for live entries.
const SEARCH = `
local now, limit, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local seen, out = {}, {}
for i = 1, #KEYS do
  -- Live means expiring after now, as the add script's trimming and the memory index count it.
  local ids = redis.call('ZRANGEBYSCORE', KEYS[i], '(' .. now, '+inf', 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    if not seen[id] then
      seen[id] = true
      local e = redis.call('HMGET', prefix .. id, 'v', 'f', 'k')
      if e[1] then
        out[#out + 1] = e[1]
        out[#out + 1] = e[2]
        out[#out + 1] = e[3]
      end
    end
  end
end
return out
`;

interface Scripts {
  tiergateVecAdd(...args: Array<string | number | Buffer>): Promise<number>;
  tiergateVecSearchBuffer(...args: Array<string | number | Buffer>): Promise<Buffer[]>;
}
type ScriptClient = (Redis | Cluster) & Scripts;

/** Buckets in plain Redis data structures: works on any Redis 7+ (and Cluster). */
export class RedisVectorIndex implements VectorIndex {
  readonly kind = 'redis';
  readonly redis: ScriptClient;

  constructor(
    client: Redis | Cluster,
    private readonly prefix: string,
    private readonly now: () => number = Date.now,
    /** cache.redis.maxEntriesPerTenant: a tenant's entries across its partitions; past it, the soonest to expire go. */
    private readonly maxPerTenant = Number.MAX_SAFE_INTEGER,
  ) {
    this.redis = client as ScriptClient;
    this.redis.defineCommand('tiergateVecAdd', { lua: ADD });
    this.redis.defineCommand('tiergateVecSearch', { lua: SEARCH });
  }

  private base(tenant: string, partition: string): string {
    return `${this.prefix}{t:${tenant}}:v:${partition}:`;
  }

  async search(tenant: string, partition: string, buckets: readonly string[], vector: Float32Array, minScore: number, limit: number): Promise<VectorMatch[]> {
    if (this.redis.status !== 'ready') throw new Error(`vector index not connected (${connectionState(this.redis)})`);
    const base = this.base(tenant, partition);
    const keys = buckets.map((b) => `${base}b:${b}`);
    const flat = await this.redis.tiergateVecSearchBuffer(keys.length, ...keys, this.now(), MAX_PER_BUCKET, `${base}e:`);
    const out: VectorMatch[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const raw = flat[i] as Buffer;
      if (raw.length !== vector.length * 4) continue; // another model's vector: never comparable
      const v = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
      const score = dot(vector, v);
      if (score < minScore) continue;
      out.push({ score, features: JSON.parse((flat[i + 1] as Buffer).toString('utf8')) as QuestionFeatures, storeKey: (flat[i + 2] as Buffer).toString('utf8') });
    }
    return out.sort((a, b) => b.score - a.score).slice(0, limit);
  }

  async add(tenant: string, partition: string, buckets: readonly string[], entry: VectorEntry, ttlMs: number, maxEntries: number): Promise<number> {
    if (this.redis.status !== 'ready') throw new Error(`vector index not connected (${connectionState(this.redis)})`);
    const base = this.base(tenant, partition);
    const now = this.now();
    const keys = [`${base}p`, `${base}e:${entry.id}`, `${this.prefix}{t:${tenant}}:vt`, ...buckets.map((b) => `${base}b:${b}`)];
    const vec = Buffer.from(entry.vector.buffer, entry.vector.byteOffset, entry.vector.byteLength);
    return this.redis.tiergateVecAdd(keys.length, ...keys, entry.id, now, now + ttlMs, Math.round(ttlMs), maxEntries, vec, JSON.stringify(entry.features), entry.storeKey, buckets.join(' '), base, this.maxPerTenant);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
