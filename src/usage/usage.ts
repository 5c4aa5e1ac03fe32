// Token usage as tiergate records it, read from the usage objects OpenAI-compatible servers send. The same
// numbers feed the ledger, the Envoy dynamic metadata and (later) the budget reconcile.
import { z } from 'zod';

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
  /** Part of inputTokens served from the provider's prompt cache (billed at the cached-input price). */
  cachedInputTokens: number;
  /** Part of outputTokens spent on reasoning. */
  reasoningTokens: number;
}

/** reported: the server's own numbers; estimated: counted by tiergate's tokenizer; none: no response to count. */
export type UsageSource = 'reported' | 'estimated' | 'none';

const count = z.number().int().nonnegative();
// Loose: OpenAI adds detail fields often, vLLM orders fields differently and adds its own; only these matter.
const usageObject = z.looseObject({
  prompt_tokens: count.optional(),
  completion_tokens: count.nullish(),
  total_tokens: count.optional(),
  // The Responses API and some proxies spell them input/output.
  input_tokens: count.optional(),
  output_tokens: count.optional(),
  prompt_tokens_details: z.looseObject({ cached_tokens: count.nullish() }).nullish(),
  input_tokens_details: z.looseObject({ cached_tokens: count.nullish() }).nullish(),
  completion_tokens_details: z.looseObject({ reasoning_tokens: count.nullish() }).nullish(),
  output_tokens_details: z.looseObject({ reasoning_tokens: count.nullish() }).nullish(),
});

/** A usage object → Usage; undefined when it is not one (null, wrong types, no token counts at all). */
export function readUsage(value: unknown): Usage | undefined {
  const r = usageObject.safeParse(value);
  if (!r.success) return undefined;
  const u = r.data;
  const input = u.prompt_tokens ?? u.input_tokens;
  const output = u.completion_tokens ?? u.output_tokens ?? undefined;
  if (input === undefined && output === undefined && u.total_tokens === undefined) return undefined;
  const inputTokens = input ?? 0;
  // Embeddings report no completion tokens: whatever total holds beyond the prompt is not output.
  const outputTokens = output ?? 0;
  return {
    inputTokens,
    outputTokens,
    totalTokens: u.total_tokens ?? inputTokens + outputTokens,
    cachedInputTokens: u.prompt_tokens_details?.cached_tokens ?? u.input_tokens_details?.cached_tokens ?? 0,
    reasoningTokens: u.completion_tokens_details?.reasoning_tokens ?? u.output_tokens_details?.reasoning_tokens ?? 0,
  };
}

export function sumUsage(input: number, output: number): Usage {
  return { inputTokens: input, outputTokens: output, totalTokens: input + output, cachedInputTokens: 0, reasoningTokens: 0 };
}
