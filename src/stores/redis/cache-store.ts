// Redis cache store: one JSON string per entry (RedisTtlStore), at most `maxPerTenant` entries per tenant. A
// damaged entry reads as a miss and is overwritten by the next store.
//
// Why a cap per tenant: Redis evicts by its own sampled LRU across every key it holds (or, under `noeviction`
// or no maxmemory, grows until the TTLs catch up), so one tenant storing a stream of one-off answers would push
// every other tenant's answers out, or fill the Redis. Each tenant's entries are listed in a sorted set by
// expiry, in the same slot as they are (the tenant's hash tag); a store past the cap deletes that tenant's
// entries that expire soonest (with one TTL, the oldest), in the same script, so replicas cannot race past it.
// Expiry is read from Redis's own clock, the one the entries' TTLs run on.
import type { CacheEntry } from '../cache-store.js';
import type { RedisConnectOptions } from './connect.js';
import { RedisTtlStore } from './ttl-store.js';

const JSON_ENTRY = {
  encode: (e: CacheEntry) => JSON.stringify(e),
  decode(text: string): CacheEntry | undefined {
    try {
      return JSON.parse(text) as CacheEntry;
    } catch {
      return undefined;
    }
  },
};

// KEYS[1] the entry, KEYS[2] its tenant's index (entry keys scored by expiry, in ms with the microseconds as a
// fraction). ARGV: value, ttl ms, cap. Returns how many entries made room. Deleted entries are the tenant's own:
// in KEYS[2]'s slot by construction. Whole milliseconds tied for entries stored within one (a burst of answers),
// and ties go by key name, so the cap removed one of them at random instead of the first stored; a double near
// 1.8e12 still tells microseconds apart (its step is 2^-12 ms).
const SET_CAPPED = `
local ttl, cap = tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local over = redis.call('ZCARD', KEYS[2]) - cap
if over > 0 then
  for _, k in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do redis.call('DEL', k) end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
else
  over = 0
end
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return over
`;

interface Scripts {
  /** Resolves to how many of the tenant's entries made room. */
  tiergateCacheSet(...args: Array<string | number>): Promise<number>;
}

export class RedisCacheStore extends RedisTtlStore<CacheEntry> {
  constructor(
    opts: RedisConnectOptions,
    /** cache.redis.maxEntriesPerTenant */
    private readonly maxPerTenant: number,
  ) {
    super(opts, JSON_ENTRY, 'cache store');
    this.redis.defineCommand('tiergateCacheSet', { numberOfKeys: 2, lua: SET_CAPPED });
  }

  override async set(key: string, value: CacheEntry, ttlMs: number, owner: string): Promise<number> {
    this.ready();
    // The index shares the entry key's hash tag, so on a Cluster the script runs on one slot.
    const tag = `{t:${owner}}`;
    const at = key.indexOf(tag);
    if (at === -1) throw new Error('cache store: the key does not name its tenant');
    const index = `${key.slice(0, at + tag.length)}:i`;
    return (this.redis as unknown as Scripts).tiergateCacheSet(key, index, JSON_ENTRY.encode(value), Math.max(1, Math.round(ttlMs)), this.maxPerTenant);
  }
}
