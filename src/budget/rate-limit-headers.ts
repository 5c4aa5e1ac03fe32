// The OpenAI-style rate-limit headers (x-ratelimit-limit|remaining|reset-requests|tokens), the 429 error and
// the daily-budget warning, from a store's answer.
import { TiergateError, type ErrorName } from '../errors.js';
import { H } from '../pipeline/contract-headers.js';
import { isBudget, type AdmitResult, type Bucket } from '../stores/budget-store.js';

/**
 * OpenAI writes resets as Go durations: "20ms", "1.5s", "6m0s", "1h2m3s". The wait is first rounded up to a whole
 * millisecond (never early), so a fraction cannot carry into the next unit on its own: 999.2 ms is "1s", not
 * "1000ms", and 59,999.6 ms is "1m0s", not "60.s".
 */
export function formatReset(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  if (whole < 1000) return `${whole}ms`;
  const h = Math.floor(whole / 3_600_000);
  const m = Math.floor((whole % 3_600_000) / 60_000);
  const secMs = whole % 60_000;
  // Whole milliseconds: three decimals are exact, and the last one kept is never a zero.
  const sec = `${secMs % 1000 === 0 ? secMs / 1000 : (secMs / 1000).toFixed(3).replace(/0+$/, '')}s`;
  if (h > 0) return `${h}h${m}m${sec}`;
  if (m > 0) return `${m}m${sec}`;
  return sec;
}

/**
 * Requests: the requests-per-minute bucket. Tokens: whichever token bucket has the least room left, since
 * that is the one a client would hit next. A cost budget has no OpenAI header; x-budget-warning covers it.
 */
export function rateLimitHeaders(buckets: readonly Bucket[], counted: readonly number[], now: number): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let tokens = -1;
  buckets.forEach((b, i) => {
    if (b.unit === 'requests') out.push(...triple('requests', b, counted[i] as number, now));
    else if (b.unit === 'tokens' && (tokens === -1 || room(b, counted[i] as number) < room(buckets[tokens] as Bucket, counted[tokens] as number))) tokens = i;
  });
  if (tokens !== -1) out.push(...triple('tokens', buckets[tokens] as Bucket, counted[tokens] as number, now));
  return out;
}

function triple(kind: 'requests' | 'tokens', b: Bucket, counted: number, now: number): Array<[string, string]> {
  return [
    [`x-ratelimit-limit-${kind}`, String(b.limit)],
    [`x-ratelimit-remaining-${kind}`, String(room(b, counted))],
    [`x-ratelimit-reset-${kind}`, formatReset(b.resetAt - now)],
  ];
}

const room = (b: Bucket, counted: number) => Math.max(0, b.limit - counted);

const WHAT: Record<Bucket['code'], string> = {
  requests_per_minute: "this tenant's requests per minute",
  tokens_per_minute: "this tenant's tokens per minute",
  daily_token_budget: "this tenant's daily token budget",
  monthly_token_budget: "this tenant's monthly token budget",
  daily_cost_budget: "this tenant's daily cost budget",
  monthly_cost_budget: "this tenant's monthly cost budget",
  global_tokens_per_minute: "the gateway's tokens per minute",
  tier_tokens_per_minute: "this model tier's tokens per minute",
  concurrent_requests: "this tenant's concurrent requests",
};

/**
 * The longest `retry-after` a client should wait out by itself. The OpenAI SDKs retry a 429 on their own (twice
 * by default), and the Node SDK sleeps for whatever `retry-after` says: against a spent daily budget, the
 * application's call would hang until midnight. Past this, and for a request that can never fit, the 429 says
 * `x-should-retry: false` (OpenAI's own header, which both SDKs obey), so the call fails at once with the 429
 * and the application decides. A minute's window stays within it: those 429s are worth the SDK's retry.
 */
export const MAX_CLIENT_RETRY_WAIT_S = 60;
const NO_RETRY: [string, string] = [H.shouldRetry, 'false'];

/** `cost`: what this request would count against `b` (costOf). */
export function limitError(b: Bucket, counted: number, cost: number, headers: Array<[string, string]>, now: number): TiergateError {
  const amount = b.unit === 'usd' ? usd : String;
  if (cost > b.limit) {
    // It can never fit: no retry-after, and no retry, so a well-behaved client does not try again.
    return new TiergateError(b.code as ErrorName, `Request too large for ${WHAT[b.code]}: limit ${amount(b.limit)}, requested ${amount(cost)}. Lower max_tokens or shorten the prompt.`, null, [NO_RETRY, ...headers]);
  }
  const retryAfter = Math.max(1, Math.ceil((b.resetAt - now) / 1000));
  const reached = b.unit === 'usd' ? 'Budget reached' : 'Rate limit reached';
  const retry: Array<[string, string]> = [[H.retryAfter, String(retryAfter)]];
  if (retryAfter > MAX_CLIENT_RETRY_WAIT_S) retry.push(NO_RETRY);
  const message =
    b.unit === 'concurrent'
      ? `Too many requests in flight for this tenant: limit ${b.limit}, in flight ${counted}. Try again in ${retryAfter}s, or once one of them has finished.`
      : `${reached} for ${WHAT[b.code]}: limit ${amount(b.limit)}, used ${amount(counted)}, requested ${amount(cost)}. Try again in ${retryAfter}s.`;
  return new TiergateError(b.code as ErrorName, message, null, [...retry, ...headers]);
}

/** Micro-dollars as dollars, to the cent when that is exact enough, else to the micro-dollar. */
function usd(micro: number): string {
  const dollars = micro / 1e6;
  return `$${micro % 10_000 === 0 ? dollars.toFixed(2) : dollars.toFixed(6)}`;
}

/** The calendar budget most used, e.g. `daily_cost_budget 83% used`. */
export function budgetWarningHeader(buckets: readonly Bucket[], r: AdmitResult): [string, string] | undefined {
  if (r.budgetWarning === 'none') return undefined;
  let most: { code: string; pct: number } | undefined;
  buckets.forEach((b, i) => {
    if (!isBudget(b)) return;
    const pct = Math.min(100, Math.floor((100 * (r.counted[i] as number)) / b.limit));
    if (!most || pct > most.pct) most = { code: b.code, pct };
  });
  return most ? [H.budgetWarning, `${most.code} ${most.pct}% used`] : undefined;
}
