// The notes about prices that cannot price what a config sends (src/config/price-notes.ts), in process: each
// condition alone, on and off. The CLI suite shows them printed by `tiergate config check`.
import { describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { unpricedAudioPaths, unpricedToolCalls, untieredOpenAiPrices } from '../../src/config/price-notes.js';
import { runtimeFor } from '../helpers/tiergate.js';

const prices = (models: Record<string, unknown>, toolCalls: Record<string, number> = {}) => ({ version: 'p', models, toolCalls }) as ConfigInput['prices'];

describe('untieredOpenAiPrices: an OpenAI model priced the same on every service tier', () => {
  const notes = (tiers: ConfigInput['tiers'], models: Record<string, unknown>) => untieredOpenAiPrices(runtimeFor({ tiers, prices: prices(models) }));

  it('names the first tier sending each such model, once per model', () => {
    const tiers = { weak: { model: 'gpt-4.1-mini', provider: 'openai' }, strong: { model: 'gpt-4.1', provider: 'openai' }, canary: { model: 'gpt-4.1', provider: 'openai' } } as const;
    expect(notes(tiers, { 'gpt-4.1-mini': { input: 0.4, output: 1.6 }, 'gpt-4.1': { input: 2, output: 8 } })).toEqual([
      { path: 'tiers.weak', message: "its provider is openai, but the price of 'gpt-4.1-mini' lists no serviceTiers: a flex or priority answer would be priced as default; list those tiers' prices under prices.models, or limit what plans may ask for (serviceTiers)" },
      { path: 'tiers.strong', message: expect.stringContaining("the price of 'gpt-4.1' lists no serviceTiers") },
    ]);
  });

  it('no note for a model whose price lists its service tiers, one with no price, one priced per token or by the unit, or another provider', () => {
    const openai = (model: string) => ({ weak: { model, provider: 'openai' }, strong: { model: 'big' } }) as const;
    expect(notes(openai('gpt-4.1'), { 'gpt-4.1': { input: 2, output: 8, serviceTiers: { priority: { input: 3.5, output: 14 } } } })).toEqual([]);
    expect(notes(openai('gpt-4.1'), {})).toEqual([]);
    expect(notes(openai('gpt-4.1'), { 'gpt-4.1': { perToken: 0.000002 } })).toEqual([]);
    expect(notes(openai('whisper-1'), { 'whisper-1': { audioMinute: 0.006 } })).toEqual([]);
    expect(notes({ weak: { model: 'gpt-4.1', provider: 'openai-compatible' }, strong: { model: 'big', provider: 'vllm' } }, { 'gpt-4.1': { input: 2, output: 8 }, big: { input: 1, output: 1 } })).toEqual([]);
  });
});

describe('unpricedToolCalls: web searches OpenAI bills and the config leaves out of cost', () => {
  const TIERS = { weak: { model: 'qwen', provider: 'vllm' }, strong: { model: 'gpt-4.1', provider: 'openai' } } as const;

  it('a tier on OpenAI while the Responses API is read and web_search_call has no price: one note, naming the tier', () => {
    expect(unpricedToolCalls(runtimeFor({ tiers: TIERS }))).toEqual([
      { path: 'prices.toolCalls', message: "tier 'strong' goes to OpenAI, but web_search_call has no price: a Responses API answer's web searches would be counted in tool_calls and left out of cost_usd; list OpenAI's per-call prices (web_search_call: 0.01, file_search_call: 0.0025)" },
    ]);
  });

  it('no note when web searches are priced, the Responses API is not read, or no tier goes to OpenAI', () => {
    expect(unpricedToolCalls(runtimeFor({ tiers: TIERS, prices: prices({}, { web_search_call: 0.01 }) }))).toEqual([]);
    // Priced at zero is still priced: an operator with a free allowance says so.
    expect(unpricedToolCalls(runtimeFor({ tiers: TIERS, prices: prices({}, { web_search_call: 0 }) }))).toEqual([]);
    expect(unpricedToolCalls(runtimeFor({ tiers: TIERS, routing: { classifyPaths: ['/v1/chat/completions'] } }))).toEqual([]);
    expect(unpricedToolCalls(runtimeFor({ tiers: { weak: { model: 'qwen', provider: 'vllm' }, strong: { model: 'big', provider: 'openai-compatible' } } }))).toEqual([]);
    // Another tool priced is not web search priced.
    expect(unpricedToolCalls(runtimeFor({ tiers: TIERS, prices: prices({}, { file_search_call: 0.0025 }) }))).toHaveLength(1);
  });
});

describe('unpricedAudioPaths: an audio path whose tier cannot price what it is billed by', () => {
  const TIERS = { weak: { model: 'qwen' }, strong: { model: 'big' }, stt: { model: 'whisper-large-v3' }, tts: { model: 'tts-1' } };
  const notes = (paths: Record<string, { tier?: string }>, models: Record<string, unknown>) =>
    unpricedAudioPaths(runtimeFor({ tiers: TIERS, routing: { unclassifiedPaths: paths }, prices: prices(models) })).map((n) => n.path);
  const AUDIO = { '/v1/audio/transcriptions': { tier: 'stt' }, '/v1/audio/translations': { tier: 'stt' }, '/v1/audio/speech': { tier: 'tts' } };

  it('transcription and translation priced by text tokens only; speech priced as text without characters or audio output', () => {
    const r = unpricedAudioPaths(runtimeFor({ tiers: TIERS, routing: { unclassifiedPaths: AUDIO }, prices: prices({ 'whisper-large-v3': { input: 2.5, output: 10 }, 'tts-1': { input: 0.6, output: 12 } }) }));
    expect(r).toEqual([
      { path: 'routing.unclassifiedPaths./v1/audio/transcriptions', message: "it goes to tier 'stt', whose model 'whisper-large-v3' has no audioMinute or audioInput price: its answers (seconds of audio from whisper-1 and vLLM, audio tokens from gpt-4o-transcribe) would be unpriced; add the one its backend bills by under prices.models" },
      { path: 'routing.unclassifiedPaths./v1/audio/translations', message: expect.stringContaining("whose model 'whisper-large-v3' has no audioMinute or audioInput price") },
      { path: 'routing.unclassifiedPaths./v1/audio/speech', message: "it goes to tier 'tts', whose model 'tts-1' has no characters or audioOutput price: its answers (characters of text for tts-1, audio tokens for gpt-4o-mini-tts) would be unpriced; add the one its backend bills by under prices.models" },
    ]);
  });

  it('a per-token price is not enough for transcriptions (they report seconds), but prices speech', () => {
    expect(notes(AUDIO, { 'whisper-large-v3': { perToken: 0.0000002 }, 'tts-1': { perToken: 0.0000001 } })).toEqual(['routing.unclassifiedPaths./v1/audio/transcriptions', 'routing.unclassifiedPaths./v1/audio/translations']);
  });

  it('each price that is enough, alone', () => {
    for (const stt of [{ audioMinute: 0.006 }, { perToken: 0.0000002, audioMinute: 0.001 }, { input: 2.5, output: 10, audioInput: 6 }, { input: 2.5, output: 10, audioMinute: 0.006 }]) {
      expect(notes({ '/v1/audio/transcriptions': { tier: 'stt' } }, { 'whisper-large-v3': stt }), JSON.stringify(stt)).toEqual([]);
    }
    for (const tts of [{ characters: 15 }, { input: 0.6, output: 12, audioOutput: 12 }, { perToken: 0.0000001 }, { audioMinute: 0.01, characters: 15 }]) {
      expect(notes({ '/v1/audio/speech': { tier: 'tts' } }, { 'tts-1': tts }), JSON.stringify(tts)).toEqual([]);
    }
    // Audio tokens in but not out: a transcription's price, not speech's.
    expect(notes({ '/v1/audio/speech': { tier: 'tts' } }, { 'tts-1': { input: 0.6, output: 12, audioInput: 6 } })).toEqual(['routing.unclassifiedPaths./v1/audio/speech']);
    // Speech priced by the minute only: characters it is billed by have no price.
    expect(notes({ '/v1/audio/speech': { tier: 'tts' } }, { 'tts-1': { audioMinute: 0.01 } })).toEqual(['routing.unclassifiedPaths./v1/audio/speech']);
  });

  it('nothing for a path with no tier, a model with no price (warned about elsewhere), or a path that is not audio', () => {
    expect(notes({ '/v1/audio/transcriptions': {} }, { 'whisper-large-v3': { input: 2.5, output: 10 } })).toEqual([]);
    expect(notes(AUDIO, {})).toEqual([]);
    expect(notes({ '/v1/embeddings': { tier: 'weak' }, '/v1/images/generations': { tier: 'strong' } }, { qwen: { input: 1, output: 1 }, big: { input: 1, output: 1 } })).toEqual([]);
  });
});
