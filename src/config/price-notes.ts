// Models sent to OpenAI whose prices list no service tiers. OpenAI bills a flex or priority answer at that tier's
// prices and says so in the answer, but a model priced without `serviceTiers` is priced alike on every tier
// (right for self-hosted models): its priority rows would show ~57% of what they cost, and nothing would say
// so. Likewise hosted tool calls: without a price for web searches, a Responses API answer's searches are left
// out of its cost; and audio paths, billed by audio tokens, seconds of audio or characters. Valid configs, so notes.
import type { ConfigNote } from './config-note.js';
import { readsResponses, type Runtime } from './runtime.js';
import { SPEECH_PATH } from '../usage/speech-request.js';

export function untieredOpenAiPrices(rt: Runtime): ConfigNote[] {
  const notes: ConfigNote[] = [];
  const seen = new Set<string>();
  for (const t of rt.tiers.values()) {
    if (t.provider !== 'openai') continue;
    const found = rt.prices.lookup(t.model);
    if (!found || !('input' in found.price) || found.price.serviceTiers !== undefined || seen.has(found.model)) continue;
    seen.add(found.model);
    notes.push({
      path: `tiers.${t.name}`,
      message: `its provider is openai, but the price of '${t.model}' lists no serviceTiers: a flex or priority answer would be priced as default; list those tiers' prices under prices.models, or limit what plans may ask for (serviceTiers)`,
    });
  }
  return notes;
}

/**
 * A tier sent to OpenAI while the Responses API is read, and no price for its web searches (prices.toolCalls):
 * each search OpenAI bills ($10 per 1,000 calls) would be counted in the row and left out of its cost.
 */
export function unpricedToolCalls(rt: Runtime): ConfigNote[] {
  if (rt.config.prices.toolCalls.web_search_call !== undefined) return [];
  if (!readsResponses(rt)) return [];
  const tier = [...rt.tiers.values()].find((t) => t.provider === 'openai');
  if (!tier) return [];
  return [{ path: 'prices.toolCalls', message: `tier '${tier.name}' goes to OpenAI, but web_search_call has no price: a Responses API answer's web searches would be counted in tool_calls and left out of cost_usd; list OpenAI's per-call prices (web_search_call: 0.01, file_search_call: 0.0025)` }];
}

/** The paths whose answers report their input as audio: tokens (gpt-4o-transcribe) or seconds (whisper-1). */
const TRANSCRIPTION_PATHS: ReadonlySet<string> = new Set(['/v1/audio/transcriptions', '/v1/audio/translations']);

/**
 * An audio path sent to a tier whose model's price cannot price what that path is billed by: a transcription
 * path's audio tokens or seconds of audio; the speech path's characters (tts-1) or audio tokens (gpt-4o-mini-tts).
 * Every answer there would be unpriced (a model with no price at all is warned about already).
 */
export function unpricedAudioPaths(rt: Runtime): ConfigNote[] {
  const notes: ConfigNote[] = [];
  for (const [path, { tier: name }] of rt.unclassifiedPaths) {
    const tier = name === undefined ? undefined : rt.tiers.get(name);
    if (!tier) continue;
    const price = rt.prices.lookup(tier.model)?.price;
    if (!price) continue;
    const about = `it goes to tier '${tier.name}', whose model '${tier.model}'`;
    if (TRANSCRIPTION_PATHS.has(path)) {
      // vLLM's transcriptions, like whisper-1, report seconds of audio, which a per-token price cannot price either.
      if (price.audioMinute !== undefined || ('audioInput' in price && price.audioInput !== undefined)) continue;
      notes.push({
        path: `routing.unclassifiedPaths.${path}`,
        message: `${about} has no audioMinute or audioInput price: its answers (seconds of audio from whisper-1 and vLLM, audio tokens from gpt-4o-transcribe) would be unpriced; add the one its backend bills by under prices.models`,
      });
    } else if (path === SPEECH_PATH) {
      if ('perToken' in price || ('characters' in price && price.characters !== undefined) || ('audioOutput' in price && price.audioOutput !== undefined)) continue;
      notes.push({
        path: `routing.unclassifiedPaths.${path}`,
        message: `${about} has no characters or audioOutput price: its answers (characters of text for tts-1, audio tokens for gpt-4o-mini-tts) would be unpriced; add the one its backend bills by under prices.models`,
      });
    }
  }
  return notes;
}
