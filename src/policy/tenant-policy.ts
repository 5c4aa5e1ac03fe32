// A tenant's effective policy: its own entry over its plan over the "*" entry over the built-in (everything
// allowed, no limits). Resolved once per tenant per config version.
import { BoundedMap } from '../bounded-map.js';
import type { Config } from '../config/schema.js';

export interface TenantPolicy {
  tenant: string;
  /** The plan name (ledger rate_limit_tier), or null. */
  plan: string | null;
  /** Allowed model names and tier names; undefined = all. */
  models: ReadonlySet<string> | undefined;
  requestsPerMinute: number | undefined;
  dailyTokenBudget: number | undefined;
  monthlyTokenBudget: number | undefined;
  /** US dollars per day and per calendar month. */
  dailyCostBudgetUsd: number | undefined;
  monthlyCostBudgetUsd: number | undefined;
  tokensPerMinute: number | undefined;
  maxConcurrentRequests: number | undefined;
  priority: number | undefined;
  /** Service tiers the request's `service_tier` may name (besides `auto`); undefined = any. */
  serviceTiers: ReadonlySet<string> | undefined;
  /** Hosted tool types the tenant may declare (web_search, …); undefined: every one. */
  hostedTools: ReadonlySet<string> | undefined;
  /** Responses API turns with `background: true` may pass (their generation is never seen, so never counted). */
  backgroundResponses: boolean;
  featureHeader: string;
  onTierDenied: 'downgrade' | 'refuse';
  cache: CachePolicy;
}

export interface CachePolicy {
  mode: 'off' | 'exact' | 'semantic';
  /** undefined: the cache section's defaultTtlSeconds. */
  ttlSeconds: number | undefined;
  toolRequests: boolean;
  namespace: string;
  /** undefined: cache.semantic.threshold. */
  threshold: number | undefined;
}

export const NO_CACHE: CachePolicy = Object.freeze({ mode: 'off', ttlSeconds: undefined, toolRequests: false, namespace: '0', threshold: undefined });

type Fields = Config['tenants'][string];

export class TenantDirectory {
  /** Unlisted tenants (via "*" keys) are unbounded in number; so is not this cache. */
  private readonly cache = new BoundedMap<string, TenantPolicy>(10_000);

  constructor(private readonly config: Pick<Config, 'tenants' | 'plans' | 'ledger'>) {}

  policyFor(tenant: string): TenantPolicy {
    let p = this.cache.get(tenant);
    if (p) return p;
    p = this.resolve(tenant);
    this.cache.set(tenant, p);
    return p;
  }

  private resolve(tenant: string): TenantPolicy {
    const { tenants, plans } = this.config;
    const own = tenants[tenant];
    const layers: Fields[] = [];
    for (const entry of [tenants['*'], own]) {
      if (!entry) continue;
      // The "*" entry's plan is the plan of a tenant that names none. A tenant on a plan of its own does not take
      // the default plan's limits as well: under `"*": { plan: free }`, a paid plan that sets no daily token budget
      // was held to free's, and one that lists no models to free's models. The "*" entry's own fields still apply.
      const plan = entry === own || own?.plan === undefined ? entry.plan : undefined;
      if (plan !== undefined && plans[plan]) layers.push(plans[plan] as Fields);
      layers.push(entry);
    }
    const pick = <K extends keyof Fields>(k: K): Fields[K] => {
      let v: Fields[K] = undefined as Fields[K];
      for (const l of layers) if (l[k] !== undefined) v = l[k];
      return v;
    };
    const models = pick('models');
    return {
      tenant,
      plan: pick('plan') ?? null,
      models: models === undefined || models.includes('*') ? undefined : new Set(models),
      requestsPerMinute: pick('requestsPerMinute'),
      dailyTokenBudget: pick('dailyTokenBudget'),
      monthlyTokenBudget: pick('monthlyTokenBudget'),
      dailyCostBudgetUsd: pick('dailyCostBudgetUsd'),
      monthlyCostBudgetUsd: pick('monthlyCostBudgetUsd'),
      tokensPerMinute: pick('tokensPerMinute'),
      maxConcurrentRequests: pick('maxConcurrentRequests'),
      priority: pick('priority'),
      serviceTiers: listed(pick('serviceTiers')),
      hostedTools: listed(pick('hostedTools')),
      backgroundResponses: pick('backgroundResponses') ?? false,
      featureHeader: pick('featureHeader') ?? this.config.ledger.featureHeader,
      onTierDenied: pick('onTierDenied') ?? 'downgrade',
      cache: cachePolicyOf(layers),
    };
  }
}

/** A stream's policy until authentication resolves its tenant (paths tiergate passes through never do). */
export const NO_POLICY: TenantPolicy = Object.freeze({
  tenant: '',
  plan: null,
  models: undefined,
  requestsPerMinute: undefined,
  dailyTokenBudget: undefined,
  monthlyTokenBudget: undefined,
  dailyCostBudgetUsd: undefined,
  monthlyCostBudgetUsd: undefined,
  tokensPerMinute: undefined,
  maxConcurrentRequests: undefined,
  priority: undefined,
  serviceTiers: undefined,
  hostedTools: undefined,
  backgroundResponses: false,
  featureHeader: 'x-feature-id',
  onTierDenied: 'downgrade',
  cache: NO_CACHE,
});

function listed(names: readonly string[] | undefined): ReadonlySet<string> | undefined {
  return names === undefined ? undefined : new Set(names);
}

/** The cache field layers key by key: a tenant may bump only its namespace and keep its plan's mode. */
function cachePolicyOf(layers: readonly Fields[]): CachePolicy {
  const merged: NonNullable<Fields['cache']> = {};
  for (const l of layers) if (l.cache) Object.assign(merged, Object.fromEntries(Object.entries(l.cache).filter(([, v]) => v !== undefined)));
  return {
    mode: merged.mode ?? NO_CACHE.mode,
    ttlSeconds: merged.ttlSeconds,
    toolRequests: merged.toolRequests ?? NO_CACHE.toolRequests,
    namespace: merged.namespace ?? NO_CACHE.namespace,
    threshold: merged.threshold,
  };
}
