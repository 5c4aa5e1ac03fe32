// The budget stores side by side on generated histories: the same sequence of admissions, reconciles, peeks
// and time passing goes to the memory store, to Redis and to Redis Cluster, and every answer must be the same
// (admitted or not, which bucket refused, what each bucket counts, the budget warning). The contract suite
// states the rules case by case; this finds the sequences nobody wrote down. fast-check shrinks a
// disagreement to the shortest history that shows it.
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Bucket, BudgetStore } from '../../src/stores/budget-store.js';
import { MemoryBudgetStore } from '../../src/stores/memory/budget-store.js';
import { RedisBudgetStore } from '../../src/stores/redis/budget-store.js';
import { redisAndClusterForFile } from '../helpers/redis-server.js';
import { fuzzRuns, fuzzTimeout, sameOnAll } from '../helpers/generated.js';

const servers = redisAndClusterForFile();

type Op =
  | { op: 'admit'; buckets: number[]; tokens: number; microUsd: number; ttl: number; lease: number }
  | { op: 'reconcile'; which: number; tokens: number; microUsd: number }
  | { op: 'renew'; every: number; lease: number }
  | { op: 'peek' }
  | { op: 'wait'; ms: number };

/**
 * Six limits laid out as tiergate lays them out: a tenant's five share its hash tag, the gateway-wide one has
 * its own (on the Cluster, two slots: the per-slot path). Each history has keys of its own.
 */
const KINDS: ReadonlyArray<Omit<Bucket, 'key' | 'resetAt' | 'expireAt'> & { tag: 'tenant' | 'shared' }> = [
  { code: 'requests_per_minute', unit: 'requests', limit: 4, tag: 'tenant' },
  { code: 'tokens_per_minute', unit: 'tokens', limit: 1_000, tag: 'tenant' },
  { code: 'daily_token_budget', unit: 'tokens', limit: 2_000, tag: 'tenant' },
  { code: 'daily_cost_budget', unit: 'usd', limit: 50_000, tag: 'tenant' },
  { code: 'global_tokens_per_minute', unit: 'tokens', limit: 1_500, tag: 'shared' },
  { code: 'concurrent_requests', unit: 'concurrent', limit: 2, tag: 'tenant' },
];

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('admit' as const),
      buckets: fc.subarray([0, 1, 2, 3, 4, 5], { minLength: 1 }),
      tokens: fc.oneof(fc.integer({ min: 0, max: 1_200 }), fc.constant(0)),
      microUsd: fc.integer({ min: 0, max: 30_000 }),
      ttl: fc.constantFrom(500, 5_000, 60_000),
      lease: fc.constantFrom(300, 3_000, 60_000),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('renew' as const), every: fc.integer({ min: 1, max: 3 }), lease: fc.constantFrom(300, 3_000, 60_000) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('reconcile' as const), which: fc.nat(20), tokens: fc.integer({ min: 0, max: 1_500 }), microUsd: fc.integer({ min: 0, max: 40_000 }) }) },
  { weight: 1, arbitrary: fc.constant<Op>({ op: 'peek' }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('wait' as const), ms: fc.constantFrom(100, 600, 6_000) }) },
);

/**
 * Runs one history on a store; every answer, in order, as plain data to compare. Each admission has its own
 * reservation TTL: in tiergate they share budgets.reservationTtlMs, until a reload changes it.
 */
async function play(store: BudgetStore, ops: readonly Op[], history: number): Promise<unknown[]> {
  // Real time as the base, as in production: Redis expires counters by a time to live from `now`.
  const t0 = Date.now();
  let now = t0;
  const buckets: Bucket[] = KINDS.map(({ tag, ...k }, i) => ({ ...k, key: `model:{h${history}${tag}}:${i}`, resetAt: t0 + 3_600_000, expireAt: t0 + 7_200_000 }));
  const admitted: Array<{ id: string; buckets: Bucket[] }> = [];
  const out: unknown[] = [];
  let ids = 0;
  for (const o of ops) {
    if (o.op === 'wait') {
      now += o.ms;
      continue;
    }
    if (o.op === 'peek') {
      out.push(['peek', await store.peek(buckets, now)]);
      continue;
    }
    if (o.op === 'admit') {
      const list = o.buckets.map((i) => buckets[i] as Bucket);
      const id = `r${ids++}`;
      const r = await store.admit({ id, now, tokens: o.tokens, microUsd: o.microUsd, buckets: list, reservationExpiresAt: now + o.ttl, leaseExpiresAt: now + o.lease, warnAt: 0.8 });
      if (r.admitted) admitted.push({ id, buckets: list.filter((b) => b.unit !== 'requests') });
      out.push(['admit', r.admitted, r.denied ?? null, r.counted, r.budgetWarning, r.denied === undefined ? null : list[r.denied]?.code]);
      continue;
    }
    if (o.op === 'renew') {
      // Some of the requests admitted with a slot, released or not, lease run out or not: only held ones renew.
      const slot = buckets[5] as Bucket;
      const ids = admitted.filter((a, i) => a.buckets.includes(slot) && i % o.every === 0).map((a) => a.id);
      await store.renew(slot, ids, now + o.lease, now);
      out.push(['renew', ids.length]);
      continue;
    }
    // A reconcile of an admitted request: once as tiergate does, or again, or after its reservation expired.
    // (tiergate reconciles only what it admitted, into the buckets it admitted it to.)
    const target = admitted[o.which % Math.max(1, admitted.length)];
    if (!target) continue;
    await store.reconcile(target.id, target.buckets, o.tokens, now, o.microUsd);
    out.push(['reconcile', target.id]);
  }
  out.push(['end', await store.peek(buckets, now)]);
  return out;
}

describe('budget stores agree on generated histories (fast-check)', () => {
  const stores: Record<string, BudgetStore> = {};
  beforeAll(() => {
    stores.memory = new MemoryBudgetStore();
    stores.redis = new RedisBudgetStore({ url: servers.redis.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000 });
    stores.cluster = new RedisBudgetStore({ url: servers.cluster.url, cluster: true, connectTimeoutMs: 1000, commandTimeoutMs: 1000 });
    for (const s of Object.values(stores)) servers.beforeDown(() => s.close());
  });

  it('memory, Redis and Redis Cluster give the same answer to every step of any history', async () => {
    let refused = 0;
    let warned = 0;
    let slotsFull = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25, size: 'max' }), async (ops) => {
        const memory = await sameOnAll(stores.memory as BudgetStore, [stores.redis as BudgetStore, stores.cluster as BudgetStore], ops, play);
        for (const step of memory as unknown[][]) {
          if (step[0] === 'admit' && step[1] === false) refused++;
          if (step[0] === 'admit' && step[4] !== 'none') warned++;
          if (step[0] === 'admit' && step[5] === 'concurrent_requests') slotsFull++;
        }
      }),
      { numRuns: fuzzRuns(150) },
    );
    console.log(`budget histories: ${refused} refusals (${slotsFull} with every slot held), ${warned} warnings`);
    // The histories reach the limits and the warning share, so the agreement covers refusals and warnings.
    expect(refused).toBeGreaterThan(20);
    expect(warned).toBeGreaterThan(5);
    expect(slotsFull).toBeGreaterThan(5);
  }, fuzzTimeout(150, 120_000));
});
