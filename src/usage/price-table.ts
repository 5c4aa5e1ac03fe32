// The versioned price table: USD per million tokens per model (input, cached input, output), or one effective
// per-token price for self-hosted models. Compiled with the config, so a reload swaps prices atomically.
import { z } from 'zod';
import type { Usage } from './usage.js';

const usd = z.number().nonnegative();

/**
 * USD per minute of input audio, for a model billed by duration (OpenAI's whisper-1; a self-hosted Whisper by
 * what its GPUs cost). An answer that reports seconds of audio is unpriced when its model has no such price.
 */
const audioMinute = usd.optional();

const tokenPriceSchema = z.strictObject({
  /** USD per 1M input tokens. */
  input: usd,
  /** USD per 1M input tokens served from the provider's prompt cache; defaults to `input`. */
  cachedInput: usd.optional(),
  /** USD per 1M output tokens (reasoning tokens are output tokens). */
  output: usd,
  /**
   * USD per 1M input and output tokens that are audio (OpenAI's audio and transcription models bill them at
   * several times the text price). No default: an answer with audio tokens is unpriced when its model's price
   * lacks the one it needs, rather than priced as text.
   */
  audioInput: usd.optional(),
  audioOutput: usd.optional(),
  audioMinute,
  /**
   * USD per 1M input and output tokens that are images, for an image model that bills them apart from text
   * (gpt-image-1: text in $5, image in $10). Unlike audio, they default to the text prices: a chat model's
   * images are billed as input tokens, and an image model's `output` is its image price.
   */
  imageInput: usd.optional(),
  imageOutput: usd.optional(),
});

/**
 * A provider's service tiers (OpenAI's `flex`, `priority`, `scale`), each billed at its own prices; the
 * response's `service_tier` says which one served a request. The model's own prices are the `default` tier's,
 * so `default` and `auto` (the request's "the project's setting") are not names for another price.
 */
const serviceTiersSchema = z.record(z.string().min(1), tokenPriceSchema).superRefine((tiers, ctx) => {
  for (const name of ['default', 'auto']) {
    if (Object.hasOwn(tiers, name)) ctx.addIssue({ code: 'custom', path: [name], message: "the model's own prices are the default tier's: list only the other service tiers" });
  }
});

const byTokensSchema = tokenPriceSchema.extend({
  /**
   * Prices of the other service tiers this model is billed at. When listed, a response served on a tier not
   * listed is unpriced (cost_usd null) rather than priced as default; when absent, the model is priced the same
   * on every tier (self-hosted models, providers without tiers).
   */
  serviceTiers: serviceTiersSchema.optional(),
});

const perTokenSchema = z.strictObject({
  /** Self-hosted: what one token (input or output, text, audio or image) costs you, e.g. GPU hours ÷ tokens served. */
  perToken: usd,
  audioMinute,
});

/**
 * A model billed by the unit rather than by the token: the minute of input audio (whisper-1), the character of
 * text to speak (tts-1: $15 per 1M characters of `input`, which OpenAI's speech answers do not report and
 * tiergate counts from the request), or both.
 */
const byUnitSchema = z
  .strictObject({
    audioMinute,
    /** USD per 1M characters (Unicode code points) of a speech request's `input`. */
    characters: usd.optional(),
  })
  .refine((p) => p.audioMinute !== undefined || p.characters !== undefined, { message: 'a price by the unit names audioMinute, characters or both' });

type ModelPrice = z.infer<typeof byTokensSchema> | z.infer<typeof perTokenSchema> | z.infer<typeof byUnitSchema>;

/**
 * Which shape a price is meant to be shows from its keys. A union would leave zod to guess, and it guesses from
 * which shape has the fewest problems: `{ input: 1, audioMinute: 1 }` would be told that `input` is not a key,
 * rather than that `output` is missing.
 */
function shapeOf(v: object): z.ZodType<ModelPrice> {
  if ('perToken' in v) return perTokenSchema;
  if (('audioMinute' in v || 'characters' in v) && !('input' in v) && !('output' in v)) return byUnitSchema;
  return byTokensSchema;
}

export const modelPriceSchema = z.unknown().transform((v, ctx): ModelPrice => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    ctx.addIssue({ code: 'custom', input: v, message: 'a price is { input, output } in USD per 1M tokens, { perToken }, or by the unit: { audioMinute } and/or { characters }' });
    return z.NEVER;
  }
  const r = shapeOf(v).safeParse(v);
  if (r.success) return r.data;
  for (const issue of r.error.issues) ctx.addIssue({ code: 'custom', input: v, path: issue.path, message: issue.message });
  return z.NEVER;
});

export const priceTableSchema = z.strictObject({
  /** Written into every ledger row as cost_usd.price_table_version. */
  version: z.string().min(1),
  models: z.record(z.string().min(1), modelPriceSchema),
  /**
   * USD per call of each hosted tool a provider runs, and bills apart from tokens, by the type of the output
   * item that records the call in a Responses API answer: OpenAI lists `web_search_call` at $10 per 1,000 calls
   * and `file_search_call` at $2.50 per 1,000. A type not listed is not charged (an MCP call, a computer call:
   * tokens only).
   */
  toolCalls: z.record(z.string().min(1), usd).default({}),
});

export type PriceTableConfig = z.infer<typeof priceTableSchema>;
type TokenPrice = z.infer<typeof tokenPriceSchema>;

export interface Cost {
  input: number;
  output: number;
  /** Hosted tool calls at prices.toolCalls; absent when the answer made none that are priced. */
  toolCalls?: number;
  total: number;
  priceTableVersion: string;
}

/** Hosted tool calls a Responses API answer made, by the type of the output item that records each. */
export type ToolCalls = Readonly<Record<string, number>>;

/** Dated snapshots (gpt-4o-mini-2024-07-18) are priced as their model when not listed themselves. */
const DATE_SUFFIX = /-\d{4}-\d{2}-\d{2}$/;

export class PriceTable {
  private readonly models: ReadonlyMap<string, ModelPrice>;
  private readonly toolCalls: ReadonlyMap<string, number>;
  readonly version: string;

  constructor(config: PriceTableConfig) {
    this.version = config.version;
    this.models = new Map(Object.entries(config.models));
    this.toolCalls = new Map(Object.entries(config.toolCalls ?? {}));
  }

  /** The first of the given model names (answering model first, then requested) that has a price. */
  lookup(...names: Array<string | undefined>): { model: string; price: ModelPrice } | undefined {
    for (const name of names) {
      if (!name) continue;
      const price = this.models.get(name) ?? this.models.get(name.replace(DATE_SUFFIX, ''));
      if (price) return { model: name, price };
    }
    return undefined;
  }

  /**
   * Cost of `usage` for the first priced of `names` (answering model first), at the prices of `serviceTier` (the
   * response's `service_tier`; undefined, `default` or `auto`: the model's own). Undefined when no name is priced,
   * or when the model lists its service tiers and not this one.
   */
  cost(usage: Usage, names: ReadonlyArray<string | undefined>, serviceTier?: string, calls?: ToolCalls): Cost | undefined {
    const found = this.lookup(...names);
    if (!found) return undefined;
    const price = atServiceTier(found.price, serviceTier);
    if (price === undefined) return undefined;
    const cost = costOf(usage, price, this.version);
    if (cost === undefined) return undefined;
    const fees = calls ? this.toolFees(calls) : undefined;
    return fees === undefined ? cost : { input: cost.input, output: cost.output, toolCalls: fees, total: roundUsd(cost.total + fees), priceTableVersion: this.version };
  }

  /** What the priced ones of these calls cost; undefined when none of them is priced. */
  private toolFees(calls: ToolCalls): number | undefined {
    let fees: number | undefined;
    for (const [type, n] of Object.entries(calls)) {
      const each = this.toolCalls.get(type);
      if (each !== undefined) fees = (fees ?? 0) + n * each;
    }
    return fees === undefined ? undefined : roundUsd(fees);
  }
}

/** A model's prices on a service tier; undefined when it lists its tiers and not that one. */
function atServiceTier(p: ModelPrice, serviceTier: string | undefined): ModelPrice | undefined {
  if (serviceTier === undefined || serviceTier === 'default' || serviceTier === 'auto' || !('serviceTiers' in p) || p.serviceTiers === undefined) return p;
  return Object.hasOwn(p.serviceTiers, serviceTier) ? p.serviceTiers[serviceTier] : undefined;
}

/**
 * What `u` costs at `p`; undefined when `p` cannot price all of it: audio tokens without the audio price they
 * need, seconds of audio without a price per minute, or tokens at a model priced by the unit that has none of
 * its units. Priced as text instead, an audio model's answer would show a fraction of its bill, and nothing
 * would say so.
 */
function costOf(u: Usage, p: ModelPrice | TokenPrice, version: string): Cost | undefined {
  if (u.unmeasured && !pricesUnmeasured(u.unmeasured, p)) return undefined;
  let input = 0;
  let output = 0;
  if ('perToken' in p) {
    input = u.inputTokens * p.perToken;
    output = u.outputTokens * p.perToken;
  } else if ('input' in p) {
    const audioIn = u.audioInputTokens;
    const audioOut = u.audioOutputTokens;
    if ((audioIn > 0 && p.audioInput === undefined) || (audioOut > 0 && p.audioOutput === undefined)) return undefined;
    // Image tokens without prices of their own are text, as a chat model bills them.
    const imageIn = p.imageInput === undefined ? 0 : u.imageInputTokens;
    const imageOut = p.imageOutput === undefined ? 0 : u.imageOutputTokens;
    // The prompt cache's discount is taken on the text: a cached part beyond it is charged in full, not guessed at.
    const text = u.inputTokens - audioIn - imageIn;
    const cached = Math.min(u.cachedInputTokens, text);
    input = ((text - cached) * p.input + cached * (p.cachedInput ?? p.input) + audioIn * (p.audioInput ?? 0) + imageIn * (p.imageInput ?? 0)) / 1e6;
    output = ((u.outputTokens - audioOut - imageOut) * p.output + audioOut * (p.audioOutput ?? 0) + imageOut * (p.imageOutput ?? 0)) / 1e6;
  } else {
    // Billed by its units; tokens beside them (a speech request's text, counted by tiergate) are not billed. Tokens
    // with none of its units are spent that this price cannot price, not spent for nothing.
    const billed = (p.audioMinute !== undefined && u.audioSeconds > 0) || (p.characters !== undefined && (u.inputCharacters ?? 0) > 0);
    if (!billed && (u.inputTokens > 0 || u.outputTokens > 0)) return undefined;
    if (p.characters !== undefined) input += ((u.inputCharacters ?? 0) * p.characters) / 1e6;
  }
  if (u.audioSeconds > 0) {
    if (p.audioMinute === undefined) return undefined;
    input += (u.audioSeconds / 60) * p.audioMinute;
  }
  return { input: roundUsd(input), output: roundUsd(output), total: roundUsd(input + output), priceTableVersion: version };
}

/**
 * Whether an estimate that could not see part of what was billed can still be priced: only when what it could not
 * see costs nothing at `p`. A price by the unit (the minute of input audio) bills no output, and a model whose
 * every price is 0 (an endpoint a provider does not charge for) costs nothing whatever was used.
 */
function pricesUnmeasured(m: { input: boolean; output: boolean }, p: ModelPrice | TokenPrice): boolean {
  if ((!m.input && !m.output) || Object.values(p).every((v) => typeof v !== 'number' || v === 0)) return true;
  return !m.input && !('input' in p) && !('perToken' in p);
}

/** Ten decimal places: exact enough for a per-token price, and sums that do not print as 0.30000000000000004. */
export function roundUsd(x: number): number {
  return Math.round(x * 1e10) / 1e10;
}

/**
 * Dollars as whole micro-dollars, rounded up (the budget counters are integers, and rounding up keeps a budget on
 * the safe side); undefined stays undefined (unpriced).
 */
export function microUsdOf(usd: number | undefined): number | undefined {
  return usd === undefined ? undefined : Math.ceil(usd * 1e6 - 1e-6);
}
