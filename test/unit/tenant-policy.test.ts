// Auth, tenant and budget config: validation with paths, and policy layering (tenant over plan over "*"). The key
// helpers (presented key, lookup by digest) are in api-keys.test.ts.
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/auth/api-keys.js';
import { parseConfigText } from '../../src/config/load.js';
import { compileRuntime } from '../../src/config/runtime.js';
import { runtimeFor } from '../helpers/tiergate.js';

const problemsOf = (yaml: string) => {
  const r = parseConfigText(yaml, {});
  if (!r.ok) return r.problems.map((p) => `${p.path}: ${p.message}`);
  const c = compileRuntime(r.config, {});
  return c.ok ? [] : c.problems.map((p) => `${p.path}: ${p.message}`);
};

describe('policy config validation', () => {
  it.each([
    ['auth: { mode: api_key }', 'auth.keys: mode "api_key" needs at least one key'],
    ['auth: { mode: api_key, keys: [{ id: a, sha256: abc, tenant: t }] }', 'auth.keys[0].sha256: expected 64 hex characters'],
    [`auth: { mode: api_key, keys: [{ id: a, sha256: ${'a'.repeat(64)} }] }`, 'auth.keys[0]: set exactly one of tenant, tenants'],
    [`auth: { mode: api_key, keys: [{ id: a, sha256File: /nonexistent/hash, tenant: t }] }`, 'auth.keys[0].sha256File: ENOENT'],
    ['tenants: { acme: { plan: gold } }', 'tenants.acme.plan: unknown plan "gold"'],
    ['tenants: { "bad tenant": { requestsPerMinute: 1 } }', 'tenants.bad tenant: expected a tenant id'],
    ['tenants: { acme: { requestsPerMinute: 0 } }', 'tenants.acme.requestsPerMinute'],
    ['budgets: { store: redis }', 'budgets.redis: store "redis" needs budgets.redis.url'],
    ['budgets: { timeZone: Mars/Olympus }', 'budgets.timeZone: unknown IANA time zone'],
    ['budgets: { tierTokensPerMinute: { medium: 10 } }', 'budgets.tierTokensPerMinute.medium: unknown tier "medium"'],
  ])('%s → %s', (yaml, problem) => {
    expect(problemsOf(yaml).join('\n')).toContain(problem);
  });

  it('a full example is valid', () => {
    expect(
      problemsOf(`
auth:
  mode: api_key
  keys:
    - { id: acme-app, sha256: ${sha256Hex('k1')}, tenant: acme }
    - { id: platform, sha256: ${sha256Hex('k2')}, tenants: ["*"] }
plans:
  free: { models: [weak], requestsPerMinute: 60, dailyTokenBudget: 200000 }
tenants:
  "*": { plan: free }
  acme: { plan: free, dailyTokenBudget: 5000000, models: ["*"], onTierDenied: refuse }
budgets: { store: redis, redis: { url: "redis://redis:6379" }, onStoreFailure: closed, timeZone: Asia/Seoul, globalTokensPerMinute: 2000000 }
`),
    ).toEqual([]);
  });
});

describe('tenant policy layering', () => {
  const rt = runtimeFor({
    plans: { free: { models: ['weak'], requestsPerMinute: 60, dailyTokenBudget: 1000 }, pro: { requestsPerMinute: 600 } },
    tenants: { '*': { plan: 'free', featureHeader: 'x-app' }, acme: { plan: 'pro', dailyTokenBudget: 50_000 }, initech: { tokensPerMinute: 99 } },
  });
  it.each([
    // an unlisted tenant gets "*" (and its plan)
    ['newco', { plan: 'free', models: new Set(['weak']), requestsPerMinute: 60, dailyTokenBudget: 1000, featureHeader: 'x-app' }],
    // its own plan replaces the "*" plan (nothing of free's: not its models, not its daily budget); the "*"
    // entry's own fields still apply, and its own fields override all
    ['acme', { plan: 'pro', models: undefined, requestsPerMinute: 600, dailyTokenBudget: 50_000, featureHeader: 'x-app' }],
    // an entry that names no plan is on the "*" plan
    ['initech', { plan: 'free', models: new Set(['weak']), requestsPerMinute: 60, dailyTokenBudget: 1000, tokensPerMinute: 99 }],
  ])('%s', (tenant, want) => {
    expect(rt.tenants.policyFor(tenant)).toMatchObject({ tenant, ...want });
  });
  it('a paid plan of cost budgets only, under a free default: none of free\'s limits (until 2026-12-06 it had them all)', () => {
    // The README's own example: `paid` sets dollars, `"*"` is on `free`. A paid tenant was held to free's 60
    // requests a minute and 200,000 tokens a day, and only the models it listed itself kept it off free's list.
    const paid = runtimeFor({
      plans: { free: { models: ['weak'], requestsPerMinute: 60, dailyTokenBudget: 200_000, onTierDenied: 'refuse' }, paid: { dailyCostBudgetUsd: 25 } },
      tenants: { '*': { plan: 'free', priority: 3 }, globex: { plan: 'paid' } },
    }).tenants.policyFor('globex');
    expect(paid).toMatchObject({ plan: 'paid', models: undefined, requestsPerMinute: undefined, dailyTokenBudget: undefined, dailyCostBudgetUsd: 25, onTierDenied: 'downgrade', priority: 3 });
  });

  it('with no tenants configured: every model, no limits, the ledger feature header, no cache', () => {
    expect(runtimeFor({}).tenants.policyFor('default')).toEqual({
      tenant: 'default',
      plan: null,
      models: undefined,
      requestsPerMinute: undefined,
      dailyTokenBudget: undefined,
      tokensPerMinute: undefined,
      backgroundResponses: false,
      featureHeader: 'x-feature-id',
      onTierDenied: 'downgrade',
      cache: { mode: 'off', ttlSeconds: undefined, toolRequests: false, namespace: '0', threshold: undefined },
    });
  });

  it('every field layers the same way: the tenant over "*" and its plan', () => {
    const all = {
      models: ['weak'],
      requestsPerMinute: 1,
      dailyTokenBudget: 2,
      monthlyTokenBudget: 3,
      dailyCostBudgetUsd: 4,
      monthlyCostBudgetUsd: 5,
      tokensPerMinute: 6,
      maxConcurrentRequests: 7,
      priority: 8,
      serviceTiers: ['flex'],
      hostedTools: ['web_search'],
      backgroundResponses: true,
      featureHeader: 'x-team',
      onTierDenied: 'refuse' as const,
    };
    const mine = { ...all, models: ['strong'], requestsPerMinute: 11, dailyTokenBudget: 12, monthlyTokenBudget: 13, dailyCostBudgetUsd: 14, monthlyCostBudgetUsd: 15, tokensPerMinute: 16, maxConcurrentRequests: 17, priority: 18, serviceTiers: ['priority'], hostedTools: ['file_search'], backgroundResponses: false, featureHeader: 'x-app' };
    const rt = runtimeFor({ plans: { base: all }, tenants: { '*': { plan: 'base' }, acme: mine } });
    const sets = (o: typeof all) => ({ ...o, models: new Set(o.models), serviceTiers: new Set(o.serviceTiers), hostedTools: new Set(o.hostedTools) });
    expect(rt.tenants.policyFor('newco')).toMatchObject({ plan: 'base', ...sets(all) });
    expect(rt.tenants.policyFor('acme')).toMatchObject({ plan: 'base', ...sets(mine) });
    // The same policy object comes back for the same tenant (resolved once).
    expect(rt.tenants.policyFor('acme')).toBe(rt.tenants.policyFor('acme'));
    // "*" among the models is every model.
    expect(runtimeFor({ tenants: { acme: { models: ['weak', '*'] } } }).tenants.policyFor('acme').models).toBeUndefined();
  });

  it('the cache policy layers field by field: a tenant bumps its namespace and keeps its plan\'s mode and TTL', () => {
    const rt = runtimeFor({ plans: { cached: { cache: { mode: 'semantic', ttlSeconds: 600, threshold: 0.95 } } }, tenants: { acme: { plan: 'cached', cache: { namespace: 7 } } } });
    expect(rt.tenants.policyFor('acme').cache).toEqual({ mode: 'semantic', ttlSeconds: 600, toolRequests: false, namespace: '7', threshold: 0.95 });
  });
});
