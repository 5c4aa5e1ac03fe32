// Which limits a request is counted against, under which store keys. The keys are a contract with the past: a
// replica on a new version shares counters with one on the old during a rollout, and a renamed key would give
// every tenant a fresh day. Tenant keys carry the tenant as the Redis Cluster hash tag.
import { describe, expect, it } from 'vitest';
import { bucketsFor } from '../../src/budget/buckets.js';
import { runtimeFor } from '../helpers/tiergate.js';

const NOW = Date.UTC(2026, 11, 4, 10, 30, 15); // a Friday, 10:30:15 UTC
const MINUTE = String(Math.floor(NOW / 60_000));
const NEXT_MINUTE = Date.UTC(2026, 11, 4, 10, 31);
const SEOUL_MIDNIGHT = Date.UTC(2026, 11, 4, 15); // 2026-12-05 00:00 in Asia/Seoul
const SEOUL_NEXT_MONTH = Date.UTC(2026, 11, 31, 15);

const rt = runtimeFor({
  budgets: { timeZone: 'Asia/Seoul', globalTokensPerMinute: 100_000, tierTokensPerMinute: { strong: 50_000 }, concurrencyLeaseMs: 10_000 },
  tenants: {
    acme: {
      requestsPerMinute: 60,
      tokensPerMinute: 20_000,
      dailyTokenBudget: 1_000_000,
      monthlyTokenBudget: 20_000_000,
      dailyCostBudgetUsd: 12.5,
      monthlyCostBudgetUsd: 300.000001,
      maxConcurrentRequests: 4,
    },
  },
});
const acme = rt.tenants.policyFor('acme');

describe('bucketsFor', () => {
  it('every limit of a tokens-counted request, in order, with its key, unit, limit and windows', () => {
    expect(bucketsFor(rt, acme, 'strong', true, NOW, true)).toEqual([
      { key: `tiergate:{t:acme}:rpm:${MINUTE}`, code: 'requests_per_minute', unit: 'requests', limit: 60, resetAt: NEXT_MINUTE, expireAt: NEXT_MINUTE + 120_000 },
      { key: 'tiergate:{t:acme}:day:2026-12-04', code: 'daily_token_budget', unit: 'tokens', limit: 1_000_000, resetAt: SEOUL_MIDNIGHT, expireAt: SEOUL_MIDNIGHT + 86_400_000 },
      // Cost in integer micro-dollars
      { key: 'tiergate:{t:acme}:usd:2026-12-04', code: 'daily_cost_budget', unit: 'usd', limit: 12_500_000, resetAt: SEOUL_MIDNIGHT, expireAt: SEOUL_MIDNIGHT + 86_400_000 },
      { key: 'tiergate:{t:acme}:tokm:2026-12', code: 'monthly_token_budget', unit: 'tokens', limit: 20_000_000, resetAt: SEOUL_NEXT_MONTH, expireAt: SEOUL_NEXT_MONTH + 86_400_000 },
      { key: 'tiergate:{t:acme}:usdm:2026-12', code: 'monthly_cost_budget', unit: 'usd', limit: 300_000_001, resetAt: SEOUL_NEXT_MONTH, expireAt: SEOUL_NEXT_MONTH + 86_400_000 },
      { key: `tiergate:{t:acme}:tpm:${MINUTE}`, code: 'tokens_per_minute', unit: 'tokens', limit: 20_000, resetAt: NEXT_MINUTE, expireAt: NEXT_MINUTE + 120_000 },
      { key: `tiergate:{shared}:tpm:${MINUTE}`, code: 'global_tokens_per_minute', unit: 'tokens', limit: 100_000, resetAt: NEXT_MINUTE, expireAt: NEXT_MINUTE + 120_000 },
      { key: `tiergate:{shared}:tier:strong:tpm:${MINUTE}`, code: 'tier_tokens_per_minute', unit: 'tokens', limit: 50_000, resetAt: NEXT_MINUTE, expireAt: NEXT_MINUTE + 120_000 },
      // Last: a refusal names the first full bucket, and a slot may free in a moment. Two leases of life.
      { key: 'tiergate:{t:acme}:inflight', code: 'concurrent_requests', unit: 'concurrent', limit: 4, resetAt: NOW + 1000, expireAt: NOW + 20_000 },
    ]);
  });

  it('a request whose tokens are not counted: requests per minute only, or with the cost budgets', () => {
    expect(bucketsFor(rt, acme, 'strong', false, NOW).map((b) => b.code)).toEqual(['requests_per_minute']);
    expect(bucketsFor(rt, acme, 'strong', 'cost', NOW).map((b) => b.code)).toEqual(['requests_per_minute', 'daily_cost_budget', 'monthly_cost_budget']);
  });

  it('the in-flight slot only when asked for, and only for a tenant with a limit', () => {
    expect(bucketsFor(rt, acme, 'strong', false, NOW).some((b) => b.unit === 'concurrent')).toBe(false);
    const open = rt.tenants.policyFor('someone-else');
    expect(bucketsFor(rt, open, 'strong', true, NOW, true).map((b) => b.code)).toEqual(['global_tokens_per_minute', 'tier_tokens_per_minute']);
  });

  it('a tier without its own limit, or none known yet, adds no tier bucket', () => {
    expect(bucketsFor(rt, acme, 'weak', true, NOW).map((b) => b.code)).not.toContain('tier_tokens_per_minute');
    expect(bucketsFor(rt, acme, undefined, true, NOW).map((b) => b.code)).not.toContain('tier_tokens_per_minute');
  });

  it('no gateway-wide bucket unless the gateway has a limit', () => {
    const plain = runtimeFor({ tenants: { acme: { tokensPerMinute: 10 } } });
    expect(bucketsFor(plain, plain.tenants.policyFor('acme'), 'strong', true, NOW).map((b) => b.code)).toEqual(['tokens_per_minute']);
  });

  it('the Redis key prefix is the configured one, hash tags kept', () => {
    const prefixed = runtimeFor({ budgets: { store: 'redis', redis: { url: 'redis://127.0.0.1:1', keyPrefix: 'prod:' }, globalTokensPerMinute: 10 }, tenants: { acme: { requestsPerMinute: 1 } } });
    expect(bucketsFor(prefixed, prefixed.tenants.policyFor('acme'), 'weak', true, NOW).map((b) => b.key)).toEqual([`prod:{t:acme}:rpm:${MINUTE}`, `prod:{shared}:tpm:${MINUTE}`]);
  });
});
