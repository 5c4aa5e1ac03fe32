// Redis budget store. Admission is one script (check every bucket, then reserve in all or none) and a
// reconcile is one script: one round trip each, atomic, so N tiergate replicas share one exact limit.
// Per bucket: a hash {used, reserved, warned, r:<id> = amount} and a sorted set of reservation ids by
// expiry, swept at every admission so a reservation whose stream died frees itself.
//
// Redis Cluster runs a script on one slot only. Keys are hash-tagged (a tenant's counters share `{t:…}`, the
// gateway-wide and per-tier ones `{shared}`), so in Cluster mode each tag is one script: one round trip when a
// request's limits share a tag, one per tag otherwise, run in turn. A later tag's refusal releases what the
// earlier ones reserved, so nothing is ever admitted past a limit; the cost is that, for that moment, a
// concurrent request may be refused by the released reservation (never the reverse).
import type { Cluster, Redis } from 'ioredis';
import { connectRedis } from './connect.js';
import { hashTag } from './hash-tag.js';
import { whenReady } from './when-ready.js';
import { costOf, hasRoom, holdExpiry, isBudget, usedOf, type AdmitRequest, type AdmitResult, type Bucket, type BudgetStore } from '../budget-store.js';

// Shared by the scripts below. dropHold frees reservation id of bucket (h, z) and says whether it was held.
// expireHolds frees the reservations past their expiry and leaves a mark (x:<id>) for each, so that its
// request's reconcile, if it ever comes, still counts what it spent. A reconcile counts only for an id held or
// marked, and takes the hold or mark away: run twice (a retry after a timeout that had in fact reached Redis),
// it counts once. Units: r requests (counted, never held), t tokens or micro-dollars (held, then reconciled),
// c concurrent requests (held on a lease, then released).
const DROP_HOLD = `
local function dropHold(h, z, id)
  local amt = redis.call('HGET', h, 'r:' .. id)
  if amt then
    redis.call('HINCRBY', h, 'reserved', 0 - tonumber(amt)) -- not -tonumber: -0 is no integer to Redis
    redis.call('HDEL', h, 'r:' .. id)
  end
  redis.call('ZREM', z, id)
  return amt ~= false
end
local function expireHolds(h, z, now, mark)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 512)
  for _, rid in ipairs(gone) do
    if dropHold(h, z, rid) and mark then redis.call('HSET', h, 'x:' .. rid, 1) end
  end
end
-- A concurrent bucket ('c') lives as long as traffic does: its time to live only ever grows, and its expired
-- leases leave no mark (its reconcile counts nothing, and the marks would pile up for as long as it lives).
local function keepAtLeast(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
`;

// KEYS: hash, zset per bucket. ARGV: now, id, warnAt, then per bucket unit (r|t|c), limit, expireAt, calendar
// budget (1|0: it warns), this request's amount, its hold's expiry. Returns {1, warning(0 none|1 over|2 first),
// counted…} or {0, denied index (1-based), counted…}.
const ADMIT = `${DROP_HOLD}
local now, id, warnAt = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local n = #KEYS / 2
local counted, denied = {}, 0
for i = 1, n do
  local h, z, a = KEYS[2 * i - 1], KEYS[2 * i], 4 + (i - 1) * 6
  if ARGV[a] ~= 'r' then expireHolds(h, z, now, ARGV[a] == 't') end
  local v = redis.call('HMGET', h, 'used', 'reserved')
  counted[i] = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
  if denied == 0 and counted[i] + tonumber(ARGV[a + 4]) > tonumber(ARGV[a + 1]) then denied = i end
end
if denied > 0 then
  return {0, denied, unpack(counted)}
end
local warning = 0
for i = 1, n do
  local h, z, a = KEYS[2 * i - 1], KEYS[2 * i], 4 + (i - 1) * 6
  local amount = tonumber(ARGV[a + 4])
  -- A time to live, not PEXPIREAT: expireAt and now are both tiergate's clock, and Redis's may differ from it.
  local ttl = math.max(1, tonumber(ARGV[a + 2]) - now)
  if ARGV[a] == 'r' then
    redis.call('HINCRBY', h, 'used', 1)
    counted[i] = counted[i] + 1
  else
    -- A hold even of nothing (an embeddings request under a cost budget): its reconcile then counts what the
    -- request spent, and "used" opens the window even as its first request, as in the memory store.
    redis.call('HINCRBY', h, 'reserved', amount)
    redis.call('HINCRBY', h, 'used', 0)
    redis.call('HSET', h, 'r:' .. id, amount)
    redis.call('ZADD', z, ARGV[a + 5], id)
    counted[i] = counted[i] + amount
  end
  if ARGV[a] == 'c' then
    keepAtLeast(h, ttl)
    keepAtLeast(z, ttl)
  else
    redis.call('PEXPIRE', h, ttl)
    if ARGV[a] == 't' then redis.call('PEXPIRE', z, ttl) end
  end
  if ARGV[a + 3] == '1' and counted[i] >= warnAt * tonumber(ARGV[a + 1]) then
    if redis.call('HSETNX', h, 'warned', 1) == 1 then warning = 2 elseif warning == 0 then warning = 1 end
  end
end
return {1, warning, unpack(counted)}
`;

// KEYS: hash, zset per token or usd bucket. ARGV: id, then per bucket the amount really used. Counted once, for a
// reservation held or expired (see DROP_HOLD); a window already forgotten is left alone.
const RECONCILE = `${DROP_HOLD}
local id = ARGV[1]
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local actual = tonumber(ARGV[i + 1])
  local held = dropHold(h, z, id) or redis.call('HDEL', h, 'x:' .. id) == 1
  if held and actual > 0 and redis.call('EXISTS', h) == 1 then redis.call('HINCRBY', h, 'used', actual) end
end
return 1
`;

// KEYS: hash, zset per bucket. ARGV: id, then per bucket unit (r|t|c). Undoes an admission: a request count, or
// a reservation (if it is still there).
const RELEASE = `${DROP_HOLD}
local id = ARGV[1]
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  if ARGV[i + 1] == 'r' then redis.call('HINCRBY', h, 'used', -1) else dropHold(h, z, id) end
end
return 1
`;

// KEYS: hash, zset per bucket. ARGV: now, then per bucket unit (r|t|c). Returns counted per bucket, after
// dropping the reservations that expired (as admission does); counts nothing.
const PEEK = `${DROP_HOLD}
local now = tonumber(ARGV[1])
local counted = {}
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  if ARGV[i + 1] ~= 'r' then expireHolds(h, z, now, ARGV[i + 1] == 't') end
  local v = redis.call('HMGET', h, 'used', 'reserved')
  counted[i] = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
end
return counted
`;

// KEYS: hash, zset of one concurrent bucket. ARGV: now, the new lease expiry, the counter's time to live, then
// ids. Moves the lease of each id still held and not yet run out; an id released (or expired) stays free.
const RENEW = `${DROP_HOLD}
local h, z = KEYS[1], KEYS[2]
local now, lease = tonumber(ARGV[1]), ARGV[2]
for i = 4, #ARGV do
  local at = redis.call('ZSCORE', z, ARGV[i])
  if at and tonumber(at) > now then redis.call('ZADD', z, 'XX', lease, ARGV[i]) end
end
if redis.call('EXISTS', h) == 1 then
  keepAtLeast(h, tonumber(ARGV[3]))
  keepAtLeast(z, tonumber(ARGV[3]))
end
return 1
`;

export interface RedisBudgetStoreOptions {
  url: string;
  /** Connect to a Redis Cluster, with `url` as a seed node. */
  cluster?: boolean;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
}

interface Scripts {
  tiergateAdmit(...args: Array<string | number>): Promise<number[]>;
  tiergateReconcile(...args: Array<string | number>): Promise<number>;
  tiergateRelease(...args: Array<string | number>): Promise<number>;
  tiergatePeek(...args: Array<string | number>): Promise<number[]>;
  tiergateRenew(...args: Array<string | number>): Promise<number>;
}
type ScriptClient = (Redis | Cluster) & Scripts;

export class RedisBudgetStore implements BudgetStore {
  readonly kind = 'redis';
  readonly redis: ScriptClient;

  constructor(private readonly opts: RedisBudgetStoreOptions) {
    this.redis = connectRedis(opts) as ScriptClient;
    this.redis.defineCommand('tiergateAdmit', { lua: ADMIT });
    this.redis.defineCommand('tiergateReconcile', { lua: RECONCILE });
    this.redis.defineCommand('tiergateRelease', { lua: RELEASE });
    this.redis.defineCommand('tiergatePeek', { lua: PEEK });
    this.redis.defineCommand('tiergateRenew', { lua: RENEW });
  }

  async admit(req: AdmitRequest): Promise<AdmitResult> {
    await this.ready();
    if (!this.opts.cluster) return this.admitGroup(req, req.buckets);
    const groups = slotGroups(req.buckets);
    if (groups.length === 1) return this.admitGroup(req, req.buckets);
    const counted: number[] = new Array<number>(req.buckets.length).fill(0);
    const done: Array<readonly Bucket[]> = [];
    let budgetWarning: AdmitResult['budgetWarning'] = 'none';
    for (const group of groups) {
      const r = await this.admitGroup(req, group.buckets);
      group.index.forEach((at, j) => (counted[at] = r.counted[j] as number));
      if (!r.admitted) {
        // Report every bucket as a refusal from one script would: what the released groups held before this
        // request, and what the groups never reached hold now (read, not counted into).
        const unread = groups.slice(done.length + 1);
        const [, later] = await Promise.all([Promise.all(done.map((g) => this.release(req.id, g))), Promise.all(unread.map((g) => this.peekGroup(g, req.now)))]);
        for (const g of groups.slice(0, done.length)) g.index.forEach((at, j) => (counted[at] = (counted[at] as number) - costOf(g.buckets[j] as Bucket, req.tokens, req.microUsd)));
        unread.forEach((g, k) => g.index.forEach((at, j) => (counted[at] = (later[k] as number[])[j] as number)));
        // The first bucket without room in the request's order, as one script (and the memory store) names it:
        // the 429's code and retry-after must not depend on which slot was asked first.
        const first = req.buckets.findIndex((b, i) => !hasRoom(counted[i] as number, costOf(b, req.tokens, req.microUsd), b.limit));
        return { admitted: false, counted, denied: first === -1 ? group.index[r.denied as number] : first, budgetWarning: 'none' };
      }
      done.push(group.buckets);
      // "first" from any group wins: some budget was crossed for the first time.
      if (r.budgetWarning === 'first' || budgetWarning === 'none') budgetWarning = r.budgetWarning;
    }
    return { admitted: true, counted, denied: undefined, budgetWarning };
  }

  async reconcile(id: string, buckets: readonly Bucket[], actualTokens: number, _now?: number, actualMicroUsd = 0): Promise<void> {
    await this.ready();
    const groups = this.opts.cluster ? slotGroups(buckets).map((g) => g.buckets) : [buckets];
    await Promise.all(
      groups.map((g) => {
        const keys = keysOf(g);
        return this.redis.tiergateReconcile(keys.length, ...keys, id, ...g.map((b) => usedOf(b, actualTokens, actualMicroUsd)));
      }),
    );
  }

  async renew(b: Bucket, ids: readonly string[], leaseExpiresAt: number, now: number): Promise<void> {
    if (ids.length === 0) return;
    await this.ready();
    await this.redis.tiergateRenew(2, ...keysOf([b]), now, leaseExpiresAt, Math.max(1, b.expireAt - now), ...ids);
  }

  async peek(buckets: readonly Bucket[], now: number): Promise<number[]> {
    await this.ready();
    const groups = this.opts.cluster ? slotGroups(buckets) : [{ buckets: [...buckets], index: buckets.map((_, i) => i) }];
    const counted = new Array<number>(buckets.length).fill(0);
    await Promise.all(
      groups.map(async (g) => {
        const out = await this.peekGroup(g, now);
        g.index.forEach((at, j) => (counted[at] = out[j] as number));
      }),
    );
    return counted;
  }

  /** What one slot group's buckets count now, in its order (one script, on its slot). */
  private async peekGroup(g: { buckets: readonly Bucket[] }, now: number): Promise<number[]> {
    const keys = keysOf(g.buckets);
    const out = await this.redis.tiergatePeek(keys.length, ...keys, now, ...g.buckets.map(unitArg));
    return out.map(Number);
  }

  private async admitGroup(req: AdmitRequest, buckets: readonly Bucket[]): Promise<AdmitResult> {
    const keys = keysOf(buckets);
    const args: Array<string | number> = [req.now, req.id, req.warnAt];
    for (const b of buckets) args.push(unitArg(b), b.limit, b.expireAt, isBudget(b) ? '1' : '0', costOf(b, req.tokens, req.microUsd), holdExpiry(b, req));
    const out = await this.redis.tiergateAdmit(keys.length, ...keys, ...args);
    const counted = out.slice(2).map(Number);
    if (out[0] === 0) return { admitted: false, counted, denied: Number(out[1]) - 1, budgetWarning: 'none' };
    return { admitted: true, counted, denied: undefined, budgetWarning: out[1] === 2 ? 'first' : out[1] === 1 ? 'over' : 'none' };
  }

  private async release(id: string, buckets: readonly Bucket[]): Promise<void> {
    const keys = keysOf(buckets);
    await this.redis.tiergateRelease(keys.length, ...keys, id, ...buckets.map(unitArg));
  }

  private ready(): Promise<void> | void {
    return whenReady(this.redis, this.opts.connectTimeoutMs, 'redis budget store');
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/**
 * Buckets grouped by hash tag, each with its buckets' positions in the request. A group holding the daily
 * budget goes last: its once-a-day warning flag is then only ever set by a request that was admitted.
 */
function slotGroups(buckets: readonly Bucket[]): Array<{ buckets: Bucket[]; index: number[] }> {
  const byTag = new Map<string, { buckets: Bucket[]; index: number[] }>();
  buckets.forEach((b, i) => {
    const tag = hashTag(b.key);
    let g = byTag.get(tag);
    if (!g) byTag.set(tag, (g = { buckets: [], index: [] }));
    g.buckets.push(b);
    g.index.push(i);
  });
  const hasDay = (g: { buckets: Bucket[] }) => g.buckets.some(isBudget);
  return [...byTag.values()].sort((a, b) => Number(hasDay(a)) - Number(hasDay(b)));
}

/** A bucket's unit as the scripts take it. */
function unitArg(b: Bucket): 'r' | 't' | 'c' {
  return b.unit === 'requests' ? 'r' : b.unit === 'concurrent' ? 'c' : 't';
}

/** The sorted set shares the hash's key (and so its hash tag and Cluster slot). */
function keysOf(buckets: readonly Bucket[]): string[] {
  const keys: string[] = [];
  for (const b of buckets) keys.push(b.key, `${b.key}:holds`);
  return keys;
}
