// What a Responses API answer tells response affinity, recorded as the answer passes: the tier of a stored
// turn's response once its id shows, the items the answer seals, and, once it ends, what the history the next
// turn continues came to (for that turn's token reservation). The piece that shows one of them waits until it
// is recorded (bounded by routing.affinity.deadlineMs): the client cannot send an id back, or continue, before
// tiergate knows it.
import { sealedItemId, type AffinityConfig, type IdKind, type ResponseAffinity } from '../affinity/response-affinity.js';
import type { Runtime } from '../config/runtime.js';
import type { LlmRequest } from '../llm/parse-request.js';
import { conversationId } from '../llm/responses-request.js';
import { hasTokenLimits } from '../stages/budget.js';
import { affinityTracks } from '../stages/classify.js';
import type { Usage } from '../usage/usage.js';
import type { RequestState } from './request-state.js';

/** What the answer has shown so far (ResponseAccounting). */
export interface AnswerFacts {
  responseId(): string | undefined;
  /** Items sealed since the last call. */
  takeSealedItems(): string[] | undefined;
  /** Once the answer has ended. */
  reportedUsage(): Usage | undefined;
}

export class AnswerRecords {
  /**
   * The records a routed turn's answer makes, or none: only a Responses API turn while affinity is on makes
   * them. `tier`: the tier the turn was routed to, which its response and its sealed items are recorded under.
   */
  static forTurn(affinity: ResponseAffinity, runtime: Runtime, state: RequestState, llm: LlmRequest, tier: string): AnswerRecords | undefined {
    const cfg = runtime.config.routing.affinity;
    if (llm.endpoint !== 'responses' || !affinity.on(cfg)) return undefined;
    // A stored turn that is not part of a server-side conversation: its response id will be remembered.
    const tracked = affinityTracks(llm, affinity, cfg);
    // Its history is recorded under that response, or else under the conversation the turn is part of; only
    // with token limits, which alone read it (budget stage): it is one more store entry per turn, which a memory
    // store's bound would take from the tiers it keeps.
    const history = hasTokenLimits(runtime, state.policy, tier) ? historyOf(llm, tracked) : undefined;
    return new AnswerRecords(affinity, state.tenant, cfg, tracked ? tier : undefined, tier, history);
  }

  private constructor(
    private readonly affinity: ResponseAffinity,
    private readonly tenant: string,
    private readonly cfg: AffinityConfig,
    /** The tier to remember for the response id, until remembered. */
    private rememberTier: string | undefined,
    /** The tier to record the items the answer seals under. */
    private readonly sealedTier: string,
    /** What the history this answer ends is recorded under: the stored response (its id once the answer shows it) or the conversation. */
    private readonly history: { kind: IdKind; id: string | undefined } | undefined,
  ) {}

  /** After each piece of the answer (`ended`: the last): a promise while a write is pending. */
  afterPiece(facts: AnswerFacts, ended: boolean): Promise<unknown> | undefined {
    const remembered = this.rememberResponse(facts, ended);
    const sealed = this.recordSealedItems(facts);
    return remembered && sealed ? Promise.all([remembered, sealed]) : (remembered ?? sealed);
  }

  /**
   * A stored turn's response id, once the answer shows it: its tier remembered. Once the answer has ended, also
   * the tokens its history came to (the response's, or the conversation's the turn is part of), which the turn
   * continuing it is billed for: a client continuing at once is reserved for that history.
   */
  private rememberResponse(facts: AnswerFacts, ended: boolean): Promise<unknown> | undefined {
    let tierSet: void | Promise<void> = undefined;
    if (this.rememberTier !== undefined) {
      const id = facts.responseId();
      if (id === undefined) return undefined;
      tierSet = this.affinity.remember(this.tenant, id, this.rememberTier, this.cfg);
      this.rememberTier = undefined;
      // A turn affinity tracks is in no conversation: a history recorded is its response's.
      if (this.history) this.history.id = id;
    }
    const h = this.history;
    const tokens = ended && h?.id !== undefined ? contextTokens(facts.reportedUsage()) : undefined;
    const contextSet = h?.id !== undefined && tokens !== undefined ? this.affinity.recordContext(this.tenant, h.kind, h.id, tokens, this.cfg) : undefined;
    if (tierSet instanceof Promise || contextSet instanceof Promise) return Promise.all([tierSet, contextSet]);
    return undefined;
  }

  /**
   * The items the answer showed sealed since the last piece, recorded under the tier that sealed them and the
   * tenant they were sealed for (as a stored response is: ResponseAffinity.remember).
   */
  private recordSealedItems(facts: AnswerFacts): Promise<unknown> | undefined {
    const sealed = facts.takeSealedItems();
    if (sealed === undefined) return undefined;
    const { cfg, sealedTier } = this;
    const written = sealed.map((s) => this.affinity.remember(this.tenant, sealedItemId(s), sealedTier, cfg, cfg.sealedTtlSeconds));
    return written.some((w) => w instanceof Promise) ? Promise.all(written) : undefined;
  }
}

/** Where a turn's history is recorded: its own response when tracked (the id comes with the answer), else its conversation. */
function historyOf(llm: LlmRequest, tracked: boolean): { kind: IdKind; id: string | undefined } | undefined {
  if (tracked) return { kind: 'response', id: undefined };
  const conversation = conversationId(llm.json.conversation);
  return conversation === undefined ? undefined : { kind: 'conversation', id: conversation };
}

/**
 * What a history came to, as the backend reported it: the answer's input (the whole history it read) and its
 * output, which the next turn reads back. Not the reported total: a backend's total may count what is not
 * carried forward, or be missing. None without reported usage: an estimate is not made on the answer path.
 */
function contextTokens(u: Usage | undefined): number | undefined {
  return u && u.inputTokens + u.outputTokens;
}
