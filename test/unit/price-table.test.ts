// The price table's service tiers: which prices a response's `service_tier` is billed at, and what the config
// accepts. The ledger-level behaviour (rows, metadata, the unpriced counter) is in integration/ledger-rows.
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { PriceTable, priceTableSchema } from '../../src/usage/price-table.js';
import { sumUsage, type Usage } from '../../src/usage/usage.js';

const table = new PriceTable(
  priceTableSchema.parse({
    version: 't1',
    models: {
      'gpt-x': { input: 1, cachedInput: 0.1, output: 8, serviceTiers: { priority: { input: 2, output: 16 }, flex: { input: 0.5, cachedInput: 0.05, output: 4 } } },
      'plain-x': { input: 1, output: 8 },
      'self-hosted': { perToken: 0.000001 },
    },
  }),
);
const million = sumUsage(1_000_000, 1_000_000);
const total = (names: string[], tier?: string) => table.cost(million, names, tier)?.total;

describe('service tiers in the price table', () => {
  it("no tier, default and auto are the model's own prices", () => {
    for (const tier of [undefined, 'default', 'auto']) expect(total(['gpt-x'], tier), String(tier)).toBe(9);
  });

  it('a listed tier is billed at its own prices, cached input included', () => {
    expect(total(['gpt-x'], 'priority')).toBe(18);
    expect(total(['gpt-x'], 'flex')).toBe(4.5);
    expect(table.cost({ ...million, cachedInputTokens: 1_000_000 }, ['gpt-x'], 'flex')?.input).toBe(0.05);
    // A listed tier without its own cachedInput falls back to its own input price, not the default tier's.
    expect(table.cost({ ...million, cachedInputTokens: 1_000_000 }, ['gpt-x'], 'priority')?.input).toBe(2);
  });

  it("a tier the model's prices do not list is unpriced, not billed as default", () => {
    expect(total(['gpt-x'], 'scale')).toBeUndefined();
    // Not a way to read a property of the object the tiers live in.
    for (const name of ['constructor', '__proto__', 'toString']) expect(total(['gpt-x'], name), name).toBeUndefined();
  });

  it('a model priced without tiers (or per token) costs the same on every tier', () => {
    for (const tier of ['priority', 'scale', 'flex']) {
      expect(total(['plain-x'], tier), tier).toBe(9);
      expect(total(['self-hosted'], tier), tier).toBe(2);
    }
  });

  it('the answering model is priced first, then the routed one; a dated snapshot keeps its tiers', () => {
    expect(total(['unknown-model', 'gpt-x'], 'priority')).toBe(18);
    expect(total(['gpt-x-2026-05-01'], 'priority')).toBe(18);
    expect(total(['unknown-model'], 'priority')).toBeUndefined();
  });

  it("the config refuses default and auto as tier names (they are the model's own prices), naming the field", () => {
    for (const name of ['default', 'auto']) {
      const r = parseConfigText(`prices: { version: p, models: { m: { input: 1, output: 2, serviceTiers: { ${name}: { input: 1, output: 2 } } } } }`, {});
      expect(r.ok, name).toBe(false);
      if (!r.ok) expect(r.problems, name).toContainEqual({ path: `prices.models.m.serviceTiers.${name}`, message: expect.stringContaining("the model's own prices are the default tier's") });
    }
    // A per-token price takes no tiers; a tier's prices are input and output like the model's.
    expect(parseConfigText('prices: { version: p, models: { m: { perToken: 1, serviceTiers: { flex: { input: 1, output: 2 } } } } }', {}).ok).toBe(false);
    expect(parseConfigText('prices: { version: p, models: { m: { input: 1, output: 2, serviceTiers: { flex: { perToken: 1 } } } } }', {}).ok).toBe(false);
    expect(parseConfigText('prices: { version: p, models: { m: { input: 1, output: 2, serviceTiers: { flex: { input: 0.5, output: 1 } } } } }', {}).ok).toBe(true);
  });

  it('a price that fits no shape names what is wrong with the one it was meant to be, not "Invalid input"', () => {
    const problem = (price: string) => {
      const r = parseConfigText(`prices: { version: p, models: { m: ${price} } }`, {});
      return r.ok ? undefined : r.problems[0];
    };
    expect(problem('{ input: 1 }')?.path).toBe('prices.models.m.output');
    expect(problem('{ input: 1, output: 2, serviceTiers: { flex: { output: 1 } } }')?.path).toBe('prices.models.m.serviceTiers.flex.input');
    expect(problem('{ perToken: 1, serviceTiers: {} }')?.message).toContain('serviceTiers');
    expect(problem('7')?.message).toBe('a price is { input, output } in USD per 1M tokens, { perToken }, or by the unit: { audioMinute } and/or { characters }');
    expect(problem('{}')?.path).toBe('prices.models.m.input');
    expect(problem('null')).toEqual({ path: 'prices.models.m', message: expect.stringMatching(/^a price is/) });
    // A price by the minute or the character alone is the third shape; with token prices beside it, the first.
    expect(problem('{ audioMinute: -1 }')).toEqual({ path: 'prices.models.m.audioMinute', message: expect.stringMatching(/>=0/) });
    expect(problem('{ characters: -1 }')).toEqual({ path: 'prices.models.m.characters', message: expect.stringMatching(/>=0/) });
    expect(problem('{ audioMinute: 0.006, input: 1 }')?.path).toBe('prices.models.m.output');
    expect(problem('{ characters: 15, output: 1 }')?.path).toBe('prices.models.m.input');
    expect(problem('{ characters: 15, perToken: 1 }')?.message).toContain('characters');
  });
});

describe('audio in the price table', () => {
  const audio = new PriceTable(
    priceTableSchema.parse({
      version: 'a1',
      models: {
        'gpt-audio': { input: 2.5, cachedInput: 1.25, output: 10, audioInput: 32, audioOutput: 64 },
        'gpt-4o-transcribe': { input: 2.5, output: 10, audioInput: 6 },
        'text-only': { input: 2.5, output: 10 },
        'whisper-1': { audioMinute: 0.006 },
        'whisper-self-hosted': { perToken: 0.000001, audioMinute: 0.001 },
        'self-hosted': { perToken: 0.000001 },
      },
    }),
  );
  const usage = (o: Partial<Usage>): Usage => ({ ...sumUsage(0, 0), ...o });
  // 1M prompt tokens of which 400k audio and 100k cached text; 1M output tokens of which 250k audio.
  const mixed = usage({ inputTokens: 1_000_000, outputTokens: 1_000_000, totalTokens: 2_000_000, cachedInputTokens: 100_000, audioInputTokens: 400_000, audioOutputTokens: 250_000 });

  it('audio tokens are priced at the audio prices, the rest as text, the cache discount on the text', () => {
    // input: 500k text × 2.5 + 100k cached × 1.25 + 400k audio × 32; output: 750k × 10 + 250k × 64 (per million).
    expect(audio.cost(mixed, ['gpt-audio'])).toEqual({ input: 1.25 + 0.125 + 12.8, output: 7.5 + 16, total: 37.675, priceTableVersion: 'a1' });
    // A transcription: audio in, text out.
    const transcribed = usage({ inputTokens: 1_000_000, outputTokens: 1_000_000, totalTokens: 2_000_000, audioInputTokens: 1_000_000 });
    expect(audio.cost(transcribed, ['gpt-4o-transcribe'])?.total).toBe(16);
    // A cached part larger than the text is discounted only as far as the text goes.
    expect(audio.cost(usage({ inputTokens: 1_000_000, totalTokens: 1_000_000, cachedInputTokens: 1_000_000, audioInputTokens: 1_000_000 }), ['gpt-audio'])?.input).toBe(32);
  });

  it('audio the price cannot price leaves the answer unpriced, never priced as text', () => {
    expect(audio.cost(mixed, ['text-only'])).toBeUndefined();
    expect(audio.cost(usage({ outputTokens: 10, totalTokens: 10, audioOutputTokens: 10 }), ['gpt-4o-transcribe'])).toBeUndefined();
    // Audio in at a model priced for audio out only (a speech model): unpriced too.
    const speaker = new PriceTable(priceTableSchema.parse({ version: 'a2', models: { 'gpt-4o-mini-tts': { input: 0.6, output: 12, audioOutput: 12 } } }));
    expect(speaker.cost(usage({ inputTokens: 10, totalTokens: 10, audioInputTokens: 10 }), ['gpt-4o-mini-tts'])).toBeUndefined();
    // Priced hosted tool calls do not make unpriceable tokens priced.
    const withTools = new PriceTable(priceTableSchema.parse({ version: 'a3', models: { 'text-only': { input: 2.5, output: 10 } }, toolCalls: { web_search_call: 0.01 } }));
    expect(withTools.cost(mixed, ['text-only'], undefined, { web_search_call: 2 })).toBeUndefined();
    // Without audio, a model priced by tokens is priced as before.
    expect(audio.cost(sumUsage(1_000_000, 1_000_000), ['text-only'])?.total).toBe(12.5);
  });

  it('image tokens are priced at the image prices when a model has them, and as text when not (as chat bills them)', () => {
    const images = new PriceTable(priceTableSchema.parse({ version: 'i1', models: { 'gpt-image-1': { input: 5, cachedInput: 1.25, output: 40, imageInput: 10 }, 'vision-chat': { input: 2, output: 8 } } }));
    // An edit: 1M input tokens, 600k of them images, 200k of the text cached; 1M output tokens, all image.
    const edit = usage({ inputTokens: 1_000_000, outputTokens: 1_000_000, totalTokens: 2_000_000, cachedInputTokens: 200_000, imageInputTokens: 600_000, imageOutputTokens: 1_000_000 });
    // 200k text × 5 + 200k cached × 1.25 + 600k image × 10; output at `output`, its image price (no imageOutput).
    expect(images.cost(edit, ['gpt-image-1'])).toEqual({ input: 1 + 0.25 + 6, output: 40, total: 47.25, priceTableVersion: 'i1' });
    // A chat model's images are input tokens at the input price, cached ones included, as before.
    expect(images.cost(edit, ['vision-chat'])).toEqual({ input: 0.8 * 2 + 0.2 * 2, output: 8, total: 10, priceTableVersion: 'i1' });
    // A model that writes text and images, each at its own price: 750k text × 10 + 250k image × 40 (per million).
    const both = new PriceTable(priceTableSchema.parse({ version: 'i2', models: { 'text-and-image': { input: 5, output: 10, imageOutput: 40 } } }));
    const drawn = usage({ inputTokens: 1_000_000, outputTokens: 1_000_000, totalTokens: 2_000_000, imageOutputTokens: 250_000 });
    expect(both.cost(drawn, ['text-and-image'])).toEqual({ input: 5, output: 17.5, total: 22.5, priceTableVersion: 'i2' });
  });

  it('seconds of audio are priced by the minute; a per-token price counts audio tokens as tokens', () => {
    expect(audio.cost(usage({ audioSeconds: 90 }), ['whisper-1'])).toEqual({ input: 0.009, output: 0, total: 0.009, priceTableVersion: 'a1' });
    expect(audio.cost(usage({ audioSeconds: 60 }), ['whisper-self-hosted'])?.total).toBe(0.001);
    expect(audio.cost(usage({ audioSeconds: 60 }), ['self-hosted'])).toBeUndefined();
    expect(audio.cost(usage({ audioSeconds: 60 }), ['gpt-4o-transcribe'])).toBeUndefined();
    // Tokens at a model priced only by the minute are not priced at nothing; beside the minutes it bills, they are
    // not billed (a transcription server that reports both).
    expect(audio.cost(sumUsage(100, 10), ['whisper-1'])).toBeUndefined();
    expect(audio.cost(usage({ inputTokens: 100, outputTokens: 10, totalTokens: 110, audioSeconds: 60 }), ['whisper-1'])?.total).toBe(0.006);
    expect(audio.cost(mixed, ['self-hosted'])?.total).toBe(2);
  });
});

describe('speech in the price table', () => {
  const speech = new PriceTable(
    priceTableSchema.parse({
      version: 's1',
      models: { 'tts-1': { characters: 15 }, 'gpt-4o-mini-tts': { input: 0.6, output: 12, audioOutput: 12 }, 'text-only': { input: 0.6, output: 12 }, 'whisper-1': { audioMinute: 0.006 } },
    }),
  );
  // 4,095 characters at $15 per 1M: $0.061425.
  const spoken = (o: Partial<Usage>): Usage => ({ ...sumUsage(877, 0), inputCharacters: 4095, ...o });

  it('tts-1 is priced by the character of its input; the tokens counted beside them are not billed', () => {
    expect(speech.cost(spoken({}), ['tts-1'])).toEqual({ input: 0.061425, output: 0, total: 0.061425, priceTableVersion: 's1' });
    // Its audio answer is not read, and a price by the character bills none of it.
    expect(speech.cost(spoken({ unmeasured: { input: false, output: true } }), ['tts-1'])?.total).toBe(0.061425);
  });

  it('gpt-4o-mini-tts is priced by its tokens, the audio it spoke at audioOutput; characters are not billed', () => {
    const streamed = spoken({ inputTokens: 14, outputTokens: 1000, totalTokens: 1014, audioOutputTokens: 1000 });
    expect(speech.cost(streamed, ['gpt-4o-mini-tts'])).toEqual({ input: 0.0000084, output: 0.012, total: 0.0120084, priceTableVersion: 's1' });
    // Audio without its price, or an audio answer that was not read (no usage): unpriced.
    expect(speech.cost(streamed, ['text-only'])).toBeUndefined();
    expect(speech.cost(spoken({ unmeasured: { input: false, output: true } }), ['gpt-4o-mini-tts'])).toBeUndefined();
  });

  it('a price by the unit that has none of the units used is unpriced, not free', () => {
    expect(speech.cost(spoken({}), ['whisper-1'])).toBeUndefined();
    expect(speech.cost(sumUsage(100, 10), ['tts-1'])).toBeUndefined();
    expect(speech.cost(sumUsage(0, 10), ['tts-1'])).toBeUndefined();
  });
});

describe('usage an estimate could not see', () => {
  const prices = new PriceTable(
    priceTableSchema.parse({
      version: 'u1',
      models: { 'gpt-x': { input: 1, output: 8 }, 'self-hosted': { perToken: 0.000001 }, 'whisper-1': { audioMinute: 0.006 }, free: { input: 0, output: 0 }, 'free-per-token': { perToken: 0 } },
    }),
  );
  const seen = (input: boolean, output: boolean): Usage => ({ ...sumUsage(1_000_000, 0), unmeasured: { input, output } });

  it('is unpriced where what was not seen is billed: a token price bills both the request and the answer', () => {
    for (const model of ['gpt-x', 'self-hosted']) {
      for (const [input, output] of [[true, false], [false, true], [true, true]] as const) expect(prices.cost(seen(input, output), [model]), `${model} ${input} ${output}`).toBeUndefined();
    }
    // Zeros that were counted are zeros.
    expect(prices.cost(seen(false, false), ['gpt-x'])?.total).toBe(1);
    expect(prices.cost(sumUsage(1_000_000, 0), ['gpt-x'])?.total).toBe(1);
  });

  it('a price by the minute bills no output, so an answer it could not read does not matter; a request it could not read does', () => {
    expect(prices.cost({ ...sumUsage(0, 0), audioSeconds: 60, unmeasured: { input: false, output: true } }, ['whisper-1'])?.total).toBe(0.006);
    expect(prices.cost({ ...sumUsage(0, 0), unmeasured: { input: true, output: true } }, ['whisper-1'])).toBeUndefined();
  });

  it('a model whose every price is 0 costs nothing, whatever was not seen', () => {
    for (const model of ['free', 'free-per-token']) expect(prices.cost(seen(true, true), [model]), model).toEqual({ input: 0, output: 0, total: 0, priceTableVersion: 'u1' });
    const freeTiers = new PriceTable(priceTableSchema.parse({ version: 'u3', models: { free: { input: 0, output: 0, serviceTiers: { flex: { input: 0, output: 0 } } } } }));
    expect(freeTiers.cost(seen(true, true), ['free'])?.total).toBe(0);
    // Some prices 0 is not every price 0: an embeddings model bills its input (an unread request), output or not.
    const embeddings = new PriceTable(priceTableSchema.parse({ version: 'u2', models: { 'text-embedding-3-small': { input: 0.02, output: 0 } } }));
    expect(embeddings.cost(seen(true, false), ['text-embedding-3-small'])).toBeUndefined();
  });
});

describe('hosted tool calls in the price table', () => {
  const tools = new PriceTable(priceTableSchema.parse({ version: 't2', models: { 'gpt-x': { input: 1, output: 8 } }, toolCalls: { web_search_call: 0.01, file_search_call: 0.0025 } }));

  it('adds each priced call to the total, apart from tokens; unlisted types are not charged', () => {
    const c = tools.cost(million, ['gpt-x'], undefined, { web_search_call: 3, file_search_call: 2, mcp_call: 5 });
    expect(c).toEqual({ input: 1, output: 8, toolCalls: 0.035, total: 9.035, priceTableVersion: 't2' });
  });

  it('no calls, or none priced: the cost has no tool part (rows keep their shape); an unpriced model stays unpriced', () => {
    expect(tools.cost(million, ['gpt-x'])).toEqual({ input: 1, output: 8, total: 9, priceTableVersion: 't2' });
    expect(tools.cost(million, ['gpt-x'], undefined, { mcp_call: 2 })).not.toHaveProperty('toolCalls');
    expect(tools.cost(million, ['other'], undefined, { web_search_call: 1 })).toBeUndefined();
    // A table without toolCalls (every config before them) charges none.
    expect(table.cost(million, ['plain-x'], undefined, { web_search_call: 4 })).toEqual({ input: 1, output: 8, total: 9, priceTableVersion: 't1' });
  });

  it('a tool call price is USD per call, never negative', () => {
    expect(parseConfigText('prices: { version: p, models: {}, toolCalls: { web_search_call: 0.01 } }', {}).ok).toBe(true);
    expect(parseConfigText('prices: { version: p, models: {}, toolCalls: { web_search_call: -1 } }', {}).ok).toBe(false);
  });
});
