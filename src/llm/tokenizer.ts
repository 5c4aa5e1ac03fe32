// Token counting with a real BPE tokenizer (gpt-tokenizer, o200k_base: the GPT-4o/GPT-5 vocabulary). Its
// tables take ~300 ms to load, so serve() loads them before listening. Counting is async and sliced: it only
// runs when a response carried no usage, and a long text must never hold the event loop while Envoy waits
// for answers on other streams.
import { setImmediate as yieldToLoop } from 'node:timers/promises';

type Counter = (text: string) => number;

let loading: Promise<Counter> | undefined;
let loaded: Counter | undefined;

export function loadTokenizer(): Promise<Counter> {
  loading ??= import('gpt-tokenizer/encoding/o200k_base').then((m) => (loaded = (text: string) => m.countTokens(text)));
  return loading;
}

/** ~16k characters is a few milliseconds of BPE: the longest the event loop is held at a time. */
const SLICE_CHARS = 16 * 1024;
/** Beyond this, the count is scaled from the counted part's tokens per character. */
const MAX_COUNTED_CHARS = 1024 * 1024;

/** Synchronous for a short text once the tokenizer is loaded (one slice at most); else undefined. */
export function countTokensNow(text: string): number | undefined {
  if (text.length === 0) return 0;
  return loaded !== undefined && text.length <= SLICE_CHARS ? loaded(text) : undefined;
}

export async function countTokens(text: string): Promise<number> {
  if (text.length === 0) return 0;
  const count = await loadTokenizer();
  const limit = Math.min(text.length, MAX_COUNTED_CHARS);
  let tokens = 0;
  let at = 0;
  while (at < limit) {
    let end = Math.min(at + SLICE_CHARS, limit);
    // Cut after whitespace so no word is split in two (which would count it as more tokens).
    if (end < limit) {
      const ws = text.lastIndexOf(' ', end);
      if (ws > at) end = ws + 1;
    }
    tokens += count(text.slice(at, end));
    at = end;
    if (at < limit) await yieldToLoop();
  }
  return limit < text.length ? Math.round((tokens * text.length) / limit) : tokens;
}
