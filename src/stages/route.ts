// Writes the routing decision into the request: contract headers (overwriting the client's), the upstream
// model id in the body, usage forced on for streams, the tenant's priority, prefix-cache salt and safety
// identifier where the tier asks for them, upstream credentials, and a true content-length.
import { createHmac } from 'node:crypto';
import { exactOr } from '../llm/exact-numbers.js';
import { usageForced } from '../llm/parse-request.js';
import { H } from '../pipeline/contract-headers.js';
import { upstreamRequestId } from '../pipeline/request-state.js';
import type { Stage } from '../pipeline/stage.js';

export const routeStage: Stage = {
  name: 'route',
  onError: 'fail',
  run(state) {
    const { llm, route } = state;
    if (!llm || !route) throw new Error('route before classify');
    if (state.cache?.hit) return; // answered from the cache: nothing goes upstream
    const tier = route.tier;
    const upstream: Upstream = {
      model: tier.model,
      forceUsage: usageForced(llm),
      // A backend that schedules by priority runs the lowest first: the client's own value would let it jump the queue.
      priority: tier.priorityScheduling ? (state.policy.priority ?? 0) : undefined,
      cacheSalt: tier.cacheSaltKey === undefined ? undefined : tenantSalt(tier.cacheSaltKey, state.tenant, llm.json.cache_salt),
      // OpenAI lists chat and the Responses API as taking it, not the legacy completions API (and refuses fields it does not recognise).
      safety: tier.safetyIdKey === undefined || llm.endpoint === 'completions' ? undefined : safetyIds(tier.safetyIdKey, state.tenant, llm.json),
    };
    let text = JSON.stringify(routed(llm.json, upstream));
    // Integers beyond 2^53 go on digit for digit (a 64-bit seed would otherwise reach the backend changed).
    if (llm.exact) {
      const kept = exactOr(text, routed(llm.exact, upstream));
      // Only a client string or key spelled like a mark gets here (exact-numbers.ts): the rounded body goes.
      if (!kept.exact) state.log.info({ event: 'route.integers_rounded' });
      text = kept.text;
    }
    const body = Buffer.from(text, 'utf8');
    state.newBody = body;
    state.setHeaders.push(
      [H.tenant, state.tenant],
      [H.tier, tier.name],
      [H.model, tier.model],
      [H.classifier, route.classification ? route.classification.version : route.source],
      // Envoy keeps content-length in BUFFERED mode and 500s on a mismatch with the new body (§5).
      [H.contentLength, String(body.length)],
    );
    // Vendor keys never leave the gateway: the tier's credential replaces whatever the client sent.
    if (tier.authorization) state.setHeaders.push([H.authorization, tier.authorization]);
    const id = upstreamRequestId(state);
    if (id) state.setHeaders.push(id);
  },
};

/** What the route writes into the body. */
interface Upstream {
  /** The resolved model id. */
  model: string;
  /** A chat or completions stream: usage asked for. */
  forceUsage: boolean;
  /** The tenant's priority, where the tier's backend schedules by it. */
  priority: number | undefined;
  /** The tenant's prefix-cache salt, where the tier has one. */
  cacheSalt: string | undefined;
  /** The end user's identity as the provider gets it, where the tier has a safety identifier secret. */
  safety: SafetyIds | undefined;
}

function routed(json: Record<string, unknown>, { model, forceUsage, priority, cacheSalt, safety }: Upstream): Record<string, unknown> {
  const out: Record<string, unknown> = { ...json, model };
  if (priority !== undefined) out.priority = priority;
  if (cacheSalt !== undefined) out.cache_salt = cacheSalt;
  if (safety !== undefined) {
    out.safety_identifier = safety.safetyIdentifier;
    if (safety.user !== undefined) out.user = safety.user;
  }
  if (forceUsage) {
    // Without include_usage, vLLM and OpenAI send no usage in streams and spend is recorded as $0
    // (landscape.md "Streamed spend"); keep whatever else the client put in stream_options.
    const prev = json.stream_options;
    const base = prev && typeof prev === 'object' ? (prev as Record<string, unknown>) : {};
    out.stream_options = { ...base, include_usage: true };
  }
  return out;
}

/**
 * vLLM shares cached prompt prefixes between requests, so how fast an answer starts tells whether its prompt's
 * prefix was cached: one tenant could probe for another's prompts. Requests with different salts never share
 * cached blocks. The salt is an HMAC of the tenant under a secret, so it cannot be guessed from outside, and a
 * client's own salt (per user, say) narrows it within its tenant, never reaches another's. Tenant ids hold no
 * newline (TENANT_ID), so tenant and client salt cannot run together.
 */
function tenantSalt(key: Buffer, tenant: string, client: unknown): string {
  const h = createHmac('sha256', key).update(tenant);
  if (typeof client === 'string' && client !== '') h.update('\n').update(client);
  return h.digest('base64url');
}

interface SafetyIds {
  safetyIdentifier: string;
  /** The legacy `user`, when the client sent one: the provider reads it for the same purpose. */
  user: string | undefined;
}

/**
 * OpenAI acts on abuse per end user when each request names one (`safety_identifier`; the deprecated `user`
 * before it), and otherwise on the organisation: one tenant's requests could stop every tenant's access. So on a
 * tier with the secret, each request names its tenant, narrowed by the end user the client named, as an HMAC:
 * the provider can tell tenants and their users apart, never who they are, and no client can take another
 * tenant's identity by naming it. Kept apart from the prefix-cache salt by its own label, in case one secret
 * serves both.
 */
function safetyIds(key: Buffer, tenant: string, json: Record<string, unknown>): SafetyIds {
  const id = (client: unknown) => {
    const h = createHmac('sha256', key).update('safety_identifier\n').update(tenant);
    if (typeof client === 'string' && client !== '') h.update('\n').update(client);
    return h.digest('base64url');
  };
  const named = typeof json.safety_identifier === 'string' && json.safety_identifier !== '' ? json.safety_identifier : json.user;
  return { safetyIdentifier: id(named), user: typeof json.user === 'string' ? id(json.user) : undefined };
}
