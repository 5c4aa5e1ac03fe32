// The OpenAI-style rate-limit headers (x-ratelimit-limit|remaining|reset-requests|tokens), the 429 error and
// the daily-budget warning, from a store's answer.
import { TiergateError, type ErrorName } from '../errors.js';
import { H } from '../pipeline/contract-headers.js';
import { costOf, type AdmitResult, type Bucket } from '../stores/budget-store.js';

/** OpenAI writes resets as Go durations: "20ms", "1.5s", "6m0s", "1h2m3s". */
export function formatReset(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const total = ms / 1000;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total - h * 3600 - m * 60;
  const sec = `${Number.isInteger(s) ? s : s.toFixed(3).replace(/0+$/, '')}s`;
  if (h > 0) return `${h}h${m}m${sec}`;
  if (m > 0) return `${m}m${sec}`;
  return sec;
}

/**
 * Requests: the requests-per-minute bucket. Tokens: whichever token bucket has the least room left, since
 * that is the one a client would hit next.
 */
export function rateLimitHeaders(buckets: readonly Bucket[], counted: readonly number[], now: number): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let tokens = -1;
  buckets.forEach((b, i) => {
    if (b.unit === 'requests') out.push(...triple('requests', b, counted[i] as number, now));
    else if (tokens === -1 || room(b, counted[i] as number) < room(buckets[tokens] as Bucket, counted[tokens] as number)) tokens = i;
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
  global_tokens_per_minute: "the gateway's tokens per minute",
  tier_tokens_per_minute: "this model tier's tokens per minute",
};

export function limitError(b: Bucket, counted: number, requested: number, headers: Array<[string, string]>, now: number): TiergateError {
  const cost = costOf(b, requested);
  if (cost > b.limit) {
    // It can never fit: no retry-after, so a well-behaved client does not retry for ever.
    return new TiergateError(b.code as ErrorName, `Request too large for ${WHAT[b.code]}: limit ${b.limit}, requested ${cost}. Lower max_tokens or shorten the prompt.`, null, headers);
  }
  const retryAfter = Math.max(1, Math.ceil((b.resetAt - now) / 1000));
  return new TiergateError(
    b.code as ErrorName,
    `Rate limit reached for ${WHAT[b.code]}: limit ${b.limit}, used ${counted}, requested ${cost}. Try again in ${retryAfter}s.`,
    null,
    [[H.retryAfter, String(retryAfter)], ...headers],
  );
}

export function budgetWarningHeader(buckets: readonly Bucket[], r: AdmitResult): [string, string] | undefined {
  if (r.budgetWarning === 'none') return undefined;
  const i = buckets.findIndex((b) => b.code === 'daily_token_budget');
  const b = buckets[i];
  if (!b) return undefined;
  const pct = Math.min(100, Math.floor((100 * (r.counted[i] as number)) / b.limit));
  return [H.budgetWarning, `daily_token_budget ${pct}% used`];
}
