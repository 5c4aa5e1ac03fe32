// The tenant's model ACL. A model asked for by name (alias or tier model id) must be allowed, or 403. For
// model "auto" the tier the gateway chose (classifier, a Responses turn's stateful or remembered tier) must be
// allowed; if not, the request is downgraded to a tier the tenant may use (reason acl_downgrade) or refused, as
// the tenant's policy says. The service tier the body asks for, and the hosted tools it declares, when the plan
// lists them; background responses.
import type { Runtime, TierRuntime } from '../config/runtime.js';
import { TiergateError } from '../errors.js';
import { boundedClientText } from '../ledger/client-text.js';
import { CLIENT_TOOLS } from '../llm/client-tools.js';
import type { LlmRequest } from '../llm/parse-request.js';
import type { TenantPolicy } from '../policy/tenant-policy.js';
import type { Stage } from '../pipeline/stage.js';
import type { Metrics } from '../telemetry/metrics.js';

export function createPolicyStage(metrics: Metrics): Stage {
  return {
    name: 'policy',
    onError: 'fail',
    run(state) {
      const { policy, route, llm, runtime: rt } = state;
      if (!llm) return;
      if (policy.serviceTiers) checkServiceTier(policy.serviceTiers, llm.json.service_tier);
      if (policy.hostedTools) checkHostedTools(policy.hostedTools, llm);
      if (llm.endpoint === 'responses' && llm.json.background === true && !policy.backgroundResponses) {
        throw new TiergateError(
          'background_not_allowed',
          'Background responses are not available to your plan through this gateway: their usage cannot be counted. Send the request without background (stream it to keep the connection busy).',
          'background',
        );
      }
      if (!policy.models || !route) return;
      const asked = llm.model ?? 'auto';
      if (route.source === 'alias') {
        if (modelAllowed(policy, asked, route.tier.name)) return;
        metrics.aclDecisions.inc({ result: 'refused' });
        throw new TiergateError('model_not_allowed', `Your plan does not include the model '${asked}'.`, 'model');
      }
      // The gateway chose the tier (classifier, stateful tier, or a conversation's remembered tier). A stateful
      // turn is downgraded too: the same tenant's turns always land on the same allowed tier, so its
      // conversations stay on one backend. The ACL holds even if that moves a conversation (the plan changed).
      if (tierAllowed(rt, policy, route.tier.name)) return;
      const fallback = policy.onTierDenied === 'downgrade' ? firstAllowedTier(rt, policy) : undefined;
      if (!fallback) {
        metrics.aclDecisions.inc({ result: 'refused' });
        throw new TiergateError('model_not_allowed', `This request needs the '${route.tier.name}' tier, which your plan does not include.`, 'model');
      }
      metrics.aclDecisions.inc({ result: 'downgraded' });
      const c = route.classification;
      state.route = { ...route, tier: fallback, ...(c ? { classification: { ...c, tier: fallback.name, reason: 'acl_downgrade' } } : {}) };
    },
  };
}

/**
 * The body's `service_tier`, when the tenant's plan lists the ones it may use. Asked for by the client, so
 * refused rather than changed: a flex tier is slower, a priority one billed higher, and a client that asked for
 * one should know it did not get it. No field, null and `auto` (the provider project's setting) always pass.
 */
function checkServiceTier(allowed: ReadonlySet<string>, asked: unknown): void {
  if (asked === undefined || asked === null || asked === 'auto' || (typeof asked === 'string' && allowed.has(asked))) return;
  throw new TiergateError('service_tier_not_allowed', `Your plan does not include this service_tier; it may use: auto, ${[...allowed].join(', ')}.`, 'service_tier');
}

/**
 * The hosted tools the body declares, when the tenant's plan lists the ones it may use. Refused, not dropped:
 * a client that declared a search and got an answer without one would not know why.
 */
function checkHostedTools(allowed: ReadonlySet<string>, llm: LlmRequest): void {
  const tools = llm.json.tools;
  if (Array.isArray(tools)) {
    for (const t of tools) {
      const type = t !== null && typeof t === 'object' ? (t as { type?: unknown }).type : undefined;
      // A malformed entry is the backend's to refuse; the client's own tools are not the plan's to list.
      if (typeof type !== 'string' || CLIENT_TOOLS.has(type) || allowed.has(type)) continue;
      throw toolRefused(boundedClientText(type), allowed, 'tools');
    }
  }
  // Chat Completions' search models take their search as a parameter, not a tool.
  if (llm.endpoint === 'chat' && llm.json.web_search_options != null && !allowed.has('web_search')) throw toolRefused('web_search', allowed, 'web_search_options');
}

function toolRefused(type: string, allowed: ReadonlySet<string>, param: string): TiergateError {
  return new TiergateError('tool_not_allowed', `Your plan does not include the hosted tool '${type}'; it may use: ${[...allowed].join(', ') || 'none'}.`, param);
}

/** A model asked for by name (alias or tier model id) is allowed when the ACL lists the name or its tier. */
export function modelAllowed(p: TenantPolicy, name: string, tier: string): boolean {
  return !p.models || p.models.has(name) || p.models.has(tier);
}

/** A tier is allowed by its own name, or by any model name the tenant may use that routes to it. */
export function tierAllowed(rt: Runtime, p: TenantPolicy, tier: string): boolean {
  if (!p.models || p.models.has(tier)) return true;
  for (const m of p.models) if (rt.modelToTier.get(m) === tier) return true;
  return false;
}

/** Tiers are listed cheapest first by convention (weak before strong): the first allowed one is the downgrade. */
function firstAllowedTier(rt: Runtime, p: TenantPolicy): TierRuntime | undefined {
  for (const t of rt.tiers.values()) if (tierAllowed(rt, p, t.name)) return t;
  return undefined;
}
