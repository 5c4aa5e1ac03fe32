// Decides the tier: a configured alias (or a tier's own model id) routes directly; `auto` and any unknown
// model name are classified: by the active version, or by a canary candidate for its sticky share, with the
// shadow version (if any) evaluated beside it. A Responses API turn that keeps state on the backend is
// classified only when tiergate can keep its conversation on one backend (response affinity, README
// "Responses API"); otherwise it goes to routing.statefulTier. A turn that sends back items the provider sealed
// (reasoning, a compaction) goes to the tier that sealed them, when affinity knows it.
import { isolationRefusal, sealedItemId, type AffinityConfig, type Holder, type ResponseAffinity } from '../affinity/response-affinity.js';
import { declaredTools, type LlmRequest } from '../llm/parse-request.js';
import { conversationId } from '../llm/responses-request.js';
import type { RequestState, RouteDecision } from '../pipeline/request-state.js';
import type { Stage } from '../pipeline/stage.js';
import { TiergateError } from '../errors.js';
import type { Metrics } from '../telemetry/metrics.js';

export function createClassifyStage(affinity: ResponseAffinity): Stage {
  return {
    name: 'classify',
    onError: 'fail',
    run(state) {
      const rt = state.runtime;
      const llm = state.llm;
      if (!llm) throw new Error('classify before parse');
      const model = llm.model ?? 'auto';
      const direct = rt.autoModels.has(model) ? undefined : rt.modelToTier.get(model);
      const cfg = rt.config.routing.affinity;
      if (!affinity.on(cfg)) return route(state, llm, direct, affinity, undefined, undefined);
      // Stored items named by id (item_reference): tiergate keeps no record of whose each item is, so strict,
      // which refuses what it cannot vouch for, refuses them all; known lets them pass, like every unknown id.
      if (llm.itemReferences && cfg.isolation === 'strict') throw new TiergateError('item_not_found', 'Items named by id (item_reference) cannot be verified through this gateway; send the items themselves.', 'input');
      // Chat, completions and a turn that keeps no state and sends nothing sealed back: nothing to look up.
      if (!llm.stateful && llm.sealed === undefined) return route(state, llm, direct, affinity, undefined, undefined);
      const isolated = cfg.isolation !== 'off';
      // A conversation's turn: whose conversation it is (isolation), before anything else.
      const conversation = isolated ? conversationId(llm.json.conversation) : undefined;
      const previous = llm.json.previous_response_id;
      // Whether sealed items may decide the tier: the turn would otherwise be classified.
      const routable = direct === undefined && (!llm.stateful || (affinityTracks(llm, affinity, cfg) && typeof previous !== 'string'));
      const afterContinuation = (holder: Holder | undefined): void | Promise<void> => {
        const sealed = llm.sealed === undefined ? undefined : sealedHolder(state, llm.sealed, affinity, cfg, routable);
        return sealed instanceof Promise ? sealed.then((s) => route(state, llm, direct, affinity, holder, s)) : route(state, llm, direct, affinity, holder, sealed);
      };
      const afterConversation = (owner: Holder | undefined): void | Promise<void> => {
        if (owner && conversation !== undefined) {
          const refused = isolationRefusal(owner, cfg, conversation, 'conversation_turn', state.log);
          if (refused) throw refused;
        }
        // A continuation: whose response it continues is known next. Isolation checks every one, whatever
        // model it names; otherwise only one that affinity routes needs the lookup.
        if (typeof previous !== 'string' || !(isolated || (direct === undefined && affinityTracks(llm, affinity, cfg)))) return afterContinuation(undefined);
        const go = (holder: Holder): void | Promise<void> => {
          const refused = isolationRefusal(holder, cfg, previous, 'continuation', state.log);
          if (refused) throw refused;
          return afterContinuation(holder);
        };
        const holder = affinity.holder(state.tenant, previous, cfg);
        return holder instanceof Promise ? holder.then(go) : go(holder);
      };
      const owner = conversation === undefined ? undefined : affinity.ownerOf(state.tenant, 'conversation', conversation, cfg);
      return owner instanceof Promise ? owner.then(afterConversation) : afterConversation(owner);
    },
  };
}

/**
 * The most recent sealed items checked per turn. More than any context window holds; a bound on the digests and
 * store reads one request can cause. Older ones in a longer input pass unchecked.
 */
const MAX_CHECKED_SEALED = 1024;

/**
 * Items the provider sealed (`encrypted_content`: reasoning, a compaction) that a turn sends back. Only the
 * backend that sealed them can read them: the tier of the most recent one (the turn before sealed it) is the
 * turn's, when affinity recorded it and the turn would otherwise be classified (`routable`). Isolation checks
 * every one: another tenant's is refused as the provider refuses content it cannot read. Returns whose the most
 * recent one is, when it may route; throws a refusal.
 */
function sealedHolder(state: RequestState, sealed: readonly string[], affinity: ResponseAffinity, cfg: AffinityConfig, routable: boolean): Holder | undefined | Promise<Holder | undefined> {
  const isolated = cfg.isolation !== 'off';
  if (!isolated && !routable) return undefined;
  const lastId = sealedItemId(sealed[sealed.length - 1] as string);
  const ids = isolated ? [...new Set(sealed.slice(-MAX_CHECKED_SEALED).map(sealedItemId))] : [lastId];
  const holders = ids.map((id) => affinity.holder(state.tenant, id, cfg));
  const go = (found: readonly Holder[]): Holder | undefined => {
    for (let i = 0; i < ids.length; i++) {
      const refused = isolationRefusal(found[i] as Holder, cfg, ids[i] as string, 'sealed', state.log);
      if (refused) throw refused;
    }
    return routable ? found[ids.lastIndexOf(lastId)] : undefined;
  };
  return holders.some((h) => h instanceof Promise) ? Promise.all(holders).then(go) : go(holders as Holder[]);
}

/**
 * `holder`: whose the response a continuation names is, when looked up; `sealed`: whose the most recent sealed
 * item the turn sends back is, when it may decide the tier.
 */
function route(state: RequestState, llm: LlmRequest, direct: string | undefined, affinity: ResponseAffinity, holder: Holder | undefined, sealed: Holder | undefined): void {
  const rt = state.runtime;
  if (direct !== undefined) {
    const tier = rt.tiers.get(direct);
    if (!tier) throw new Error(`alias ${String(llm.model)} names unknown tier ${direct}`);
    state.route = { tier, source: 'alias' };
    return;
  }
  if (llm.stateful) {
    if (!affinityTracks(llm, affinity, rt.config.routing.affinity)) return toStatefulTier(state);
    if (holder) return continueOn(state, holder.kind === 'own' ? holder.tier : undefined);
    // A new turn: classified, and the tier that answers it remembered (LlmStream) for what follows.
  }
  // Items sealed by an earlier turn go back to its tier; if that is no longer known, the turn is classified.
  const tier = sealed?.kind === 'own' && sealed.tier !== undefined ? rt.tiers.get(sealed.tier) : undefined;
  if (tier) {
    state.route = { tier, source: 'affinity' };
    return;
  }
  classify(state);
}

/**
 * Whether response affinity keeps this turn's tier: a stateful Responses turn while affinity is on, except a
 * conversation's (a conversation is created before its first turn, on its own path: not tracked). The classify
 * stage routes by it, and the stream remembers the tier that answered by it.
 */
export function affinityTracks(llm: LlmRequest, affinity: ResponseAffinity, cfg: AffinityConfig): boolean {
  return llm.stateful && llm.json.conversation == null && affinity.on(cfg);
}

function classify(state: RequestState): void {
  const llm = state.llm;
  if (!llm) return;
  const { decision, shadow } = state.runtime.classifiers.classify({ tenant: state.tenant, headers: state.headers, messages: llm.messages, shape: { tools: declaredTools(llm) } });
  const tier = state.runtime.tiers.get(decision.tier);
  if (!tier) throw new Error(`classifier chose unknown tier ${decision.tier}`);
  state.route = shadow ? { tier, source: 'classifier', classification: decision, shadow } : { tier, source: 'classifier', classification: decision };
}

/** A continuation goes where its conversation is; when that is unknown (expired, store down), to the stateful tier. */
function continueOn(state: RequestState, tierName: string | undefined): void {
  const tier = tierName === undefined ? undefined : state.runtime.tiers.get(tierName);
  if (!tier) return toStatefulTier(state);
  state.route = { tier, source: 'affinity' };
}

function toStatefulTier(state: RequestState): void {
  state.route = { tier: state.runtime.statefulTier, source: 'stateful' };
}

/** Counts a classifier's decision (and its shadow's agreement) for a request that was routed upstream. */
export function countDecision(metrics: Metrics, route: RouteDecision): void {
  const c = route.classification;
  if (!c) return;
  metrics.decisions.inc({ version: c.version, rule: c.rule, tier: c.tier });
  const sh = route.shadow;
  if (sh) metrics.shadowDecisions.inc({ version: c.version, shadow_version: sh.version, tier: c.tier, shadow_tier: sh.tier, agreement: sh.tier === c.tier ? 'agree' : 'disagree' });
}
