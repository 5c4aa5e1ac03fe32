// Admission and reconcile for every limit that applies to a request, over the configured store, with the
// store's failure rule: a circuit breaker in front of Redis, and while it is open either a local
// per-instance limit (open) or 503 (closed). Recovery is automatic: a trial call after the cooldown.
import type { Runtime } from '../config/runtime.js';
import { TiergateError } from '../errors.js';
import { newId } from '../ids.js';
import { H } from '../pipeline/contract-headers.js';
import type { TenantPolicy } from '../policy/tenant-policy.js';
import { costOf, type AdmitRequest, type AdmitResult, type Bucket, type BudgetStore } from '../stores/budget-store.js';
import { MemoryBudgetStore } from '../stores/memory/budget-store.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { budgetWarningHeader, limitError, rateLimitHeaders } from './rate-limit-headers.js';
import { bucketsFor } from './buckets.js';
import { StoreGuard, redisPing } from '../stores/store-guard.js';
import type { KeptReconcile } from './kept-reconciles.js';
import { ReconcileQueue } from './reconcile-queue.js';
import { FullWindows } from './full-windows.js';
import { SlotLeases } from './slot-leases.js';

/** What an admitted request holds until its response ends. */
export interface Admission {
  id: string;
  tenant: string;
  /** The store that holds the reservation (the local one when admitted in degraded mode). */
  store: BudgetStore;
  /** The buckets that hold a reservation: tokens, and cost (usd). */
  tokenBuckets: Bucket[];
  /** The tenant's concurrent-requests bucket when it has that limit: its slot is held until the stream ends. */
  slot: Bucket | undefined;
  reserved: number;
  /** Micro-dollars reserved against a cost budget (0 without one). */
  reservedMicroUsd: number;
  /**
   * The reservation was reconciled: once, by whichever comes first, the response's reported usage as it ends
   * (LlmStream) or the ledger row (settle.ts). Set by Budgets.reconcile.
   */
  reconciled?: boolean;
  /** For the client's response: x-ratelimit-*, x-budget-warning, x-tiergate-degraded. */
  responseHeaders: Array<[string, string]>;
}

export type AdmitOutcome = { admitted: Admission | undefined } | { error: TiergateError };

/** One limit of a tenant as it stands (the admin listener's /budgets/{tenant}). */
export interface LimitStatus {
  code: Bucket['code'];
  /** For a per-tier limit, its tier. */
  tier?: string;
  unit: Bucket['unit'];
  /** In the unit: requests, tokens, US dollars, or requests in flight. */
  limit: number;
  /** Used, plus what requests in flight have reserved. */
  used: number;
  remaining: number;
  /** When the window ends; none for concurrent requests, which free as they end. */
  resets_at?: string;
}

export interface AdmitQuery {
  id: string;
  policy: TenantPolicy;
  tier: string | undefined;
  /** Tokens to reserve; null when the path carries no token limits (requests only). */
  tokens: number | null;
  /**
   * With `tokens: null`: the cost budgets still apply, with nothing reserved (the request is admitted while the
   * budget is not spent) and the response's cost counted when it ends. For paths whose requests are not read.
   */
  countCost?: boolean;
  /** Micro-dollars to reserve against a cost budget: the tokens above at the routed tier's prices. */
  microUsd?: number;
  /**
   * The request goes on to a backend (not a cache hit): it takes one of the tenant's concurrent-request slots,
   * if the tenant has that limit, until its stream ends (streamEnded).
   */
  holdsBackend?: boolean;
}

export class Budgets {
  private readonly guard: StoreGuard;
  /** The per-instance limiter used while the shared store is away (fail-open). */
  private readonly local = new MemoryBudgetStore();
  /** Reconciles to the shared store, kept across outages and restarts. */
  private readonly reconciles: ReconcileQueue;
  /** Tenants whose requests-per-minute window the store has said is full, until it ends. */
  private readonly full = new FullWindows();
  /** Admissions holding a concurrent-request slot: their leases are renewed until their streams end. */
  private readonly slots: SlotLeases;

  /**
   * `keepDir`: where reconciles still unsent at shutdown wait for the next process (reconcile-queue.ts); those an
   * earlier process left there are sent as soon as the store answers.
   */
  constructor(
    readonly store: BudgetStore,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    keepDir?: string,
  ) {
    this.guard = new StoreGuard('budget.store_failed', log, now, (open) => metrics.budgetStoreDegraded.set(open ? 1 : 0), redisPing(store));
    this.reconciles = new ReconcileQueue(store, now, log, store.kind === 'redis' ? keepDir : undefined);
    this.slots = new SlotLeases(now, (...args) => this.renewSlots(...args));
  }

  admit(rt: Runtime, q: AdmitQuery): AdmitOutcome | Promise<AdmitOutcome> {
    const known = this.knownFull(rt, q.policy);
    if (known) return { error: known };
    const now = this.now();
    const cfg = rt.config.budgets;
    const buckets = bucketsFor(rt, q.policy, q.tier, q.tokens !== null || (q.countCost === true && 'cost'), now, q.holdsBackend === true);
    if (buckets.length === 0) return NOTHING_TO_ADMIT;
    const req: AdmitRequest = {
      id: q.id,
      now,
      tokens: q.tokens ?? 0,
      microUsd: q.microUsd ?? 0,
      buckets,
      reservationExpiresAt: now + cfg.reservationTtlMs,
      leaseExpiresAt: now + cfg.concurrencyLeaseMs,
      warnAt: cfg.warnAt,
    };
    if (this.store.kind === 'memory') return this.outcome(q, req, this.store, this.store.admit(req) as AdmitResult, false);
    if (!this.guard.allows()) return this.degraded(rt, q, req);
    // Reconciles an outage kept back go first: sent before this admission on the same connection, Redis runs
    // them first, so the admission does not count reservations that are already settled (phantom 429s).
    this.reconciles.retryAll();
    const admitting = (this.store.admit(req) as Promise<AdmitResult>).then(
      (r) => {
        this.guard.succeeded();
        return this.outcome(q, req, this.store, r, false);
      },
      (err: unknown) => {
        this.failed('admit', err, cfg.breaker);
        this.releaseUncertain(req);
        return this.degraded(rt, q, req);
      },
    );
    this.reconciles.track(admitting);
    return admitting;
  }

  /**
   * The 429 admission would answer for a tenant whose requests-per-minute window is known to be full
   * (full-windows.ts), without reading the request or asking the store; undefined when it is not known full.
   * Cheap when the tenant has no such limit or no full window: one property read, one map lookup.
   */
  knownFull(rt: Runtime, policy: TenantPolicy): TiergateError | undefined {
    if (policy.requestsPerMinute === undefined) return undefined;
    const now = this.now();
    const f = this.full.known(policy.tenant, () => bucketsFor(rt, policy, undefined, false, now)[0], now);
    if (f === undefined) return undefined;
    this.metrics.budgetDecisions.inc({ result: 'denied', code: f.bucket.code });
    return limitError(f.bucket, f.counted, costOf(f.bucket, 0), rateLimitHeaders([f.bucket], [f.counted], now), now);
  }

  /**
   * A request refused for what it sent (invalid JSON, a field out of range, a model it may not use) counts against
   * its tenant's requests per minute all the same, as OpenAI counts unsuccessful requests. A client looping on such
   * a 4xx was otherwise read in full every time (up to limits.maxRequestBodyBytes), with no end. Once its minute is
   * full the answer is that 429 instead, and the next ones come on the request headers (full-windows.ts). Not
   * counted: requests with no tenant (401), refusals by a limit (429: admission is all or nothing), the gateway's own
   * failures (5xx), and a request already admitted. Returns the error to answer with.
   */
  countRefused(rt: Runtime, policy: TenantPolicy, err: TiergateError, admitted: boolean): TiergateError | Promise<TiergateError> {
    const status = err.entry.status;
    if (admitted || policy.requestsPerMinute === undefined || status < 400 || status >= 500 || status === 401 || status === 429) return err;
    const counted = this.admit(rt, { id: newId(), policy, tier: undefined, tokens: null });
    const answer = (o: AdmitOutcome): TiergateError => {
      // A store failure under onStoreFailure: closed is a 503 for admission; here the client's own error stands.
      if ('error' in o) return o.error.entry.status === 429 ? o.error : err;
      // Counted: the minute's x-ratelimit-*-requests go with it, as on every response.
      const headers = o.admitted?.responseHeaders ?? [];
      return headers.length === 0 ? err : new TiergateError(err.name_, err.message, err.param, [...err.extraHeaders, ...headers]);
    };
    return counted instanceof Promise ? counted.then(answer) : answer(counted);
  }

  /**
   * Frees the reservation and counts what the request really used. `actualMicroUsd` undefined: its cost is not
   * known (no price for the model that answered), and the reservation's stands in for it. Once per admission:
   * later calls do nothing (Admission.reconciled). Never throws.
   */
  reconcile(a: Admission, actualTokens: number, actualMicroUsd: number | undefined): void {
    if (a.tokenBuckets.length === 0 || a.reconciled) return;
    a.reconciled = true;
    this.settle(a.store, { id: a.id, buckets: a.tokenBuckets, tokens: actualTokens, microUsd: actualMicroUsd ?? a.reservedMicroUsd });
  }

  /**
   * The request's stream has ended: its concurrent-request slot, if it holds one, is free now, not when its
   * ledger row is built (which may be a batch later): a client that sends its next request as soon as one
   * ends must find the slot free. Never throws.
   */
  streamEnded(a: Admission): void {
    if (a.slot === undefined || !this.slots.letGo(a.id)) return;
    this.settle(a.store, { id: a.id, buckets: [a.slot], tokens: 0, microUsd: 0 });
  }

  /** An admission that will never reach a backend (its stream ended before it landed): all of it is freed. */
  release(a: Admission): void {
    this.streamEnded(a);
    this.reconcile(a, 0, 0);
  }

  /** Sends a reconcile (or a slot's release) to the store that holds it. Never throws. */
  private settle(store: BudgetStore, k: KeptReconcile): void {
    if (store.kind !== 'redis') {
      // Only the Redis store is expected to fail; a memory reconcile that threw would be a bug: logged, not retried.
      try {
        void store.reconcile(k.id, k.buckets, k.tokens, this.now(), k.microUsd);
      } catch (err) {
        this.log.error({ event: 'budget.reconcile_failed', err: (err as Error).message });
      }
      return;
    }
    this.reconciles.send(k).then(
      () => this.guard.succeeded(),
      (err: unknown) => {
        this.failed('reconcile', err, undefined);
        // Kept for when the store is back; until then the reservation holds the budget (the safe side), and a
        // slot holds until its lease runs out.
        this.reconciles.keep(k);
      },
    );
  }

  /**
   * SlotLeases' renewal: skipped while the breaker is open. A renewal that fails is logged and counted; the
   * slot then frees when its lease runs out (under-counting for a moment, never holding a slot nobody uses).
   */
  private renewSlots(store: BudgetStore, bucket: Bucket, ids: string[], leaseExpiresAt: number, now: number): void {
    if (store.kind === 'redis' && !this.guard.allows()) return;
    try {
      const done = store.renew(bucket, ids, leaseExpiresAt, now);
      if (done instanceof Promise) done.then(() => this.guard.succeeded(), (err: unknown) => this.failed('renew', err, undefined));
    } catch (err) {
      this.log.error({ event: 'budget.renew_failed', err: (err as Error).message });
    }
  }

  /**
   * Every limit that applies to `tenant` (its own, the gateway's, each tier's), as the store counts it now:
   * read-only, the same numbers admission would see. Throws when the store cannot be read.
   */
  async status(rt: Runtime, tenant: string): Promise<LimitStatus[]> {
    const now = this.now();
    const policy = rt.tenants.policyFor(tenant);
    const buckets = new Map<string, { bucket: Bucket; tier: string | undefined }>();
    for (const tier of [undefined, ...rt.tiers.keys()]) {
      for (const b of bucketsFor(rt, policy, tier, true, now, true)) if (!buckets.has(b.key)) buckets.set(b.key, { bucket: b, tier: b.code === 'tier_tokens_per_minute' ? tier : undefined });
    }
    const list = [...buckets.values()];
    const counted = await this.store.peek(list.map((e) => e.bucket), now);
    // Cost budgets are counted in micro-dollars; they are shown in dollars.
    const inUnit = (b: Bucket, v: number) => (b.unit === 'usd' ? v / 1e6 : v);
    return list.map(({ bucket: b, tier }, i) => {
      const used = counted[i] as number;
      const limit = { limit: inUnit(b, b.limit), used: inUnit(b, used), remaining: inUnit(b, Math.max(0, b.limit - used)), ...(b.unit === 'concurrent' ? {} : { resets_at: new Date(b.resetAt).toISOString() }) };
      return { code: b.code, ...(tier ? { tier } : {}), unit: b.unit, ...limit };
    });
  }

  /** Settles the reconciles (reconcile-queue.ts: what a shutdown waits for and keeps), then closes the store. */
  async close(): Promise<void> {
    this.guard.close();
    this.slots.close();
    await this.reconciles.close();
    await this.store.close();
  }

  private outcome(q: AdmitQuery, req: AdmitRequest, store: BudgetStore, r: AdmitResult, degraded: boolean): AdmitOutcome {
    // The requests bucket, when there is one, comes first (buckets.ts); note() takes no other kind. A degraded
    // answer is one replica's share.
    if (!degraded) this.full.note(q.policy.tenant, req.buckets[0] as Bucket, r.counted[0] as number);
    const headers = rateLimitHeaders(req.buckets, r.counted, req.now);
    if (degraded) headers.push([H.degraded, 'budget-store']);
    if (!r.admitted) {
      const b = req.buckets[r.denied as number] as Bucket;
      this.metrics.budgetDecisions.inc({ result: 'denied', code: b.code });
      this.log.info({ event: 'budget.denied', tenant: q.policy.tenant, code: b.code, limit: b.limit });
      return { error: limitError(b, r.counted[r.denied as number] as number, costOf(b, req.tokens, req.microUsd), headers, req.now) };
    }
    this.metrics.budgetDecisions.inc({ result: 'admitted', code: '' });
    const warning = budgetWarningHeader(req.buckets, r);
    if (warning) headers.push(warning);
    if (r.budgetWarning === 'first') {
      this.metrics.budgetWarnings.inc();
      this.log.warn({ event: 'budget.warning', tenant: q.policy.tenant, share: warning?.[1] });
    }
    const tokenBuckets = req.buckets.filter((b) => b.unit === 'tokens' || b.unit === 'usd');
    const slot = req.buckets.find((b) => b.unit === 'concurrent');
    const admitted: Admission = { id: req.id, tenant: q.policy.tenant, store, tokenBuckets, slot, reserved: req.tokens, reservedMicroUsd: req.microUsd ?? 0, responseHeaders: headers };
    if (slot !== undefined) this.slots.hold({ id: req.id, store, slot, leaseMs: (req.leaseExpiresAt as number) - req.now });
    return { admitted };
  }

  private degraded(rt: Runtime, q: AdmitQuery, req: AdmitRequest): AdmitOutcome {
    const cfg = rt.config.budgets;
    if (cfg.onStoreFailure === 'closed') {
      this.metrics.budgetDecisions.inc({ result: 'denied', code: 'store_unavailable' });
      return { error: new TiergateError('dependency_unavailable', 'The budget service is temporarily unavailable. Please retry shortly.', null, [[H.retryAfter, '1']]) };
    }
    // Each replica takes its share of the limit, so N replicas together stay near the configured one.
    const share = (l: number) => Math.max(1, Math.floor(l / cfg.expectedInstances));
    const local: AdmitRequest = { ...req, buckets: req.buckets.map((b) => ({ ...b, limit: share(b.limit) })) };
    return this.outcome(q, local, this.local, this.local.admit(local), true);
  }

  private failed(op: 'admit' | 'reconcile' | 'renew', err: unknown, breaker: Runtime['config']['budgets']['breaker'] | undefined): void {
    this.metrics.budgetStoreFailures.inc({ op });
    this.guard.failed(op, err, breaker);
  }

  /**
   * An admission that failed may still have reached Redis (a command timeout is the client giving up, and the
   * script can run after it: a stalled Redis): its reservation would then hold the tenant's tokens until it
   * expires, while the request is served by the local limiter. A reconcile of nothing is sent after it, on the
   * same connection: it frees the hold if there is one and does nothing otherwise (reconciles count once). A
   * request count it may have added stays for its minute.
   */
  private releaseUncertain(req: AdmitRequest): void {
    const held = req.buckets.filter((b) => b.unit !== 'requests');
    if (held.length === 0) return;
    const k: KeptReconcile = { id: req.id, buckets: held, tokens: 0, microUsd: 0 };
    this.reconciles.send(k).catch(() => this.reconciles.keep(k));
  }
}

const NOTHING_TO_ADMIT: AdmitOutcome = Object.freeze({ admitted: undefined });
