// Admission against every limit that applies: requests per minute, and (when token or cost limits exist) a
// reservation of prompt tokens plus the completion allowance, and of what they cost at the routed tier's
// prices, reconciled when the response ends.
import type { IdKind, ResponseAffinity } from '../affinity/response-affinity.js';
import { conversationId } from '../llm/responses-request.js';
import { newId } from '../ids.js';
import type { Budgets } from '../budget/budgets.js';
import type { Runtime } from '../config/runtime.js';
import type { LlmRequest } from '../llm/parse-request.js';
import { countTokens, countTokensNow } from '../llm/tokenizer.js';
import { joinedText } from '../classify/prompt-text.js';
import type { TenantPolicy } from '../policy/tenant-policy.js';
import { chatFramingTokens, promptExtra, uncountedPromptTokens } from '../usage/estimate.js';
import { microUsdOf, type Cost } from '../usage/price-table.js';
import { sumUsage } from '../usage/usage.js';
import type { RequestState } from '../pipeline/request-state.js';
import type { Stage } from '../pipeline/stage.js';

export function createBudgetStage(budgets: Budgets, affinity: ResponseAffinity): Stage {
  return {
    name: 'budget',
    onError: 'fail',
    run(state) {
      const { policy, runtime: rt, llm } = state;
      const tier = state.route?.tier;
      if (!hasLimits(rt, policy, tier?.name) || !llm) return;
      // A cache hit counts as a request but spends no tokens.
      if (state.cache?.hit || !hasTokenLimits(rt, policy, tier?.name)) return admit(budgets, state, null);
      const text = promptText(llm);
      const withHistory = (history: number | undefined) => {
        const reserve = (promptTokens: number) => admit(budgets, state, reservation(rt, llm, promptTokens + (history ?? 0), costBudget(policy) ? tier?.model : undefined));
        const now = countTokensNow(text);
        return now !== undefined ? reserve(now) : countTokens(text).then(reserve);
      };
      const history = storedHistory(affinity, state, llm);
      return history instanceof Promise ? history.then(withHistory) : withHistory(history);
    },
  };
}

/**
 * The stored history a Responses API turn continues: a stored response (previous_response_id) or a
 * conversation. The backend bills it as the turn's input though the request carries none of it.
 */
function continued(llm: LlmRequest): { kind: IdKind; id: string } | undefined {
  if (llm.endpoint !== 'responses') return undefined;
  const previous = llm.json.previous_response_id;
  if (typeof previous === 'string') return { kind: 'response', id: previous };
  const conversation = conversationId(llm.json.conversation);
  return conversation === undefined ? undefined : { kind: 'conversation', id: conversation };
}

/**
 * What the history a turn continues came to, when affinity recorded it (LlmStream, at the end of the turn
 * before, through AnswerRecords). Read under the tenant's own key: another tenant's id (which isolation refused
 * before this stage, unless off) finds nothing.
 */
function storedHistory(affinity: ResponseAffinity, state: RequestState, llm: LlmRequest): number | undefined | Promise<number | undefined> {
  const cfg = state.runtime.config.routing.affinity;
  const c = affinity.on(cfg) ? continued(llm) : undefined;
  return c && affinity.contextOf(state.tenant, c.kind, c.id, cfg);
}

function admit(budgets: Budgets, state: RequestState, r: Reservation | null): void | Promise<void> {
  const tier = state.route?.tier.name;
  // A cache hit is answered here and now: it holds no backend, so it takes no concurrent-request slot.
  const holdsBackend = state.cache?.hit === undefined;
  const out = budgets.admit(state.runtime, { id: newId(), policy: state.policy, tier, tokens: r?.tokens ?? null, microUsd: r?.microUsd ?? 0, holdsBackend });
  if (out instanceof Promise) return out.then((o) => apply(state, o));
  apply(state, out);
}

function apply(state: RequestState, o: Awaited<ReturnType<Budgets['admit']>>): void {
  if ('error' in o) throw o.error;
  if (o.admitted) state.admission = o.admitted;
}

export function hasLimits(rt: Runtime, p: TenantPolicy, tier: string | undefined): boolean {
  return p.requestsPerMinute !== undefined || p.maxConcurrentRequests !== undefined || hasTokenLimits(rt, p, tier);
}

/** Whether any token or cost limit applies to the tenant on this tier: only then is a reservation made. */
export function hasTokenLimits(rt: Runtime, p: TenantPolicy, tier: string | undefined): boolean {
  const b = rt.config.budgets;
  return p.dailyTokenBudget !== undefined || p.monthlyTokenBudget !== undefined || costBudget(p) || p.tokensPerMinute !== undefined || b.globalTokensPerMinute !== undefined || (tier !== undefined && b.tierTokensPerMinute[tier] !== undefined);
}

function costBudget(p: Pick<TenantPolicy, 'dailyCostBudgetUsd' | 'monthlyCostBudgetUsd'>): boolean {
  return p.dailyCostBudgetUsd !== undefined || p.monthlyCostBudgetUsd !== undefined;
}

/**
 * Tool definitions (and the legacy `functions`) and the tool calls in the history (their arguments: an agent's
 * whole files, written through a tool) are part of the prompt the model reads, so they count too.
 */
function promptText(llm: LlmRequest): string {
  const text = joinedText(llm.messages);
  const extra = promptExtra(llm.json, llm.messages);
  return extra ? `${text}\n${extra}` : text;
}

interface Reservation {
  tokens: number;
  /** What those tokens cost at the routed model's prices, in micro-dollars (0 without a cost budget). */
  microUsd: number;
}

/**
 * Prompt tokens plus what the completions may use: max_completion_tokens, max_tokens, else the configured
 * estimate; times the completions generated (n, or a completions request's best_of when larger; both validated
 * as positive integers by the request schema), for each prompt of a completions batch. A Responses API turn
 * generates one output, capped by its max_output_tokens; fields of the other APIs in its body are not read (nor
 * validated); its prompt includes the stored response or conversation it continues, when affinity recorded
 * what that came to (storedHistory). A completions prompt's token ids are its tokens, counted one each. `pricedModel`: with a cost
 * budget, the routed tier's model, whose input and output prices (at the service tier asked for) give the cost
 * (rounded up).
 */
function reservation(rt: Runtime, llm: LlmRequest, promptTokens: number, pricedModel: string | undefined): Reservation {
  const j = llm.json;
  const estimate = rt.config.budgets.completionEstimate;
  const input = promptTokens + chatFramingTokens(llm.messages.length) + uncountedPromptTokens(llm.messages, llm.promptTokenIds, rt.config.budgets.mediaPartEstimate);
  let output: number;
  if (llm.endpoint === 'responses') {
    output = typeof j.max_output_tokens === 'number' ? j.max_output_tokens : estimate;
  } else {
    const maxOut = [j.max_completion_tokens, j.max_tokens].find((v): v is number => typeof v === 'number') ?? estimate;
    // An empty batch is reserved as one prompt, never as nothing.
    const prompts = Math.max(1, llm.prompts ?? 1);
    output = maxOut * prompts * Math.max(1, typeof j.n === 'number' ? j.n : 1, typeof j.best_of === 'number' ? j.best_of : 1);
  }
  let cost: Cost | undefined;
  if (pricedModel !== undefined) {
    const usage = sumUsage(input, output);
    // At the service tier asked for, when the model has prices for it (priority costs more); else the default's.
    // The reconcile counts the tier the response says served it.
    const asked = typeof j.service_tier === 'string' ? j.service_tier : undefined;
    cost = rt.prices.cost(usage, [pricedModel], asked) ?? rt.prices.cost(usage, [pricedModel]);
  }
  return { tokens: input + output, microUsd: microUsdOf(cost?.total) ?? 0 };
}
