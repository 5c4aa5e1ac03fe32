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
 * budgets (a request whose tokens are not counted at admission still spends money).
 */
export function bucketsFor(rt: Runtime, p: TenantPolicy, tier: string | undefined, withTokens: boolean | 'cost', now: number): Bucket[] {
  const cfg = rt.config.budgets;
  const prefix = cfg.redis?.keyPrefix ?? 'tiergate:';
  const t = `${prefix}{t:${p.tenant}}`;
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
  if ((tokens && p.dailyTokenBudget !== undefined) || p.dailyCostBudgetUsd !== undefined) {
    const day = calendarIn(cfg.timeZone, 'day').at(now);
    const daily = (key: string, code: Bucket['code'], unit: Bucket['unit'], limit: number): Bucket => ({ key: `${key}:${day.id}`, code, unit, limit, resetAt: day.resetAt, expireAt: day.resetAt + DAY_GRACE_MS });
    if (tokens && p.dailyTokenBudget !== undefined) out.push(daily(`${t}:day`, 'daily_token_budget', 'tokens', p.dailyTokenBudget));
    // Counted in micro-dollars: Redis counters are integers.
    if (p.dailyCostBudgetUsd !== undefined) out.push(daily(`${t}:usd`, 'daily_cost_budget', 'usd', Math.round(p.dailyCostBudgetUsd * 1e6)));
  }
  if ((tokens && p.monthlyTokenBudget !== undefined) || p.monthlyCostBudgetUsd !== undefined) {
    const month = calendarIn(cfg.timeZone, 'month').at(now);
    const monthly = (key: string, code: Bucket['code'], unit: Bucket['unit'], limit: number): Bucket => ({ key: `${key}:${month.id}`, code, unit, limit, resetAt: month.resetAt, expireAt: month.resetAt + DAY_GRACE_MS });
    if (tokens && p.monthlyTokenBudget !== undefined) out.push(monthly(`${t}:tokm`, 'monthly_token_budget', 'tokens', p.monthlyTokenBudget));
    if (p.monthlyCostBudgetUsd !== undefined) out.push(monthly(`${t}:usdm`, 'monthly_cost_budget', 'usd', Math.round(p.monthlyCostBudgetUsd * 1e6)));
  }
  if (!tokens) return out;
  if (p.tokensPerMinute !== undefined) out.push(perMinute(`${t}:tpm`, 'tokens_per_minute', 'tokens', p.tokensPerMinute));
  const shared = `${prefix}{shared}`;
  if (cfg.globalTokensPerMinute !== undefined) out.push(perMinute(`${shared}:tpm`, 'global_tokens_per_minute', 'tokens', cfg.globalTokensPerMinute));
  const tierLimit = tier === undefined ? undefined : cfg.tierTokensPerMinute[tier];
  if (tierLimit !== undefined) out.push(perMinute(`${shared}:tier:${tier}:tpm`, 'tier_tokens_per_minute', 'tokens', tierLimit));
  return out;
}
