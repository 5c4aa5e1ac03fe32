// Paths routed without a pipeline run. Unclassified paths (routing.unclassifiedPaths, e.g. /v1/embeddings): a
// fixed tier per path, no body read; request rates apply, and cost budgets count what the response cost (these
// requests are not tokenised, so token limits do not apply); the tenant's plan must include the tier. Other
// paths: the model list when tiergate serves it; else passed through with only the header rules, plus, for a
// stored Responses API response or a conversation, the tier of the backend that holds it.
import { newId } from '../ids.js';
import { backendView } from '../path-segment.js';
import { isolationRefusal, type Holder, type IdKind, type ResponseAffinity } from '../affinity/response-affinity.js';
import type { Budgets } from '../budget/budgets.js';
import type { Runtime, TierRuntime } from '../config/runtime.js';
import { TiergateError } from '../errors.js';
import { CONTINUE, type ContinueDecision, type Decision, type HeaderMap, type ModeOverride } from '../extproc/types.js';
import { DEFAULT_TENANT, type Caller } from '../stages/authenticate.js';
import { tierAllowed } from '../stages/policy.js';
import type { Metrics } from '../telemetry/metrics.js';
import { endpointOf } from '../stages/parse.js';
import { H } from './contract-headers.js';
import { clientRoutingHeaders, credentials } from './header-rules.js';
import { upstreamRequestId, type RequestState } from './request-state.js';
import { modelListReply, publicCallerTenant } from './model-list.js';

export interface FixedPathRoute {
  tier: TierRuntime | undefined;
  /** The request-headers answer, or the ACL's or a limit's error; a promise when the budget store is remote. */
  outcome: ContinueDecision | TiergateError | Promise<ContinueDecision | TiergateError>;
}

export function routeFixedPath(rt: Runtime, state: RequestState, caller: Caller | undefined, budgets: Budgets, metrics: Metrics): FixedPathRoute {
  const name = rt.unclassifiedPaths.get(state.path)?.tier;
  const tier = name ? rt.tiers.get(name) : undefined;
  // The body is not read, so the ACL cannot see a model; the tier the path goes to is what the plan must allow,
  // as for a classified request. No downgrade: another tier would be another kind of model (a chat model
  // cannot answer an embeddings request). Refused before admission, so it reserves nothing.
  if (tier && !tierAllowed(rt, state.policy, tier.name)) {
    metrics.aclDecisions.inc({ result: 'refused' });
    return { tier, outcome: new TiergateError('model_not_allowed', `${state.path} goes to the '${tier.name}' tier, which your plan does not include.`, 'model') };
  }
  const set: Array<[string, string]> = [[H.tenant, state.tenant]];
  if (tier) set.push([H.tier, tier.name], [H.model, tier.model]);
  if (tier?.authorization) set.push([H.authorization, tier.authorization]);
  const id = upstreamRequestId(state);
  if (id) set.push(id);
  const remove = [...clientRoutingHeaders(state.headers, set), ...credentials(caller, set)];
  // Not read, so not tokenised: requests per minute apply, and the cost budgets count what the response cost.
  const admitted = budgets.admit(rt, { id: newId(), policy: state.policy, tier: tier?.name, tokens: null, countCost: true, holdsBackend: true });
  const decide = (o: Awaited<typeof admitted>): ContinueDecision | TiergateError => {
    if ('error' in o) return o.error;
    state.admission = o.admitted;
    // The body is not read here, so Envoy need not hold it (nor send it over): an embeddings batch can be tens of
    // MB. The response is still read for its usage, streamed (response-answers.ts says why). Sent only where
    // Envoy allows overrides; the transport drops it otherwise.
    return { kind: 'continue', headers: { set, remove }, clearRouteCache: true, modeOverride: UNREAD_BODY };
  };
  return { tier, outcome: admitted instanceof Promise ? admitted.then(decide) : decide(admitted) };
}

const UNREAD_BODY: ModeOverride = Object.freeze({ requestBodyMode: 'NONE', responseBodyMode: 'STREAMED' });

/**
 * A path that is neither classified nor unclassified: answered (the model list), passed through, or refused (a
 * stored response the caller's tenant may not use: response isolation).
 */
export function otherPath(rt: Runtime, state: RequestState, caller: Caller | undefined, spoofed: string[], affinity: ResponseAffinity, readAnswer: boolean): Decision | TiergateError | Promise<Decision | TiergateError> {
  const { headers, path } = state;
  const tenant = otherPathTenant(rt, caller);
  const models = modelListReply(rt, state.method, path, () => rt.tenants.policyFor(tenant ?? publicCallerTenant(headers, rt)), Date.now());
  if (models) return models;
  const holder = statefulPathTier(rt, path, tenant, affinity, state);
  const pass = (t: TierRuntime | undefined | TiergateError) => (t instanceof TiergateError ? t : passThrough(rt, headers, caller, spoofed, t, readAnswer));
  return holder instanceof Promise ? holder.then(pass) : pass(holder);
}

/** The tenant of a request on a path tiergate does not account for: auth runs there only when keys are on, and
 * with auth off every caller is the default tenant. Undefined on a path made public. */
export function otherPathTenant(rt: Runtime, caller: Caller | undefined): string | undefined {
  return caller?.tenant ?? (rt.auth.mode === 'none' ? DEFAULT_TENANT : undefined);
}

/**
 * A request about state a Responses API backend keeps: a stored response (GET or DELETE /v1/responses/{id}, its
 * cancel and input_items) or a conversation (/v1/conversations and everything under it, beside the Responses
 * path). It must reach the backend holding that state: for a response, the tier response affinity remembered
 * for its id (when on), else the stateful tier; for a conversation, the stateful tier, where every conversation
 * turn goes. Envoy routes it by the tier header, as it routes the turns themselves. An id another tenant
 * stored or created is refused (routing.affinity.isolation). Undefined for any other path. `tenant`: the
 * caller's, if known.
 */
function statefulPathTier(rt: Runtime, path: string, tenant: string | undefined, affinity: ResponseAffinity, state: RequestState): TierRuntime | undefined | TiergateError | Promise<TierRuntime | TiergateError> {
  if (heldState(rt, path) === undefined) return undefined;
  // The id as the backend will read it (`resp%5Fx` is resp_x there; `resp_a/../resp_b` is resp_b): looked up
  // as written, an escaped id would be unknown to isolation and reach another tenant's response all the same.
  const held = heldState(rt, backendView(path) ?? path);
  const cfg = rt.config.routing.affinity;
  // Creating a conversation (its id is claimed from the answer: LlmStream), a POST beside the stored responses
  // (/v1/responses/input_tokens counts a prompt's tokens), or no tenant to look up under (a path made public).
  if (held?.id === undefined || held.id === '' || (held.kind === 'response' && state.method === 'POST' && held.rest === undefined) || !affinity.on(cfg) || tenant === undefined) return rt.statefulTier;
  const id = held.id;
  if (held.kind === 'conversation') {
    if (cfg.isolation === 'off') return rt.statefulTier;
    const refusedOr = (h: Holder) => isolationRefusal(h, cfg, id, 'conversation', state.log) ?? rt.statefulTier;
    const owner = affinity.ownerOf(tenant, 'conversation', id, cfg);
    return owner instanceof Promise ? owner.then(refusedOr) : refusedOr(owner);
  }
  const onTier = (h: Holder) => isolationRefusal(h, cfg, id, 'response', state.log) ?? ((h.kind === 'own' && h.tier !== undefined ? rt.tiers.get(h.tier) : undefined) ?? rt.statefulTier);
  const found = affinity.holder(tenant, id, cfg);
  return found instanceof Promise ? found.then(onTier) : onTier(found);
}

/** Whether a request creates a conversation (POST to the Conversations API's own path): its answer names the id. */
export function createsConversation(rt: Runtime, method: string, path: string): boolean {
  if (method !== 'POST') return false;
  const held = heldState(rt, path);
  return held?.kind === 'conversation' && held.id === undefined;
}

/**
 * The accounted path a request's path stands for when it is not written plainly (`/v1/chat/%63ompletions`,
 * `/v1//embeddings`, `/v1/chat/completions/`): Envoy's prefix route sends it to a backend, which may read it as
 * that path and serve it, past every check tiergate makes on the plain one. Undefined for a plain path, and for
 * one that stands for nothing tiergate accounts for.
 */
export function disguisedPath(rt: Runtime, path: string): string | undefined {
  const view = backendView(path);
  if (view === undefined || view === path) return undefined;
  if (rt.llmPaths.has(view) || rt.unclassifiedPaths.has(view)) return view;
  // A stored response or conversation already recognised as one (an id with an escape in it) is served as such.
  return heldState(rt, view) !== undefined && heldState(rt, path) === undefined ? view : undefined;
}

/** State a Responses API backend keeps, by id (undefined: the collection itself), and what follows the id. */
interface HeldState {
  kind: IdKind;
  id: string | undefined;
  rest: string | undefined;
}

/** What a path under a Responses API path is about: a response (by id) or a conversation; else undefined. */
function heldState(rt: Runtime, path: string): HeldState | undefined {
  for (const p of rt.classifyPaths) {
    if (endpointOf(p) !== 'responses') continue;
    if (path.startsWith(`${p}/`)) return byId('response', path.slice(p.length + 1));
    // The Conversations API sits beside it: /v1/responses → /v1/conversations.
    const conversations = `${p.slice(0, -'responses'.length)}conversations`;
    if (path === conversations) return { kind: 'conversation', id: undefined, rest: undefined };
    if (path.startsWith(`${conversations}/`)) return byId('conversation', path.slice(conversations.length + 1));
  }
  return undefined;
}

function byId(kind: IdKind, after: string): HeldState {
  const slash = after.indexOf('/');
  return slash === -1 ? { kind, id: after, rest: undefined } : { kind, id: after.slice(0, slash), rest: after.slice(slash + 1) };
}

/** A path tiergate does not account for: the header rules apply, and the tier of the state it is about (if any). */
function passThrough(rt: Runtime, headers: HeaderMap, caller: Caller | undefined, spoofed: string[], holder: TierRuntime | undefined, readAnswer: boolean): Decision {
  // An authenticated caller's key goes no further, and the backend sees its tenant, as on LLM paths.
  const set: Array<[string, string]> = caller?.principal !== undefined ? [[H.tenant, caller.tenant]] : [];
  if (holder) {
    set.push([H.tier, holder.name]);
    if (holder.authorization) set.push([H.authorization, holder.authorization]);
  }
  const remove = set.length > 0 ? [...clientRoutingHeaders(headers, set), ...credentials(caller, set)] : spoofed;
  if (set.length === 0 && remove.length === 0 && !rt.config.envoy.allowModeOverride) return CONTINUE;
  return {
    kind: 'continue',
    ...(set.length > 0 || remove.length > 0 ? { headers: { set, remove }, clearRouteCache: true } : {}),
    // Nothing more to see on this request: ask Envoy to stop sending it (§10; 1.37+ closes the stream). Only
    // a conversation's creation is read on: its answer names the id to claim.
    modeOverride: readAnswer ? READ_ANSWER_ONLY : NOTHING_MORE,
  };
}

const NOTHING_MORE: ModeOverride = Object.freeze({ requestBodyMode: 'NONE', responseHeaderMode: 'SKIP', responseBodyMode: 'NONE' });
const READ_ANSWER_ONLY: ModeOverride = Object.freeze({ requestBodyMode: 'NONE' });
