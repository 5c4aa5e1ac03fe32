// Admission against every limit that applies: requests per minute, and (when token limits exist) a
// reservation of prompt tokens plus the completion allowance, reconciled when the response ends.
import { newId } from '../ids.js';
import type { Budgets } from '../budget/budgets.js';
import type { Runtime } from '../config/runtime.js';
import type { LlmRequest } from '../llm/parse-request.js';
import { countTokens, countTokensNow } from '../llm/tokenizer.js';
import { joinedText } from '../classify/prompt-text.js';
import type { TenantPolicy } from '../policy/tenant-policy.js';
import { chatFramingTokens, promptDefinitions } from '../usage/estimate.js';
import type { RequestState } from '../pipeline/request-state.js';
import type { Stage } from '../pipeline/stage.js';

export function createBudgetStage(budgets: Budgets): Stage {
  return {
    name: 'budget',
    onError: 'fail',
    run(state) {
      const { policy, runtime: rt, llm } = state;
      const tier = state.route?.tier.name;
      if (!hasLimits(rt, policy, tier) || !llm) return;
      // A cache hit counts as a request but spends no tokens.
      if (state.cache?.hit || !hasTokenLimits(rt, policy, tier)) return admit(budgets, state, tier, null);
      const text = promptText(llm);
      const now = countTokensNow(text);
      if (now !== undefined) return admit(budgets, state, tier, reservation(rt, llm, now));
      return countTokens(text).then((n) => admit(budgets, state, tier, reservation(rt, llm, n)));
    },
  };
}

function admit(budgets: Budgets, state: RequestState, tier: string | undefined, tokens: number | null): void | Promise<void> {
  const out = budgets.admit(state.runtime, { id: newId(), policy: state.policy, tier, tokens });
  if (out instanceof Promise) return out.then((o) => apply(state, o));
  apply(state, out);
}

function apply(state: RequestState, o: Awaited<ReturnType<Budgets['admit']>>): void {
  if ('error' in o) throw o.error;
  if (o.admitted) state.admission = o.admitted;
}

export function hasLimits(rt: Runtime, p: TenantPolicy, tier: string | undefined): boolean {
  return p.requestsPerMinute !== undefined || hasTokenLimits(rt, p, tier);
}

function hasTokenLimits(rt: Runtime, p: TenantPolicy, tier: string | undefined): boolean {
  const b = rt.config.budgets;
  return p.dailyTokenBudget !== undefined || p.tokensPerMinute !== undefined || b.globalTokensPerMinute !== undefined || (tier !== undefined && b.tierTokensPerMinute[tier] !== undefined);
}

/** Tool definitions (and the legacy `functions`) are part of the prompt the model reads, so they count too. */
function promptText(llm: LlmRequest): string {
  const text = joinedText(llm.messages);
  const definitions = promptDefinitions(llm.json);
  return definitions ? `${text}\n${definitions}` : text;
}

/**
 * Prompt tokens plus what the completions may use: max_completion_tokens, max_tokens, else the configured
 * estimate; times the completions generated (n, or a completions request's best_of when larger; both validated
 * as positive integers by the request schema). A Responses API turn generates one output, capped by its
 * max_output_tokens; fields of the other APIs in its body are not read (nor validated).
 */
function reservation(rt: Runtime, llm: LlmRequest, promptTokens: number): number {
  const j = llm.json;
  const estimate = rt.config.budgets.completionEstimate;
  if (llm.endpoint === 'responses') {
    return promptTokens + chatFramingTokens(llm.messages.length) + (typeof j.max_output_tokens === 'number' ? j.max_output_tokens : estimate);
  }
  const maxOut = [j.max_completion_tokens, j.max_tokens].find((v): v is number => typeof v === 'number') ?? estimate;
  const generated = Math.max(1, typeof j.n === 'number' ? j.n : 1, typeof j.best_of === 'number' ? j.best_of : 1);
  return promptTokens + chatFramingTokens(llm.messages.length) + maxOut * generated;
}
