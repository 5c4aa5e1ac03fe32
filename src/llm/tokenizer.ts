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

/**
 * Characters of work between yields of the event loop, and the longest text counted synchronously. Past the cut
 * into pieces below, the costliest text measured (random CJK ideographs) takes ~4 µs a character, so a slice
 * holds the loop ~16 ms at worst; English prose ~0.03 µs.
 */
const SLICE_CHARS = 4096;
/** Beyond this much work, the count is scaled from the counted part's tokens per character. */
const MAX_COUNTED_CHARS = 1024 * 1024;
/**
 * What one call of the tokenizer costs beyond its characters, in characters: ~2 µs, about what 64 characters of
 * BPE cost. A prompt of 500,000 one-character messages is half a million calls, ~1.2 s of CPU counted alone.
 */
const CALL_CHARS = 64;
/**
 * The longest text handed to the tokenizer at once, and the longest run of non-space (or space) characters in it.
 * BPE is quadratic in the length of one pre-token, and o200k's split pattern leaves runs of letters, of
 * punctuation and of whitespace unbounded: in one call, 16k characters of Korean syllables without a space took
 * 1.9 s, of emoji 0.8 s, of spaces 0.3 s (English prose: under 1 ms). Text is cut before a space within
 * PIECE_CHARS (where a pre-token starts, so a count of prose is unchanged), and a run past RUN_CHARS is cut
 * where it is (at most one token more per cut: +0.4% on Japanese, which has no spaces).
 */
const PIECE_CHARS = 512;
const RUN_CHARS = 128;

/** Synchronous for a short text once the tokenizer is loaded (one slice at most); else undefined. */
export function countTokensNow(text: string): number | undefined {
  if (text.length === 0) return 0;
  if (loaded === undefined || text.length > SLICE_CHARS) return undefined;
  const count = loaded;
  let tokens = 0;
  for (let at = 0; at < text.length; ) {
    const end = pieceEnd(text, at, text.length);
    tokens += count(pieceOf(text, at, end));
    at = end;
  }
  return tokens;
}

/** ASCII whitespace: what ends a run of letters or punctuation in the tokenizer's split pattern. */
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/**
 * Where the piece of `text` starting at `at` ends (exclusive, at most `limit`): at the first character that would
 * make a run of like characters (space or not) longer than RUN_CHARS, else before the last space that follows a
 * non-space within PIECE_CHARS, else at PIECE_CHARS. Never between the halves of a surrogate pair.
 */
function pieceEnd(text: string, at: number, limit: number): number {
  const max = Math.min(limit, at + PIECE_CHARS);
  let run = 0;
  let inSpace = false;
  let wordStart = -1;
  for (let i = at; i < max; i++) {
    const space = isSpace(text.charCodeAt(i));
    if (space !== inSpace || i === at) {
      // Before a space that ends a word: the split pattern starts a pre-token there (none ends in a space), so
      // both pieces read as they would whole. Not before a newline: ".\n" is one pre-token.
      if (space && !inSpace && i > at && text.charCodeAt(i) === 32) wordStart = i;
      inSpace = space;
      run = 0;
    }
    if (++run > RUN_CHARS) return notInPair(text, at, i);
  }
  if (max === text.length) return max;
  if (max === limit) return notInPair(text, at, max); // the counting cap, not the piece size, ends this one
  return wordStart > at ? wordStart : notInPair(text, at, max);
}

/** The piece as a string: the text itself when it is all of it (most prompts are one piece), else a copy. */
function pieceOf(text: string, at: number, end: number): string {
  return at === 0 && end === text.length ? text : text.slice(at, end);
}

/** `end`, or one less when it would split a surrogate pair (and a piece stays at least one character). */
function notInPair(text: string, at: number, end: number): number {
  const c = text.charCodeAt(end - 1);
  return c >= 0xd800 && c <= 0xdbff && end - 1 > at ? end - 1 : end;
}

export function countTokens(text: string): Promise<number> {
  return countTokensOfAll([text]);
}

/**
 * The tokens of several texts (a prompt's messages), each counted on its own. The slices are shared: the loop is
 * yielded every ~4k characters of work whether they are one long text or many short ones (awaiting a count per
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
      const end = pieceEnd(text, at, Math.min(text.length, at + MAX_COUNTED_CHARS - work));
      tokens += count(pieceOf(text, at, end));
      counted += end - at;
      work += end - at + CALL_CHARS;
      sinceYield += end - at + CALL_CHARS;
      at = end;
    }
    if (work >= MAX_COUNTED_CHARS) break;
  }
  return counted < total ? Math.round((tokens * total) / counted) : tokens;
}
