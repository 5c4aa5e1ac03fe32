// Which limits apply to a request, each in its current window. Tenant keys carry the tenant as their Redis
// hash tag, so one tenant's counters share a Cluster slot; gateway-wide and per-tier counters share `{shared}`.
import type { Runtime } from '../config/runtime.js';
import type { TenantPolicy } from '../policy/tenant-policy.js';
import type { Bucket } from '../stores/budget-store.js';
import { CalendarWindows, WINDOW_MS, minuteWindow } from './windows.js';

/** Late reconciles still land in a window this long after it ended. */
const MINUTE_GRACE_MS = 2 * WINDOW_MS.minute;
const DAY_GRACE_MS = WINDOW_MS.day;

const calendars = new Map<string, CalendarWindows>();
function calendarIn(tz: string, period: 'day' | 'month'): CalendarWindows {
  const k = `${period} ${tz}`;
  let c = calendars.get(k);
  if (!c) calendars.set(k, (c = new CalendarWindows(tz, period)));
  return c;
}

/**
 * `withTokens`: true, every limit; false, requests per minute only; 'cost', requests per minute and the cost
 * budgets (a request whose tokens are not counted at admission still spends money). `inFlight`: and the
 * tenant's concurrent requests, last (a refusal names the first full bucket, and a spent budget or minute says
 * more than a slot that may free in a moment).
 */
export function bucketsFor(rt: Runtime, p: TenantPolicy, tier: string | undefined, withTokens: boolean | 'cost', now: number, inFlight = false): Bucket[] {
  const out = windowBucketsFor(rt, p, tier, withTokens, now);
  if (inFlight && p.maxConcurrentRequests !== undefined) out.push(concurrentBucket(rt, p, p.maxConcurrentRequests, now));
  return out;
}

const keyPrefix = (rt: Runtime) => rt.config.budgets.redis?.keyPrefix ?? 'tiergate:';
/** A tenant's keys: its id as their hash tag. */
const tenantKey = (rt: Runtime, p: TenantPolicy) => `${keyPrefix(rt)}{t:${p.tenant}}`;

/**
 * A tenant's requests in flight. No window: slots come back as requests end, so its reset is a hint to retry
 * in a second, and the counter lives while leases are renewed (two leases, so one missed renewal is no loss).
 */
function concurrentBucket(rt: Runtime, p: TenantPolicy, limit: number, now: number): Bucket {
  const expireAt = now + 2 * rt.config.budgets.concurrencyLeaseMs;
  return { key: `${tenantKey(rt, p)}:inflight`, code: 'concurrent_requests', unit: 'concurrent', limit, resetAt: now + 1000, expireAt };
}

function windowBucketsFor(rt: Runtime, p: TenantPolicy, tier: string | undefined, withTokens: boolean | 'cost', now: number): Bucket[] {
  const cfg = rt.config.budgets;
  const t = tenantKey(rt, p);
  const minute = minuteWindow(now);
  const perMinute = (key: string, code: Bucket['code'], unit: Bucket['unit'], limit: number): Bucket => ({
    key: `${key}:${minute.id}`,
    code,
    unit,
    limit,
    resetAt: minute.resetAt,
    expireAt: minute.resetAt + MINUTE_GRACE_MS,
  });
  const out: Bucket[] = [];
  if (p.requestsPerMinute !== undefined) out.push(perMinute(`${t}:rpm`, 'requests_per_minute', 'requests', p.requestsPerMinute));
  if (!withTokens) return out;
  const tokens = withTokens === true;
  /** A calendar budget: its window (computed only when the budget is set) and its limit in the store's unit. */
  const calendar = (period: 'day' | 'month', key: string, code: Bucket['code'], unit: 'tokens' | 'usd', amount: number | undefined): void => {
    if (amount === undefined || (unit === 'tokens' && !tokens)) return;
    const w = calendarIn(cfg.timeZone, period).at(now);
    // Cost is counted in micro-dollars: Redis counters are integers.
    const limit = unit === 'usd' ? Math.round(amount * 1e6) : amount;
    out.push({ key: `${t}:${key}:${w.id}`, code, unit, limit, resetAt: w.resetAt, expireAt: w.resetAt + DAY_GRACE_MS });
  };
  calendar('day', 'day', 'daily_token_budget', 'tokens', p.dailyTokenBudget);
  calendar('day', 'usd', 'daily_cost_budget', 'usd', p.dailyCostBudgetUsd);
  calendar('month', 'tokm', 'monthly_token_budget', 'tokens', p.monthlyTokenBudget);
  calendar('month', 'usdm', 'monthly_cost_budget', 'usd', p.monthlyCostBudgetUsd);
  if (!tokens) return out;
  if (p.tokensPerMinute !== undefined) out.push(perMinute(`${t}:tpm`, 'tokens_per_minute', 'tokens', p.tokensPerMinute));
  const shared = `${keyPrefix(rt)}{shared}`;
  if (cfg.globalTokensPerMinute !== undefined) out.push(perMinute(`${shared}:tpm`, 'global_tokens_per_minute', 'tokens', cfg.globalTokensPerMinute));
  const tierLimit = tier === undefined ? undefined : cfg.tierTokensPerMinute[tier];
  if (tierLimit !== undefined) out.push(perMinute(`${shared}:tier:${tier}:tpm`, 'tier_tokens_per_minute', 'tokens', tierLimit));
  return out;
}
