// The budget service's own rules, below the request pipeline: which refusals count against a tenant's minute,
// what a request that reserves no tokens is held by, what a reconcile counts when the cost is unknown, what an
// admission made while the shared store was away leaves behind, and the slots' leases while the store is down.
// The integration suites (budgets, budget-outage) drive the same service through requests; a mutation run on
// budgets.ts showed these rules were reached there but never decided a test (README "Mutation testing").
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Budgets, type Admission, type AdmitOutcome, type AdmitQuery } from '../../src/budget/budgets.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { TiergateError, type ErrorName } from '../../src/errors.js';
import type { AdmitRequest, AdmitResult, Bucket, BudgetStore } from '../../src/stores/budget-store.js';
import { MemoryBudgetStore } from '../../src/stores/memory/budget-store.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { captureLogger, metricValue, runtimeFor } from '../helpers/tiergate.js';

const NOW = Date.parse('2026-12-04T12:00:30Z');

/** A shared (Redis-kind) store over a memory one, whose calls can be made to fail, and which records them. */
class SharedStore implements BudgetStore {
  readonly kind = 'redis';
  readonly inner = new MemoryBudgetStore();
  down = false;
  reconciles: Array<{ id: string; codes: string[]; tokens: number }> = [];
  renewals: string[][] = [];
  async admit(req: AdmitRequest): Promise<AdmitResult> {
    if (this.down) throw new Error('store away');
    return this.inner.admit(req);
  }
  async reconcile(id: string, buckets: readonly Bucket[], tokens: number, now: number, microUsd?: number): Promise<void> {
    if (this.down) throw new Error('store away');
    this.reconciles.push({ id, codes: buckets.map((b) => b.code), tokens });
    this.inner.reconcile(id, buckets, tokens, now, microUsd);
  }
  async peek(buckets: readonly Bucket[], now: number): Promise<number[]> {
    return this.inner.peek(buckets, now);
  }
  async renew(bucket: Bucket, ids: readonly string[], leaseExpiresAt: number, now: number): Promise<void> {
    if (this.down) throw new Error('store away');
    this.renewals.push([...ids]);
    this.inner.renew(bucket, ids, leaseExpiresAt, now);
  }
  async close(): Promise<void> {}
}

function setup(input: ConfigInput, store: BudgetStore = new MemoryBudgetStore(), now: () => number = () => NOW) {
  const rt = runtimeFor(input);
  const metrics = createMetrics();
  const { log, logs } = captureLogger();
  const budgets = new Budgets(store, metrics, log, now);
  const policy = rt.tenants.policyFor('acme');
  const admit = async (q: Partial<AdmitQuery> = {}): Promise<AdmitOutcome> => budgets.admit(rt, { id: `r${ids++}`, policy, tier: 'weak', tokens: 10, ...q });
  const admitted = async (q: Partial<AdmitQuery> = {}): Promise<Admission> => {
    const o = await admit(q);
    if (!('admitted' in o) || !o.admitted) throw new Error(`not admitted: ${JSON.stringify(o)}`);
    return o.admitted;
  };
  const used = async (code: string) => (await budgets.status(rt, 'acme')).find((l) => l.code === code)?.used;
  const decisions = (labels: Record<string, string>) => metricValue({ metrics }, 'tiergate_budget_decisions_total', labels);
  return { rt, budgets, policy, admit, admitted, used, decisions, metrics, logs };
}
let ids = 0;

const codeOf = (o: AdmitOutcome) => ('error' in o ? o.error.entry.code : 'admitted');
const settled = () => new Promise((r) => setImmediate(r));

afterEach(() => vi.useRealTimers());

describe('refusals that count against the requests per minute', () => {
  const counts: Array<[ErrorName, boolean, boolean]> = [
    // [the refusal, already admitted, counted]
    ['invalid_json', false, true],
    ['model_not_allowed', false, true],
    ['model_not_found', false, true],
    ['request_too_large', false, true],
    ['unsupported_content_encoding', false, true],
    // No tenant to count it against, a limit's own refusal (admission is all or nothing), the gateway's failures.
    ['invalid_api_key', false, false],
    ['tokens_per_minute', false, false],
    ['internal_error', false, false],
    ['dependency_unavailable', false, false],
    // Counted once already, when it was admitted.
    ['invalid_json', true, false],
  ];
  it.each(counts)('%s (admitted before: %s): counted %s', async (name, wasAdmitted, counted) => {
    const { rt, budgets, policy, used } = setup({ tenants: { '*': { requestsPerMinute: 5 } } });
    const err = new TiergateError(name, 'refused', null);
    const answer = await budgets.countRefused(rt, policy, err, wasAdmitted);
    expect(await used('requests_per_minute')).toBe(counted ? 1 : 0);
    // The client's own error stands, with the minute's headers when it was counted.
    expect(answer.entry.code).toBe(err.entry.code);
    expect(answer.extraHeaders.some(([k]) => k === 'x-ratelimit-remaining-requests')).toBe(counted);
  });

  it('once the minute is full, a refusal answers the 429 it now is', async () => {
    const { rt, budgets, policy, admit } = setup({ tenants: { '*': { requestsPerMinute: 1 } } });
    expect(codeOf(await admit())).toBe('admitted');
    const answer = await budgets.countRefused(rt, policy, new TiergateError('invalid_json', 'bad', null), false);
    expect([answer.entry.status, answer.entry.code]).toEqual([429, 'requests_per_minute']);
  });

  it('a spent token or cost budget does not turn a refusal into a 429: a refusal reserves no tokens', async () => {
    const { rt, budgets, policy, admitted } = setup({ tenants: { '*': { requestsPerMinute: 5, tokensPerMinute: 100, dailyCostBudgetUsd: 0.01 } } });
    // Spent past both: the response used more than the request reserved.
    budgets.reconcile(await admitted({ tokens: 50, microUsd: 100 }), 500, 50_000);
    const answer = await budgets.countRefused(rt, policy, new TiergateError('invalid_json', 'bad', null), false);
    expect(answer.entry.code).toBe('invalid_json');
  });
});

describe('what a request that reserves no tokens is held by', () => {
  const SPENT: ConfigInput = { tenants: { '*': { requestsPerMinute: 5, tokensPerMinute: 100, dailyCostBudgetUsd: 0.01 } } };

  it('requests only: admitted while its tokens and dollars are spent', async () => {
    const { budgets, admit, admitted, used } = setup(SPENT);
    budgets.reconcile(await admitted({ tokens: 50, microUsd: 100 }), 500, 50_000);
    expect(codeOf(await admit())).not.toBe('admitted');
    const o = await admit({ tokens: null });
    expect(codeOf(o)).toBe('admitted');
    // Nothing of it to settle: its reconcile sends nothing.
    expect((o as { admitted: Admission }).admitted.tokenBuckets).toEqual([]);
    // The first and this one; the refused one is not counted (admission is all or nothing).
    expect(await used('requests_per_minute')).toBe(2);
  });

  it('countCost: held by the cost budget (not the token ones), which its response is counted against', async () => {
    const { budgets, admit, admitted, used } = setup(SPENT);
    const a = await admitted({ tokens: null, countCost: true });
    expect(a.tokenBuckets.map((b) => b.code)).toEqual(['daily_cost_budget']);
    budgets.reconcile(a, 0, 50_000);
    expect(await used('daily_cost_budget')).toBeCloseTo(0.05, 9);
    expect(codeOf(await admit({ tokens: null, countCost: true }))).toBe('daily_cost_budget');
    expect(codeOf(await admit({ tokens: null }))).toBe('admitted');
  });
});

describe('what an admission holds and settles', () => {
  it('its token and cost buckets are what a reconcile settles; its slot is apart, freed once when the stream ends', async () => {
    const store = new MemoryBudgetStore();
    const settle = vi.spyOn(store, 'reconcile');
    const { budgets, admitted, used } = setup({ tenants: { '*': { requestsPerMinute: 5, tokensPerMinute: 1000, dailyCostBudgetUsd: 1, maxConcurrentRequests: 2 } } }, store);
    const a = await admitted({ microUsd: 10, holdsBackend: true });
    expect(a.tokenBuckets.map((b) => b.code)).toEqual(['daily_cost_budget', 'tokens_per_minute']);
    expect(a.slot?.code).toBe('concurrent_requests');
    expect(await used('concurrent_requests')).toBe(1);
    budgets.streamEnded(a);
    budgets.streamEnded(a);
    expect(settle).toHaveBeenCalledTimes(1);
    expect(await used('concurrent_requests')).toBe(0);
    // Without a slot, the end of its stream sends nothing; an admission with no token buckets settles nothing.
    const b = await admitted({ tokens: null });
    budgets.streamEnded(b);
    budgets.reconcile(b, 10, 10);
    expect(settle).toHaveBeenCalledTimes(1);
  });

  it('an admission is reconciled once: the first call settles it (the response ends), a later one (its row) sends nothing', async () => {
    const store = new MemoryBudgetStore();
    const settle = vi.spyOn(store, 'reconcile');
    const { budgets, admitted, used } = setup({ tenants: { '*': { tokensPerMinute: 10_000 } } }, store);
    const a = await admitted({ tokens: 1000 });
    expect(a.reconciled).toBeUndefined();
    budgets.reconcile(a, 30, undefined);
    expect(a.reconciled).toBe(true);
    budgets.reconcile(a, 999, undefined);
    budgets.release(a);
    expect(settle).toHaveBeenCalledTimes(1);
    expect(await used('tokens_per_minute')).toBe(30);
  });

  it('a cost nobody knows (no price for the model that answered) counts what was reserved for it, not $0', async () => {
    const { budgets, admitted, used } = setup({ tenants: { '*': { dailyCostBudgetUsd: 1 } } });
    budgets.reconcile(await admitted({ tokens: 100, microUsd: 5000 }), 100, undefined);
    expect(await used('daily_cost_budget')).toBeCloseTo(0.005, 9);
  });

  it('decisions are counted by result and the limit that refused, whether the store or a known-full minute refused', async () => {
    const { admit, decisions } = setup({ tenants: { '*': { requestsPerMinute: 1, tokensPerMinute: 100 } } });
    expect(codeOf(await admit({ tokens: 500 }))).toBe('tokens_per_minute');
    await admit();
    // Refused on the minute known full, without asking the store.
    await admit();
    expect(await decisions({ result: 'admitted', code: '' })).toBe(1);
    expect(await decisions({ result: 'denied', code: 'tokens_per_minute' })).toBe(1);
    expect(await decisions({ result: 'denied', code: 'requests_per_minute' })).toBe(1);
  });
});

describe('while the shared store is away', () => {
  it('closed: 503 with retry-after, counted as store_unavailable', async () => {
    const store = new SharedStore();
    store.down = true;
    const { admit, decisions } = setup({ budgets: { onStoreFailure: 'closed' }, tenants: { '*': { requestsPerMinute: 5 } } }, store);
    const o = await admit();
    if (!('error' in o)) throw new Error('admitted');
    expect([o.error.entry.status, o.error.entry.code, o.error.message]).toEqual([503, 'dependency_unavailable', 'The budget service is temporarily unavailable. Please retry shortly.']);
    expect(o.error.extraHeaders).toContainEqual(['retry-after', '1']);
    expect(await decisions({ result: 'denied', code: 'store_unavailable' })).toBe(1);
  });

  it('open: a minute the local limiter filled is not taken for the shared one: once the store is back, it decides', async () => {
    let t = NOW;
    const store = new SharedStore();
    const { admit } = setup({ tenants: { '*': { requestsPerMinute: 2 } } }, store, () => t);
    store.down = true;
    expect([codeOf(await admit()), codeOf(await admit()), codeOf(await admit())]).toEqual(['admitted', 'admitted', 'requests_per_minute']);
    store.down = false;
    t += 2000; // past the breaker's cooldown: its trial
    // The shared minute has counted nothing: admitted, not refused on what one replica's share saw.
    expect(codeOf(await admit())).toBe('admitted');
  });

  it('an admission that failed frees what it may have reserved (tokens, cost and slot; not its request count), sent again once the store is back', async () => {
    let t = NOW;
    const store = new SharedStore();
    const { admit } = setup({ tenants: { '*': { requestsPerMinute: 5, tokensPerMinute: 1000, maxConcurrentRequests: 3 } } }, store, () => t);
    store.down = true;
    const o = await admit({ holdsBackend: true });
    expect(codeOf(o)).toBe('admitted'); // by the local limiter
    await settled();
    expect(store.reconciles).toEqual([]);
    store.down = false;
    t += 2000;
    await admit();
    await vi.waitFor(() => expect(store.reconciles.length).toBeGreaterThan(0));
    expect(store.reconciles[0]).toEqual({ id: expect.any(String), codes: ['tokens_per_minute', 'concurrent_requests'], tokens: 0 });
  });

  it('a tenant with only a requests limit has nothing to free after a failed admission', async () => {
    let t = NOW;
    const store = new SharedStore();
    const { admit } = setup({ tenants: { '*': { requestsPerMinute: 5 } } }, store, () => t);
    store.down = true;
    await admit();
    store.down = false;
    t += 2000;
    await admit();
    await settled();
    expect(store.reconciles).toEqual([]);
  });

  it('a reconcile that goes through ends the outage: the next admission asks the store, not the local limiter', async () => {
    const store = new SharedStore();
    const { budgets, admit, admitted, metrics } = setup({ budgets: { breaker: { failures: 1, cooldownMs: 60_000 } }, tenants: { '*': { tokensPerMinute: 1000 } } }, store);
    const a = await admitted();
    store.down = true;
    expect(codeOf(await admit())).toBe('admitted'); // the breaker opens
    expect(await metricValue({ metrics }, 'tiergate_budget_store_degraded')).toBe(1);
    store.down = false;
    budgets.reconcile(a, 10, 0);
    await vi.waitFor(async () => expect(await metricValue({ metrics }, 'tiergate_budget_store_degraded')).toBe(0));
    const o = await admit();
    expect('admitted' in o && o.admitted?.responseHeaders.some(([k]) => k === 'x-tiergate-degraded')).toBe(false);
  });
});

describe('slot leases', () => {
  const SLOTS: ConfigInput = { budgets: { concurrencyLeaseMs: 3000, breaker: { failures: 1, cooldownMs: 60_000 } }, tenants: { '*': { maxConcurrentRequests: 5 } } };

  it('are renewed every third of the lease; a renewal that fails is counted, and none is sent while the store is known down', async () => {
    vi.useFakeTimers({ now: NOW });
    const store = new SharedStore();
    const { admitted, admit, metrics, budgets } = setup(SLOTS, store, () => Date.now());
    const a = await admitted({ holdsBackend: true });
    await vi.advanceTimersByTimeAsync(1000);
    expect(store.renewals).toEqual([[a.id]]);
    store.down = true;
    await vi.advanceTimersByTimeAsync(1000);
    expect(await metricValue({ metrics }, 'tiergate_budget_store_failures_total', { op: 'renew' })).toBe(1);
    await admit({ holdsBackend: true }); // fails too: the breaker opens
    expect(await metricValue({ metrics }, 'tiergate_budget_store_degraded')).toBe(1);
    // Known down until the cooldown's trial: no renewal is sent, though the store would answer now.
    store.down = false;
    await vi.advanceTimersByTimeAsync(3000);
    expect(store.renewals).toEqual([[a.id]]);
    await budgets.close();
  });

  it('a renewal that goes through ends the outage', async () => {
    vi.useFakeTimers({ now: NOW });
    const store = new SharedStore();
    const { admitted, admit, metrics, budgets } = setup({ ...SLOTS, budgets: { concurrencyLeaseMs: 3000, breaker: { failures: 1, cooldownMs: 500 } } }, store, () => Date.now());
    await admitted({ holdsBackend: true });
    store.down = true;
    await admit({ holdsBackend: true }); // fails: the breaker opens
    expect(await metricValue({ metrics }, 'tiergate_budget_store_degraded')).toBe(1);
    store.down = false;
    await vi.advanceTimersByTimeAsync(1000); // past the cooldown: the renewal is the trial
    expect(store.renewals.length).toBe(1);
    expect(await metricValue({ metrics }, 'tiergate_budget_store_degraded')).toBe(0);
    await budgets.close();
  });
});
