// One contract for both budget stores (memory, Redis): all-or-nothing admission, reservations that reconcile
// to actual usage or expire on their own, the once-a-day budget warning, and exact limits under concurrency.
import { beforeAll, describe, expect, it } from 'vitest';
import type { AdmitRequest, AdmitResult, Bucket, BudgetStore } from '../../src/stores/budget-store.js';
import { MemoryBudgetStore } from '../../src/stores/memory/budget-store.js';
import { RedisBudgetStore } from '../../src/stores/redis/budget-store.js';
import { redisAndClusterForFile } from '../helpers/redis-server.js';

const servers = redisAndClusterForFile();

const makers: Record<string, () => BudgetStore> = {
  memory: () => new MemoryBudgetStore(),
  // Generous timeouts here: this suite is about semantics, not about failing fast (tested elsewhere).
  redis: () => new RedisBudgetStore({ url: servers.redis.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000 }),
  // Each bucket below has a hash tag of its own, so a request over several buckets takes the per-slot path.
  'redis cluster': () => new RedisBudgetStore({ url: servers.cluster.url, cluster: true, connectTimeoutMs: 1000, commandTimeoutMs: 1000 }),
};

// Real time as the base, as in production (expiry is a time to live from `now`: see the last test).
const T0 = Date.now();
let n = 0;
function bucket(over: Partial<Bucket> = {}): Bucket {
  return { key: `test:{t:x${n++}}:b`, code: 'tokens_per_minute', unit: 'tokens', limit: 100, resetAt: T0 + 60_000, expireAt: T0 + 180_000, ...over };
}
let ids = 0;
function req(buckets: Bucket[], tokens: number, over: Partial<AdmitRequest> = {}): AdmitRequest {
  return { id: `req-${ids++}`, now: T0, tokens, buckets, reservationExpiresAt: T0 + 30_000, warnAt: 0.8, ...over };
}

describe.each(Object.keys(makers))('budget store contract: %s', (kind) => {
  let store: BudgetStore;
  beforeAll(() => {
    store = (makers[kind] as () => BudgetStore)();
    servers.beforeDown(() => store.close());
  });
  const admit = async (r: AdmitRequest): Promise<AdmitResult> => store.admit(r);

  it('counts requests one each and refuses the one past the limit, naming the bucket', async () => {
    const rpm = bucket({ code: 'requests_per_minute', unit: 'requests', limit: 3 });
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await admit(req([rpm], 500)));
    expect(results.map((r) => r.admitted)).toEqual([true, true, true, false]);
    expect(results.map((r) => r.counted[0])).toEqual([1, 2, 3, 3]);
    expect(results[3]?.denied).toBe(0);
  });

  it('is all or nothing: a full bucket leaves every other bucket untouched', async () => {
    const a = bucket({ limit: 1000 });
    const full = bucket({ limit: 50 });
    const refused = await admit(req([a, full], 60));
    expect(refused).toMatchObject({ admitted: false, denied: 1, counted: [0, 0] });
    const alone = await admit(req([a], 60));
    expect(alone.counted).toEqual([60]); // nothing was reserved in `a` by the refused request
  });

  it('reserves tokens, then reconciles the reservation to the actual usage', async () => {
    const b = bucket({ limit: 100 });
    const first = req([b], 60);
    expect((await admit(first)).admitted).toBe(true);
    expect((await admit(req([b], 60))).admitted).toBe(false); // 60 reserved + 60 > 100
    await store.reconcile(first.id, [b], 10, T0);
    const second = await admit(req([b], 60));
    expect(second).toMatchObject({ admitted: true, counted: [70] }); // 10 used + 60 reserved
  });

  it('a reconcile is counted once: run again (a retry after a timeout that had reached the store), it counts nothing', async () => {
    const b = bucket({ limit: 100 });
    await store.reconcile('never-admitted', [b], 30, T0); // the bucket does not exist yet: nothing to count into
    const r1 = req([b], 20);
    await admit(r1);
    await store.reconcile(r1.id, [b], 25, T0);
    await store.reconcile(r1.id, [b], 25, T0); // before: counted again, 50
    await store.reconcile('not-held-here', [b], 5, T0);
    expect((await admit(req([b], 0))).counted).toEqual([25]);
  });

  it('the reconcile of a reservation that expired first still counts what it spent, once', async () => {
    const b = bucket({ limit: 100 });
    const r1 = req([b], 60, { reservationExpiresAt: T0 + 1000 });
    await admit(r1);
    expect((await admit(req([b], 0, { now: T0 + 1000 }))).counted).toEqual([0]); // expired: freed
    await store.reconcile(r1.id, [b], 15, T0 + 2000);
    await store.reconcile(r1.id, [b], 15, T0 + 2000);
    expect((await admit(req([b], 0, { now: T0 + 2000 }))).counted).toEqual([15]);
  });

  it('a reservation never reconciled frees itself when it expires (a stream whose process died)', async () => {
    const b = bucket({ limit: 100 });
    expect((await admit(req([b], 90, { reservationExpiresAt: T0 + 1000 }))).admitted).toBe(true);
    expect((await admit(req([b], 20, { now: T0 + 999 }))).admitted).toBe(false);
    expect(await admit(req([b], 20, { now: T0 + 1000 }))).toMatchObject({ admitted: true, counted: [20] });
  });

  it('warns from the warn share of a daily budget, and says "first" exactly once', async () => {
    const day = bucket({ code: 'daily_token_budget', limit: 1000 });
    const seen = [];
    for (const tokens of [500, 200, 100, 100, 50]) seen.push((await admit(req([day], tokens))).budgetWarning);
    expect(seen).toEqual(['none', 'none', 'first', 'over', 'over']);
  });

  it('each bucket counts its own amount: tokens in a token bucket, micro-dollars in a cost bucket, reserved and reconciled apart', async () => {
    const tokens = bucket({ limit: 10_000 });
    const cost = bucket({ code: 'daily_cost_budget', unit: 'usd', limit: 5_000 });
    const first = req([tokens, cost], 1_000, { microUsd: 3_000 });
    expect(await admit(first)).toMatchObject({ admitted: true, counted: [1_000, 3_000] });
    // Room for the tokens, not for the money: refused by the cost bucket, and nothing reserved in either.
    expect(await admit(req([tokens, cost], 1_000, { microUsd: 2_500 }))).toMatchObject({ admitted: false, denied: 1, counted: [1_000, 3_000] });
    await store.reconcile(first.id, [tokens, cost], 400, T0, 1_200);
    expect(await admit(req([tokens, cost], 100, { microUsd: 2_500 }))).toMatchObject({ admitted: true, counted: [500, 3_700] });
  });

  it('a daily cost budget warns like the daily token budget', async () => {
    const day = bucket({ code: 'daily_cost_budget', unit: 'usd', limit: 1_000_000 });
    const seen = [];
    for (const micro of [500_000, 200_000, 100_000, 100_000]) seen.push((await admit(req([day], 10, { microUsd: micro }))).budgetWarning);
    expect(seen).toEqual(['none', 'none', 'first', 'over']);
  });

  it('peek reads what admission would count, counts nothing itself, and leaves expired reservations out', async () => {
    const rpm = bucket({ code: 'requests_per_minute', unit: 'requests', limit: 10 });
    const tokens = bucket({ limit: 1_000 });
    const never = bucket({ limit: 5 });
    // Reservations expire in the order they were made (one TTL for all, as in production).
    await admit(req([rpm, tokens], 200, { reservationExpiresAt: T0 + 1000 }));
    await admit(req([rpm, tokens], 300));
    expect(await store.peek([rpm, tokens, never], T0)).toEqual([2, 500, 0]);
    expect(await store.peek([rpm, tokens, never], T0)).toEqual([2, 500, 0]); // peeking twice counts nothing
    expect(await store.peek([rpm, tokens], T0 + 1000)).toEqual([2, 300]); // the short reservation expired
    expect((await admit(req([rpm, tokens], 0, { now: T0 + 1000 }))).counted).toEqual([3, 300]);
  });

  it.each([false, true])('with several budgets, "first" when any of them is crossed for the first time (reversed list: %s)', async (reversed) => {
    const cost = bucket({ code: 'daily_cost_budget', unit: 'usd', limit: 1_000 });
    const tokens = bucket({ code: 'daily_token_budget', limit: 1_000 });
    const list = reversed ? [cost, tokens] : [tokens, cost];
    expect((await admit(req(list, 900, { microUsd: 100 }))).budgetWarning).toBe('first'); // tokens crossed
    expect((await admit(req(list, 10, { microUsd: 800 }))).budgetWarning).toBe('first'); // now cost too
    expect((await admit(req(list, 10, { microUsd: 10 }))).budgetWarning).toBe('over');
  });

  it('a request refused by another bucket never spends the once-a-day warning: the next admitted crossing still gets "first"', async () => {
    // The tenant's buckets (its requests per minute, its daily tokens) share a hash tag, the gateway-wide one has
    // its own: in a Cluster, two scripts. The tenant's group holds the daily budget, so it is asked last; asked
    // first, it would set its warning flag for a request the gateway-wide bucket then refused, and the request
    // that really crossed 80% would hear "over" and never "first".
    const tag = `{t:w${n++}}`;
    const rpm = bucket({ key: `test:${tag}:rpm`, code: 'requests_per_minute', unit: 'requests', limit: 100 });
    const day = bucket({ key: `test:${tag}:day`, code: 'daily_token_budget', limit: 1_000 });
    const global = bucket({ key: `test:{shared${n++}}:g`, code: 'global_tokens_per_minute', limit: 1_000 });
    expect((await admit(req([global], 950))).admitted).toBe(true);
    expect(await admit(req([rpm, day, global], 900))).toMatchObject({ admitted: false, denied: 2, counted: [0, 0, 950], budgetWarning: 'none' });
    expect(await admit(req([rpm, day], 850))).toMatchObject({ admitted: true, counted: [1, 850], budgetWarning: 'first' });
  });

  it('an admission that reserves nothing still opens its window: what the request spent is counted (embeddings under a cost budget)', async () => {
    // Before, Redis created no counter for a zero reservation, so the reconcile found no window and dropped the
    // cost: a tenant whose window began with an embeddings request (or that sent only those) spent unseen.
    const cost = bucket({ code: 'daily_cost_budget', unit: 'usd', limit: 1_000_000 });
    const r = req([cost], 0, { microUsd: 0 });
    expect((await admit(r)).admitted).toBe(true);
    await store.reconcile(r.id, [cost], 0, T0, 500);
    expect(await store.peek([cost], T0)).toEqual([500]);
  });

  it('a refusal names the first full bucket in the request\'s order and reports every bucket, whichever slot is asked first', async () => {
    // A tenant's daily cost budget and the gateway-wide tokens per minute, in two hash tags (two Cluster slots,
    // the calendar budget's asked last): both are full, so the answer is the one the request lists first.
    const cost = bucket({ key: `test:{t:y${n++}}:cost`, code: 'daily_cost_budget', unit: 'usd', limit: 1_000 });
    const global = bucket({ key: `test:{shared${n++}}:g`, code: 'global_tokens_per_minute', limit: 100 });
    expect((await admit(req([cost, global], 90, { microUsd: 900 }))).admitted).toBe(true);
    expect(await admit(req([cost, global], 20, { microUsd: 200 }))).toMatchObject({ admitted: false, denied: 0, counted: [900, 90] });
    expect(await admit(req([global, cost], 20, { microUsd: 200 }))).toMatchObject({ admitted: false, denied: 0, counted: [90, 900] });
  });

  it('a reservation that expires before an older one (budgets.reservationTtlMs shortened by a reload) frees itself on time', async () => {
    // The memory store swept reservations in the order they were made, stopping at the first live one: one made
    // under the old, longer TTL kept every later, shorter one counted until it expired itself.
    const b = bucket({ limit: 100 });
    await admit(req([b], 30, { reservationExpiresAt: T0 + 60_000 }));
    await admit(req([b], 40, { reservationExpiresAt: T0 + 1_000 }));
    await admit(req([b], 20, { reservationExpiresAt: T0 + 1_000 }));
    expect((await admit(req([b], 0, { now: T0 + 999 }))).counted).toEqual([90]);
    expect((await admit(req([b], 0, { now: T0 + 1_000 }))).counted).toEqual([30]);
    expect(await store.peek([b], T0 + 1_000)).toEqual([30]);
    // Back in order (one TTL again), the usual sweep: the next short one expires on time too.
    await admit(req([b], 10, { now: T0 + 1_000, reservationExpiresAt: T0 + 2_000 }));
    expect((await admit(req([b], 0, { now: T0 + 2_000 }))).counted).toEqual([30]);
  });

  const slots = (limit: number, over: Partial<Bucket> = {}) => bucket({ code: 'concurrent_requests', unit: 'concurrent', limit, ...over });

  it('concurrent requests: one slot each while held; a release frees it and counts nothing as used', async () => {
    const b = slots(2);
    const tokens = bucket({ limit: 1_000 });
    const first = req([tokens, b], 100);
    expect(await admit(first)).toMatchObject({ admitted: true, counted: [100, 1] });
    expect(await admit(req([tokens, b], 100))).toMatchObject({ admitted: true, counted: [200, 2] });
    // Every slot held: refused, naming the slots, and the token bucket keeps nothing of it.
    expect(await admit(req([tokens, b], 100))).toMatchObject({ admitted: false, denied: 1, counted: [200, 2] });
    await store.reconcile(first.id, [b], 0, T0);
    await store.reconcile(first.id, [b], 0, T0); // twice: still one slot freed
    expect(await store.peek([tokens, b], T0)).toEqual([200, 1]);
    expect(await admit(req([b], 0))).toMatchObject({ admitted: true, counted: [2] });
  });

  it("a slot's lease frees it unless renewed; a released or run-out one is not brought back by a renewal", async () => {
    const b = slots(3);
    const lease = { leaseExpiresAt: T0 + 1_000 };
    const [kept, released, lapsed] = [req([b], 0, lease), req([b], 0, lease), req([b], 0, { leaseExpiresAt: T0 + 500 })];
    for (const r of [kept, released, lapsed]) expect((await admit(r)).admitted).toBe(true);
    await store.reconcile(released.id, [b], 0, T0);
    expect(await store.peek([b], T0 + 600)).toEqual([1]); // lapsed ran out at T0 + 500
    await store.renew(b, [kept.id, released.id, lapsed.id], T0 + 5_000, T0 + 600);
    expect(await store.peek([b], T0 + 1_000)).toEqual([1]); // kept, renewed past its first lease
    expect(await store.peek([b], T0 + 4_999)).toEqual([1]);
    expect(await store.peek([b], T0 + 5_000)).toEqual([0]); // a process that stopped renewing: its slots come back
    // The lease is not the token reservation's TTL: a token hold of the same request lasts its own time.
    const tokens = bucket({ limit: 1_000 });
    expect((await admit(req([tokens, b], 50, { now: T0 + 5_000, reservationExpiresAt: T0 + 60_000, leaseExpiresAt: T0 + 6_000 }))).admitted).toBe(true);
    expect(await store.peek([tokens, b], T0 + 6_000)).toEqual([50, 0]);
  });

  // A concurrent bucket has no window: its counter lives while admissions and renewals come. Were it cut to an
  // earlier admission's expiry, the slots still held would be forgotten and more requests run than the limit.
  it('a concurrent counter lives as long as its latest admission or renewal asks, never shortened by a shorter one', async () => {
    const b = slots(5, { expireAt: T0 + 1_000 });
    const held = { leaseExpiresAt: T0 + 60_000 };
    const a = req([b], 0, held);
    const later = req([{ ...b, expireAt: T0 + 5_000 }], 0, { ...held, now: T0 + 500 });
    const shorter = req([{ ...b, expireAt: T0 + 3_000 }], 0, { ...held, now: T0 + 600 });
    for (const r of [a, later, shorter]) expect((await admit(r)).admitted).toBe(true);
    expect(await store.peek([b], T0 + 2_000)).toEqual([3]); // past the first admission's expiry
    expect(await store.peek([b], T0 + 4_000)).toEqual([3]); // past the shorter one's
    await store.renew({ ...b, expireAt: T0 + 20_000 }, [a.id, later.id, shorter.id], T0 + 60_000, T0 + 4_000);
    expect(await store.peek([b], T0 + 10_000)).toEqual([3]); // past the admissions' expiries: the renewal's holds
    expect((await admit(req([b], 0, { ...held, now: T0 + 10_000 }))).counted).toEqual([4]);
  });

  it('500 concurrent requests against a limit of 100: exactly 100 admitted', async () => {
    const rpm = bucket({ code: 'requests_per_minute', unit: 'requests', limit: 100 });
    const results = await Promise.all(Array.from({ length: 500 }, () => admit(req([rpm], 0))));
    expect(results.filter((r) => r.admitted)).toHaveLength(100);
  });

  it('concurrent requests over two buckets in different slots: admitted only when both had room, nothing left behind', async () => {
    const tokens = bucket({ limit: 100_000 });
    const requests = bucket({ code: 'requests_per_minute', unit: 'requests', limit: 50 });
    const results = await Promise.all(Array.from({ length: 200 }, () => admit(req([tokens, requests], 10))));
    const admitted = results.filter((r) => r.admitted).length;
    expect(admitted).toBe(50);
    // The refused ones reserved nothing that stayed: only the admitted requests' tokens are held.
    expect((await admit(req([tokens], 0))).counted).toEqual([10 * admitted]);
  });

  it('concurrent token reservations never overshoot: admitted reservations fit in the budget', async () => {
    const day = bucket({ code: 'daily_token_budget', limit: 10_000 });
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => admit(req([day], 100 + (i % 7) * 37))));
    const admittedTokens = results.map((r, i) => (r.admitted ? 100 + (i % 7) * 37 : 0)).reduce((a, b) => a + b, 0);
    expect(admittedTokens).toBeLessThanOrEqual(10_000);
    expect(admittedTokens).toBeGreaterThan(10_000 - 100 - 6 * 37); // it filled up: only the last ones did not fit
    expect((await admit(req([day], 0))).counted).toEqual([admittedTokens]);
  });
});

/** A Redis budget store and a plain client on the same server, to read what the store left there. */
async function storeAndProbe(): Promise<{ store: RedisBudgetStore; probe: import('ioredis').Redis }> {
  const { Redis } = await import('ioredis');
  const store = new RedisBudgetStore({ url: servers.redis.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000 });
  const probe = new Redis(servers.redis.url);
  servers.beforeDown(async () => {
    await store.close();
    probe.disconnect();
  });
  return { store, probe };
}

describe('Redis budget store: a concurrent-requests counter', () => {
  it('lives on while admissions and renewals come, never shortened, and leaves no mark of a lease that ran out', async () => {
    const { store, probe } = await storeAndProbe();
    const b = bucket({ code: 'concurrent_requests', unit: 'concurrent', limit: 5, expireAt: T0 + 120_000 });
    expect((await store.admit(req([b], 0, { leaseExpiresAt: T0 + 500 }))).admitted).toBe(true);
    // A later admission whose counter TTL is shorter (a reload that shortened the lease) does not cut it.
    expect((await store.admit(req([{ ...b, expireAt: T0 + 10_000 }], 0, { leaseExpiresAt: T0 + 60_000 }))).admitted).toBe(true);
    for (const key of [b.key, `${b.key}:holds`]) expect(await probe.pttl(key)).toBeGreaterThan(100_000);
    // A renewal moves it further.
    await store.renew({ ...b, expireAt: T0 + 300_000 }, [], T0 + 90_000, T0); // no ids: nothing to do, not even the TTL
    expect(await probe.pttl(b.key)).toBeLessThanOrEqual(120_000);
    await store.renew({ ...b, expireAt: T0 + 300_000 }, ['nobody'], T0 + 90_000, T0);
    // To the renewal's expiry, measured from its `now`: no further.
    expect(await probe.pttl(b.key)).toBeGreaterThan(280_000);
    expect(await probe.pttl(b.key)).toBeLessThanOrEqual(300_000);
    // The first lease runs out: swept, and no x: mark is left (a slot's reconcile counts nothing to keep it for).
    expect(await store.peek([b], T0 + 1_000)).toEqual([1]);
    expect((await probe.hkeys(b.key)).filter((k) => k.startsWith('x:'))).toEqual([]);
  });
});

describe('Redis budget store and clocks', () => {
  it("expiry is a time to live from tiergate's clock, not a moment on Redis's: a clock 10 days behind still limits", async () => {
    const { store, probe } = await storeAndProbe();
    // tiergate's clock 10 days behind Redis's (or a test's fake clock): an absolute expiry would be in the past
    // for Redis, the keys would vanish at once and every request would be admitted.
    const behind = T0 - 10 * 86_400_000;
    const rpm = bucket({ code: 'requests_per_minute', unit: 'requests', limit: 2, resetAt: behind + 60_000, expireAt: behind + 180_000 });
    const at = (r: AdmitRequest) => ({ ...r, now: behind, reservationExpiresAt: behind + 30_000 });
    const admitted = [];
    for (let i = 0; i < 3; i++) admitted.push((await store.admit(at(req([rpm], 0)))).admitted);
    expect(admitted).toEqual([true, true, false]);
    const ttl = await probe.pttl(rpm.key);
    expect(ttl).toBeGreaterThan(170_000);
    expect(ttl).toBeLessThanOrEqual(180_000);
  });
});
