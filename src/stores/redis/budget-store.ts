// Redis budget store. Admission is one script (check every bucket, then reserve in all or none) and a
// reconcile is one script: one round trip each, atomic, so N tiergate replicas share one exact limit.
// Per bucket: a hash {used, reserved, warned, r:<id> = tokens} and a sorted set of reservation ids by
// expiry, swept at every admission so a reservation whose stream died frees itself.
import { Redis } from 'ioredis';
import { whenReady } from './when-ready.js';
import type { AdmitRequest, AdmitResult, Bucket, BudgetStore } from '../budget-store.js';

// KEYS: hash, zset per bucket. ARGV: now, id, tokens, reservation expiry, warnAt, then per bucket
// unit (r|t), limit, expireAt, daily (1|0). Returns {1, warning(0 none|1 over|2 first), counted…} or
// {0, denied index (1-based), counted…}.
const ADMIT = `
local now, id, tokens, resExp, warnAt = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local n = #KEYS / 2
local counted, denied = {}, 0
for i = 1, n do
  local h, z, a = KEYS[2 * i - 1], KEYS[2 * i], 6 + (i - 1) * 4
  if ARGV[a] == 't' then
    local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 512)
    for _, rid in ipairs(gone) do
      local amt = redis.call('HGET', h, 'r:' .. rid)
      if amt then
        redis.call('HINCRBY', h, 'reserved', -tonumber(amt))
        redis.call('HDEL', h, 'r:' .. rid)
      end
      redis.call('ZREM', z, rid)
    end
  end
  local v = redis.call('HMGET', h, 'used', 'reserved')
  counted[i] = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
  local cost = tokens
  if ARGV[a] == 'r' then cost = 1 end
  if denied == 0 and counted[i] + cost > tonumber(ARGV[a + 1]) then denied = i end
end
if denied > 0 then
  return {0, denied, unpack(counted)}
end
local warning = 0
for i = 1, n do
  local h, z, a = KEYS[2 * i - 1], KEYS[2 * i], 6 + (i - 1) * 4
  if ARGV[a] == 'r' then
    redis.call('HINCRBY', h, 'used', 1)
    counted[i] = counted[i] + 1
  elseif tokens > 0 then
    redis.call('HINCRBY', h, 'reserved', tokens)
    redis.call('HSET', h, 'r:' .. id, tokens)
    redis.call('ZADD', z, resExp, id)
    redis.call('PEXPIREAT', z, ARGV[a + 2])
    counted[i] = counted[i] + tokens
  end
  redis.call('PEXPIREAT', h, ARGV[a + 2])
  if ARGV[a + 3] == '1' and counted[i] >= warnAt * tonumber(ARGV[a + 1]) then
    if redis.call('HSETNX', h, 'warned', 1) == 1 then warning = 2 elseif warning == 0 then warning = 1 end
  end
end
return {1, warning, unpack(counted)}
`;

// KEYS: hash, zset per token bucket. ARGV: id, actual tokens. A window already forgotten is left alone.
const RECONCILE = `
local id, actual = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local amt = redis.call('HGET', h, 'r:' .. id)
  if amt then
    redis.call('HINCRBY', h, 'reserved', -tonumber(amt))
    redis.call('HDEL', h, 'r:' .. id)
    redis.call('ZREM', z, id)
  end
  if actual > 0 and redis.call('EXISTS', h) == 1 then redis.call('HINCRBY', h, 'used', actual) end
end
return 1
`;

export interface RedisBudgetStoreOptions {
  url: string;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
}

type ScriptClient = Redis & {
  tiergateAdmit(...args: Array<string | number>): Promise<number[]>;
  tiergateReconcile(...args: Array<string | number>): Promise<number>;
};

export class RedisBudgetStore implements BudgetStore {
  readonly kind = 'redis';
  readonly redis: ScriptClient;

  constructor(private readonly opts: RedisBudgetStoreOptions) {
    this.redis = new Redis(opts.url, {
      connectTimeout: opts.connectTimeoutMs,
      commandTimeout: opts.commandTimeoutMs,
      // A command while disconnected fails at once rather than waiting in ioredis' queue: the request
      // must be answered inside Envoy's message timeout, by the failure rule if need be.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (n) => Math.min(50 * n, 1000),
    }) as ScriptClient;
    this.redis.on('error', () => undefined); // surfaced by failed commands, counted by the breaker
    this.redis.defineCommand('tiergateAdmit', { lua: ADMIT });
    this.redis.defineCommand('tiergateReconcile', { lua: RECONCILE });
  }

  async admit(req: AdmitRequest): Promise<AdmitResult> {
    await whenReady(this.redis, this.opts.connectTimeoutMs, 'redis budget store');
    const keys = keysOf(req.buckets);
    const args: Array<string | number> = [req.now, req.id, req.tokens, req.reservationExpiresAt, req.warnAt];
    for (const b of req.buckets) args.push(b.unit === 'requests' ? 'r' : 't', b.limit, b.expireAt, b.code === 'daily_token_budget' ? '1' : '0');
    const out = await this.redis.tiergateAdmit(keys.length, ...keys, ...args);
    const counted = out.slice(2).map(Number);
    if (out[0] === 0) return { admitted: false, counted, denied: Number(out[1]) - 1, budgetWarning: 'none' };
    return { admitted: true, counted, denied: undefined, budgetWarning: out[1] === 2 ? 'first' : out[1] === 1 ? 'over' : 'none' };
  }

  async reconcile(id: string, buckets: readonly Bucket[], actualTokens: number): Promise<void> {
    await whenReady(this.redis, this.opts.connectTimeoutMs, 'redis budget store');
    const keys = keysOf(buckets);
    await this.redis.tiergateReconcile(keys.length, ...keys, id, actualTokens);
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** The sorted set shares the hash's key (and so its hash tag and Cluster slot). */
function keysOf(buckets: readonly Bucket[]): string[] {
  const keys: string[] = [];
  for (const b of buckets) keys.push(b.key, `${b.key}:holds`);
  return keys;
}
