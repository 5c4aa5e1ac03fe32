// The budget store: counters per limit window, checked and reserved all-or-nothing at admission, reconciled
// to actual usage when the response ends. One interface, a memory and a Redis implementation, one contract
// suite (test/contract/budget-store.test.ts).

export type LimitCode =
  | 'requests_per_minute'
  | 'tokens_per_minute'
  | 'daily_token_budget'
  | 'monthly_token_budget'
  | 'daily_cost_budget'
  | 'monthly_cost_budget'
  | 'global_tokens_per_minute'
  | 'tier_tokens_per_minute'
  | 'concurrent_requests';

/** One limit in its current window. */
export interface Bucket {
  /** Store key, window id included; hash-tagged by tenant (or `shared`) for Redis Cluster. */
  key: string;
  code: LimitCode;
  /**
   * requests: counted at admission, never reconciled. tokens, and usd (in micro-dollars, so that counters stay
   * integers): reserved, then reconciled to actual usage. concurrent: a hold of one while the request is in
   * flight, on a lease its instance renews (renew), released when it ends; it never counts as used.
   */
  unit: 'requests' | 'tokens' | 'usd' | 'concurrent';
  limit: number;
  /**
   * When this window ends (ms since epoch): the limit frees then at the latest. A concurrent bucket has no
   * window: its room comes back as requests end, so this is only a hint of when to retry (a second from now).
   */
  resetAt: number;
  /**
   * When the counter may be forgotten: after the window, plus time for late reconciles to land. A concurrent
   * bucket's moves on with every admission and renewal (the stores never shorten it).
   */
  expireAt: number;
}

export interface AdmitRequest {
  /** Unique per request: names its reservation. */
  id: string;
  now: number;
  /** Tokens to reserve against every token bucket. */
  tokens: number;
  /** Micro-dollars to reserve against every usd bucket (0 when there is none). */
  microUsd?: number;
  buckets: readonly Bucket[];
  /** The reservation frees itself at this time if never reconciled (a process that died mid-stream). */
  reservationExpiresAt: number;
  /**
   * When a concurrent bucket's hold frees itself unless renewed first: short, so that the slots of a process
   * that died come back within seconds, not after reservationExpiresAt. Defaults to reservationExpiresAt.
   */
  leaseExpiresAt?: number;
  /** Share of a calendar budget (tokens or cost, per day or month) from which the response warns. */
  warnAt: number;
}

export interface AdmitResult {
  admitted: boolean;
  /** Per bucket: units counted (used + reserved), including this request when admitted. */
  counted: number[];
  /** When refused: the index of the first bucket that had no room. */
  denied: number | undefined;
  /** over: the daily budget is past warnAt; first: and this request is the first to see it that day. */
  budgetWarning: 'none' | 'over' | 'first';
}

export interface BudgetStore {
  readonly kind: 'memory' | 'redis';
  admit(req: AdmitRequest): AdmitResult | Promise<AdmitResult>;
  /**
   * Releases the reservation of `id` in each token and usd bucket and counts what was really used instead:
   * `actualTokens` in token buckets, `actualMicroUsd` in usd buckets.
   */
  reconcile(id: string, buckets: readonly Bucket[], actualTokens: number, now: number, actualMicroUsd?: number): void | Promise<void>;
  /** Per bucket, what is counted now (used plus live reservations), as admission would see it; admits nothing. */
  peek(buckets: readonly Bucket[], now: number): number[] | Promise<number[]>;
  /**
   * Moves the lease of each of `ids`' holds in the concurrent `bucket` to `leaseExpiresAt` (the bucket's counter
   * to `bucket.expireAt` at least). An id no longer held (released, or its lease already ran out) stays free.
   */
  renew(bucket: Bucket, ids: readonly string[], leaseExpiresAt: number, now: number): void | Promise<void>;
  close(): Promise<void>;
}

/** What a request counts against a bucket when admitted: one request (or slot), its tokens, or its micro-dollars. */
export function costOf(b: Bucket, tokens: number, microUsd = 0): number {
  return b.unit === 'requests' || b.unit === 'concurrent' ? 1 : b.unit === 'usd' ? microUsd : tokens;
}

/** What a reconcile counts as used in place of the reservation: nothing for a slot, which only frees. */
export function usedOf(b: Bucket, tokens: number, microUsd = 0): number {
  return b.unit === 'concurrent' ? 0 : costOf(b, tokens, microUsd);
}

/** The hold's expiry in `b`: the lease for a concurrent bucket, the reservation's otherwise. */
export function holdExpiry(b: Bucket, req: AdmitRequest): number {
  return b.unit === 'concurrent' ? (req.leaseExpiresAt ?? req.reservationExpiresAt) : req.reservationExpiresAt;
}

const CALENDAR_BUDGETS: ReadonlySet<LimitCode> = new Set(['daily_token_budget', 'monthly_token_budget', 'daily_cost_budget', 'monthly_cost_budget']);

/** The calendar budgets (tokens or cost, per day or month) warn once per window from `warnAt` of their limit. */
export function isBudget(b: Bucket): boolean {
  return CALENDAR_BUDGETS.has(b.code);
}

/** Both stores decide the same way; this is the rule. */
export function hasRoom(counted: number, cost: number, limit: number): boolean {
  return counted + cost <= limit;
}
