// The model list as the gateway sees it (routing.models): GET /v1/models answered by tiergate with the model
// names this caller's tenant may put in `model` (the auto models, then aliases, then each tier's own model
// id), and GET /v1/models/{id} with one of them. Behind a gateway a client's model picker (Cline, Continue,
// Open WebUI) should offer `auto` and the aliases, which no backend knows, and nothing the tenant's ACL would
// refuse. The shapes are OpenAI's: {"object":"list","data":[{id, object:"model", created, owned_by}]}, and a
// 404 model_not_found for an id that is not listed.
import type { Runtime } from '../config/runtime.js';
import { TiergateError } from '../errors.js';
import type { HeaderMap, ReplyDecision } from '../extproc/types.js';
import { authenticate } from '../stages/authenticate.js';
import type { TenantPolicy } from '../policy/tenant-policy.js';
import { modelAllowed, tierAllowed } from '../stages/policy.js';
import { H } from './contract-headers.js';
import { replyFor } from './header-rules.js';
import { decodedSegment } from '../path-segment.js';

export interface ModelEntry {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

/**
 * The reply when this request is for the model list and tiergate serves it; else undefined. `policyOf`: the
 * caller's tenant policy, asked for only when the request is for the list.
 */
export function modelListReply(rt: Runtime, method: string, path: string, policyOf: () => TenantPolicy, now: number): ReplyDecision | undefined {
  const cfg = rt.config.routing.models;
  if (!cfg.serve || method !== 'GET') return undefined;
  if (path !== cfg.path && !path.startsWith(`${cfg.path}/`)) return undefined;
  const created = Math.floor(now / 1000);
  const policy = policyOf();
  if (path === cfg.path || path === `${cfg.path}/`) return json({ object: 'list', data: listedModels(rt, policy, created) });
  const id = decodedSegment(path.slice(cfg.path.length + 1));
  const entry = id === undefined ? undefined : listedModels(rt, policy, created).find((m) => m.id === id);
  if (entry) return json(entry);
  // OpenAI's message, naming the model as the client sent it.
  return replyFor(new TiergateError('model_not_found', `The model \`${id ?? path}\` does not exist or you do not have access to it.`, 'model'));
}

/**
 * What the tenant may ask for, by the policy stage's rules: a name routes if the ACL lists it or its tier; an
 * auto model if any tier is allowed (the classifier's choice is then downgraded or refused per the policy).
 */
export function listedModels(rt: Runtime, policy: TenantPolicy, created: number): ModelEntry[] {
  const allowed = (name: string, tier: string) => modelAllowed(policy, name, tier);
  const out: ModelEntry[] = [];
  if ([...rt.tiers.values()].some((t) => tierAllowed(rt, policy, t.name))) for (const m of rt.autoModels) out.push({ id: m, object: 'model', created, owned_by: 'tiergate' });
  for (const [alias, tier] of Object.entries(rt.config.aliases)) {
    if (allowed(alias, tier)) out.push({ id: alias, object: 'model', created, owned_by: 'tiergate' });
  }
  for (const t of rt.tiers.values()) {
    if (allowed(t.model, t.name) && !out.some((m) => m.id === t.model)) out.push({ id: t.model, object: 'model', created, owned_by: t.provider });
  }
  return out;
}

/**
 * Whose list a caller of a public path gets: no key is needed there, but a valid one still names its tenant;
 * without one (or with one that does not authenticate) the "*" tenant entry's view.
 */
export function publicCallerTenant(headers: HeaderMap, rt: Runtime): string {
  try {
    return authenticate(headers, rt).tenant;
  } catch (err) {
    if (err instanceof TiergateError) return '*';
    throw err;
  }
}

function json(body: unknown): ReplyDecision {
  return { kind: 'reply', status: 200, headers: [[H.contentType, 'application/json']], body: Buffer.from(JSON.stringify(body)), details: 'tiergate_model_list' };
}
