// Token counting with a real BPE tokenizer (gpt-tokenizer, o200k_base: the GPT-4o/GPT-5 vocabulary). Its
// tables take ~300 ms to load, so serve() loads them before listening. Counting is async and sliced: it only
// runs when a response carried no usage, and a long text must never hold the event loop while Envoy waits
// for answers on other streams.
import { setImmediate as yieldToLoop } from 'node:timers/promises';

type Counter = (text: string) => number;

let loading: Promise<Counter> | undefined;
let loaded: Counter | undefined;

/**
 * A prompt may write out a special token's string ("<|endoftext|>", "<|im_start|>": questions about tokenizers,
 * pasted chat templates or model output). The tokenizer's default throws on them, which answered such a
 * request 500 under a token limit and lost its ledger row when usage was estimated. The API reads a client's
 * text as text, so these strings are counted as the ordinary characters they are.
 */
const AS_TEXT = { disallowedSpecial: new Set<string>() };

export function loadTokenizer(): Promise<Counter> {
  loading ??= import('gpt-tokenizer/encoding/o200k_base').then((m) => (loaded = (text: string) => countOrGuess(m.countTokens, text)));
  return loading;
}

/**
 * The text is the client's, and a tokenizer is a library with its own idea of valid input (it threw on special
 * tokens until AS_TEXT). Should it throw on some other text, the count falls back to one token per four
 * characters (about English's ratio) rather than failing the request's admission or losing its ledger row.
 */
function countOrGuess(count: (text: string, opts: typeof AS_TEXT) => number, text: string): number {
  try {
    return count(text, AS_TEXT);
  } catch {
    return Math.ceil(text.length / 4);
  }
}

/** ~16k characters is a few milliseconds of BPE: the longest the event loop is held at a time. */
const SLICE_CHARS = 16 * 1024;
/** Beyond this much work, the count is scaled from the counted part's tokens per character. */
const MAX_COUNTED_CHARS = 1024 * 1024;
/**
 * What one call of the tokenizer costs beyond its characters, in characters: ~2 µs, about what 64 characters of
 * BPE cost. A prompt of 500,000 one-character messages is half a million calls, ~1.2 s of CPU counted alone.
 */
const CALL_CHARS = 64;

/** Synchronous for a short text once the tokenizer is loaded (one slice at most); else undefined. */
export function countTokensNow(text: string): number | undefined {
  if (text.length === 0) return 0;
  return loaded !== undefined && text.length <= SLICE_CHARS ? loaded(text) : undefined;
}

export function countTokens(text: string): Promise<number> {
  return countTokensOfAll([text]);
}

/**
 * The tokens of several texts (a prompt's messages), each counted on its own. The slices are shared: the loop is
 * yielded every ~16k characters of work whether they are one long text or many short ones (awaiting a count per
 * message yields only to promise callbacks, so a prompt of thousands of messages held the loop for all of them).
 * So is the cap: past ~1M characters of work in all, the rest is scaled from the counted part.
 */
export async function countTokensOfAll(texts: readonly string[]): Promise<number> {
  let total = 0;
  for (const t of texts) total += t.length;
  if (total === 0) return 0;
  const count = await loadTokenizer();
  let tokens = 0;
  let counted = 0;
  let work = 0;
  let sinceYield = 0;
  for (const text of texts) {
    for (let at = 0; at < text.length && work < MAX_COUNTED_CHARS; ) {
      if (sinceYield >= SLICE_CHARS) {
        await yieldToLoop();
        sinceYield = 0;
      }
      const limit = Math.min(text.length, at + MAX_COUNTED_CHARS - work);
      let end = Math.min(at + SLICE_CHARS, limit);
      // Cut after whitespace so no word is split in two (which would count it as more tokens).
      if (end < limit) {
        const ws = text.lastIndexOf(' ', end);
        if (ws > at) end = ws + 1;
      }
      tokens += count(at === 0 && end === text.length ? text : text.slice(at, end));
      counted += end - at;
      work += end - at + CALL_CHARS;
      sinceYield += end - at + CALL_CHARS;
      at = end;
    }
    if (work >= MAX_COUNTED_CHARS) break;
  }
  return counted < total ? Math.round((tokens * total) / counted) : tokens;
}
