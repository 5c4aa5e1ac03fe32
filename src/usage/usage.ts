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
  /** Part of inputTokens that was audio (billed at its own, higher price by audio models). */
  audioInputTokens: number;
  /** Part of outputTokens that was audio. */
  audioOutputTokens: number;
  /** Seconds of input audio, for models billed by duration (whisper-1, vLLM's transcriptions); else 0. */
  audioSeconds: number;
  /** Parts of inputTokens and outputTokens that were images (an image model's input and output; a chat model's images). */
  imageInputTokens: number;
  imageOutputTokens: number;
  /**
   * Characters (code points) of text a speech request asked to be spoken, counted by tiergate from the request
   * (`/v1/audio/speech`'s `input`: tts-1 bills by them, and no answer reports them); absent otherwise.
   */
  inputCharacters?: number;
  /**
   * Set on an estimate that could not see part of what was billed: the request (a body tiergate does not read,
   * such as a multipart upload) or the answer (audio, a body it could not read). Its zeros are not zeros, so it
   * is unpriced unless its price bills only what was seen (price-table.ts).
   */
  unmeasured?: { input: boolean; output: boolean };
}

/** reported: the server's own numbers; estimated: counted by tiergate's tokenizer; none: no response to count. */
export type UsageSource = 'reported' | 'estimated' | 'none';

const count = z.number().int().nonnegative();
const inputDetails = z.looseObject({ cached_tokens: count.nullish(), audio_tokens: count.nullish(), image_tokens: count.nullish() }).nullish();
const outputDetails = z.looseObject({ reasoning_tokens: count.nullish(), audio_tokens: count.nullish(), image_tokens: count.nullish() }).nullish();
// Loose: OpenAI adds detail fields often, vLLM orders fields differently and adds its own; only these matter.
const usageObject = z.looseObject({
  /** A transcription's usage says which kind it is: `tokens`, or `duration` (billed by seconds of audio). */
  type: z.unknown().optional(),
  seconds: z.number().finite().nonnegative().optional(),
  prompt_tokens: count.optional(),
  completion_tokens: count.nullish(),
  total_tokens: count.optional(),
  // The Responses API and some proxies spell them input/output.
  input_tokens: count.optional(),
  output_tokens: count.optional(),
  prompt_tokens_details: inputDetails,
  input_tokens_details: inputDetails,
  // A transcription's details are spelled in the singular.
  input_token_details: inputDetails,
  completion_tokens_details: outputDetails,
  output_tokens_details: outputDetails,
});

/** A usage object → Usage; undefined when it is not one (null, wrong types, no token counts at all). */
export function readUsage(value: unknown): Usage | undefined {
  const r = usageObject.safeParse(value);
  if (!r.success) return undefined;
  const u = r.data;
  // A model billed by the duration of its input audio counts no tokens at all: { type: "duration", seconds }.
  const audioSeconds = u.type === 'duration' && u.seconds !== undefined ? u.seconds : 0;
  const input = u.prompt_tokens ?? u.input_tokens;
  const output = u.completion_tokens ?? u.output_tokens ?? undefined;
  const noSplit = input === undefined && output === undefined;
  if (noSplit && u.total_tokens === undefined && audioSeconds === 0) return undefined;
  const inputTokens = input ?? 0;
  // Embeddings report no completion tokens: whatever total holds beyond the prompt is not output.
  const outputTokens = output ?? 0;
  const ins = [u.prompt_tokens_details, u.input_tokens_details, u.input_token_details];
  const outs = [u.completion_tokens_details, u.output_tokens_details];
  // Parts of the counts: never more than what is left of them, whatever a backend says.
  const audioInputTokens = Math.min(detail(ins, 'audio_tokens'), inputTokens);
  const audioOutputTokens = Math.min(detail(outs, 'audio_tokens'), outputTokens);
  return {
    inputTokens,
    outputTokens,
    totalTokens: u.total_tokens ?? inputTokens + outputTokens,
    cachedInputTokens: detail(ins, 'cached_tokens'),
    reasoningTokens: detail(outs, 'reasoning_tokens'),
    audioInputTokens,
    audioOutputTokens,
    audioSeconds,
    imageInputTokens: Math.min(detail(ins, 'image_tokens'), inputTokens - audioInputTokens),
    imageOutputTokens: Math.min(detail(outs, 'image_tokens'), outputTokens - audioOutputTokens),
    // A total with neither side's count: the budget takes the total, but the split that prices it was never
    // reported. Its 0 in and 0 out would price the request at $0; unmeasured, it is unpriced instead.
    ...(noSplit && (u.total_tokens ?? 0) > 0 ? { unmeasured: { input: true, output: true } } : {}),
  };
}

/** The first of the details objects (as APIs spell them) that gives `key`; 0 when none does. */
function detail<K extends string>(objects: ReadonlyArray<Partial<Record<K, number | null>> | null | undefined>, key: K): number {
  for (const o of objects) {
    const v = o?.[key];
    if (v != null) return v;
  }
  return 0;
}

/** Usage of `input` and `output` text tokens, nothing else. */
export function sumUsage(input: number, output: number): Usage {
  return { inputTokens: input, outputTokens: output, totalTokens: input + output, cachedInputTokens: 0, reasoningTokens: 0, audioInputTokens: 0, audioOutputTokens: 0, audioSeconds: 0, imageInputTokens: 0, imageOutputTokens: 0 };
}
