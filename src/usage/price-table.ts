// The versioned price table: USD per million tokens per model (input, cached input, output), or one effective
// per-token price for self-hosted models. Compiled with the config, so a reload swaps prices atomically.
import { z } from 'zod';
import type { Usage } from './usage.js';

const usd = z.number().nonnegative();

export const modelPriceSchema = z.union([
  z.strictObject({
    /** USD per 1M input tokens. */
    input: usd,
    /** USD per 1M input tokens served from the provider's prompt cache; defaults to `input`. */
    cachedInput: usd.optional(),
    /** USD per 1M output tokens (reasoning tokens are output tokens). */
    output: usd,
  }),
  z.strictObject({
    /** Self-hosted: what one token (input or output) costs you, e.g. GPU hours ÷ tokens served. */
    perToken: usd,
  }),
]);

export const priceTableSchema = z.strictObject({
  /** Written into every ledger row as cost_usd.price_table_version. */
  version: z.string().min(1),
  models: z.record(z.string().min(1), modelPriceSchema),
});

export type PriceTableConfig = z.infer<typeof priceTableSchema>;
type ModelPrice = z.infer<typeof modelPriceSchema>;

export interface Cost {
  input: number;
  output: number;
  total: number;
  priceTableVersion: string;
}

/** Dated snapshots (gpt-4o-mini-2024-07-18) are priced as their model when not listed themselves. */
const DATE_SUFFIX = /-\d{4}-\d{2}-\d{2}$/;

export class PriceTable {
  private readonly models: ReadonlyMap<string, ModelPrice>;
  readonly version: string;

  constructor(config: PriceTableConfig) {
    this.version = config.version;
    this.models = new Map(Object.entries(config.models));
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

  /** Cost of `usage` for the first priced model name; undefined when none is priced. */
  cost(usage: Usage, ...names: Array<string | undefined>): Cost | undefined {
    const found = this.lookup(...names);
    if (!found) return undefined;
    return costOf(usage, found.price, this.version);
  }
}

export function costOf(u: Usage, p: ModelPrice, version: string): Cost {
  let input: number;
  let output: number;
  if ('perToken' in p) {
    input = u.inputTokens * p.perToken;
    output = u.outputTokens * p.perToken;
  } else {
    const cached = Math.min(u.cachedInputTokens, u.inputTokens);
    input = ((u.inputTokens - cached) * p.input + cached * (p.cachedInput ?? p.input)) / 1e6;
    output = (u.outputTokens * p.output) / 1e6;
  }
  return { input: roundUsd(input), output: roundUsd(output), total: roundUsd(input + output), priceTableVersion: version };
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
