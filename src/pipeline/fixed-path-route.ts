// Paths routed without a pipeline run. Unclassified paths (routing.unclassifiedPaths, e.g. /v1/embeddings): a
// fixed tier per path, no body read, and only request rates apply (these requests are not tokenised). Paths
// tiergate passes through: only the header rules, plus the tier of a stored Responses API response.
import { newId } from '../ids.js';
import type { ResponseAffinity } from '../affinity/response-affinity.js';
import type { Budgets } from '../budget/budgets.js';
import type { Runtime, TierRuntime } from '../config/runtime.js';
import type { TiergateError } from '../errors.js';
import { CONTINUE, type ContinueDecision, type Decision, type HeaderMap } from '../extproc/types.js';
import type { Caller } from '../stages/authenticate.js';
import { endpointOf } from '../stages/parse.js';
import { H } from './contract-headers.js';
import { clientRoutingHeaders, credentials } from './header-rules.js';
import type { RequestState } from './request-state.js';

export interface FixedPathRoute {
  tier: TierRuntime | undefined;
  /** The request-headers answer, or the limit's error; a promise when the budget store is remote. */
  outcome: ContinueDecision | TiergateError | Promise<ContinueDecision | TiergateError>;
}

export function routeFixedPath(rt: Runtime, state: RequestState, caller: Caller | undefined, budgets: Budgets): FixedPathRoute {
  const name = rt.unclassifiedPaths.get(state.path)?.tier;
  const tier = name ? rt.tiers.get(name) : undefined;
  const set: Array<[string, string]> = [[H.tenant, state.tenant]];
  if (tier) set.push([H.tier, tier.name], [H.model, tier.model]);
  if (tier?.authorization) set.push([H.authorization, tier.authorization]);
  const remove = [...clientRoutingHeaders(state.headers, set), ...credentials(caller, set)];
  const admitted = budgets.admit(rt, { id: newId(), policy: state.policy, tier: tier?.name, tokens: null });
  const decide = (o: Awaited<typeof admitted>): ContinueDecision | TiergateError => {
    if ('error' in o) return o.error;
    state.admission = o.admitted;
    return { kind: 'continue', headers: { set, remove }, clearRouteCache: true };
  };
  return { tier, outcome: admitted instanceof Promise ? admitted.then(decide) : decide(admitted) };
}

/**
 * A request about a stored Responses API response (GET or DELETE /v1/responses/{id}, its cancel and input_items):
 * it must reach the backend that stored the response. That is the tier response affinity remembered for the id
 * (when on), else the stateful tier, where turns asking for an auto model go. Envoy routes it by the tier
 * header, as it routes the turns themselves. Undefined for any other path. `tenant`: the caller's, if known.
 */
export function storedResponseTier(rt: Runtime, path: string, tenant: string | undefined, affinity: ResponseAffinity): TierRuntime | undefined | Promise<TierRuntime> {
  const id = storedResponseId(rt, path);
  if (id === undefined) return undefined;
  const cfg = rt.config.routing.affinity;
  // No tenant (a path made public): nothing to look up under.
  if (!affinity.on(cfg) || id === '' || tenant === undefined) return rt.statefulTier;
  const onTier = (name: string | undefined) => (name === undefined ? undefined : rt.tiers.get(name)) ?? rt.statefulTier;
  const found = affinity.lookup(tenant, id, cfg);
  return found instanceof Promise ? found.then(onTier) : onTier(found);
}

/** The response id in a path under a Responses API path (`/v1/responses/{id}[/…]`), or undefined. */
function storedResponseId(rt: Runtime, path: string): string | undefined {
  for (const p of rt.classifyPaths) {
    if (!path.startsWith(`${p}/`) || endpointOf(p) !== 'responses') continue;
    const rest = path.slice(p.length + 1);
    const slash = rest.indexOf('/');
    return slash === -1 ? rest : rest.slice(0, slash);
  }
  return undefined;
}

/** A path tiergate does not account for: the header rules apply, and a stored response's tier (if any) is set. */
export function passThrough(rt: Runtime, headers: HeaderMap, caller: Caller | undefined, spoofed: string[], stored: TierRuntime | undefined): Decision {
  // An authenticated caller's key goes no further, and the backend sees its tenant, as on LLM paths.
  const set: Array<[string, string]> = caller?.principal !== undefined ? [[H.tenant, caller.tenant]] : [];
  if (stored) {
    set.push([H.tier, stored.name]);
    if (stored.authorization) set.push([H.authorization, stored.authorization]);
  }
  const remove = set.length > 0 ? [...clientRoutingHeaders(headers, set), ...credentials(caller, set)] : spoofed;
  if (set.length === 0 && remove.length === 0 && !rt.config.envoy.allowModeOverride) return CONTINUE;
  return {
    kind: 'continue',
    ...(set.length > 0 || remove.length > 0 ? { headers: { set, remove }, clearRouteCache: true } : {}),
    // Nothing more to see on this request: ask Envoy to stop sending it (§10; 1.37+ closes the stream).
    modeOverride: { requestBodyMode: 'NONE', responseHeaderMode: 'SKIP', responseBodyMode: 'NONE' },
  };
}
