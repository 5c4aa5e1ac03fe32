// The text a classifier version looks at, built exactly as the production v7 rules do.
import type { ChatMessage } from '../llm/openai-request.js';

export type Role = ChatMessage['role'];

/** A message's text: a string as is; an array of parts → its text parts joined with one space. */
export function messageText(m: ChatMessage): string {
  const c = m.content;
  if (typeof c === 'string') return c;
  if (!Array.isArray(c)) return '';
  const texts: string[] = [];
  for (const p of c) if (p.type === 'text' && typeof p.text === 'string') texts.push(p.text);
  return texts.join(' ');
}

/** Contents of every message with non-empty content, joined with one space, lower-cased. */
export function joinedText(messages: readonly ChatMessage[]): string {
  const parts: string[] = [];
  for (const m of messages) {
    const t = messageText(m);
    if (t.length > 0) parts.push(t);
  }
  return parts.join(' ').toLowerCase();
}

const NONE: ReadonlySet<string> = new Set();

/** The types of the content parts in the messages; a string content has none. */
export function partTypes(messages: readonly ChatMessage[]): ReadonlySet<string> {
  let types: Set<string> | undefined;
  for (const m of messages) {
    const c = m.content;
    if (!Array.isArray(c)) continue;
    for (const p of c) (types ??= new Set()).add(p.type);
  }
  return types ?? NONE;
}

/**
 * How many content parts carry something other than text (an image, audio, a file): the tokenizer cannot count
 * them, so budgets reserve `budgets.mediaPartEstimate` tokens each. Refusals are text.
 */
export function mediaParts(messages: readonly ChatMessage[]): number {
  let n = 0;
  for (const m of messages) {
    const c = m.content;
    if (Array.isArray(c)) for (const p of c) if (p.type !== 'text' && p.type !== 'refusal') n++;
  }
  return n;
}

const HIGH_SURROGATE = /[\uD800-\uDBFF]/;
const SURROGATE_PAIR = /[\uD800-\uDBFF][\uDC00-\uDFFF]/g;

/**
 * Length in Unicode code points (Python's len), not UTF-16 units: an emoji counts once, a lone surrogate once.
 * A classification reason names the count, and a prompt may be 16 MiB of text: a loop over every unit took
 * ~50 ms of the event loop there. V8 answers the regular expressions at once for a one-byte string (Latin-1,
 * so most English prompts), which cannot hold a surrogate, and scans two-byte ones natively (16 MiB of Korean
 * ~16 ms, of text with emoji ~32 ms; `npm run bench:large-bodies` measures the whole body answer).
 */
export function codePointLength(s: string): number {
  if (!HIGH_SURROGATE.test(s)) return s.length;
  let pairs = 0;
  SURROGATE_PAIR.lastIndex = 0;
  while (SURROGATE_PAIR.exec(s) !== null) pairs++;
  return s.length - pairs;
}
