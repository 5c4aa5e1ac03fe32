// BPE is quadratic in the length of one pre-token, and o200k's split pattern leaves runs of letters, punctuation
// and whitespace unbounded: a client's prompt of 16k Korean syllables without a space, emoji or spaces held the
// event loop 0.3-1.9 s in one call of the tokenizer (under a token limit, on every such request). What the
// tokenizer is handed is recorded here: never more than 512 characters, never a run of over 128 like characters,
// never half a surrogate pair.
import { describe, expect, it, vi } from 'vitest';
import { countTokens, countTokensNow, countTokensOfAll, loadTokenizer } from '../../src/llm/tokenizer.js';
import { estimateUsage } from '../../src/usage/estimate.js';

const handed: string[] = [];
vi.mock('gpt-tokenizer/encoding/o200k_base', async (importOriginal) => {
  const real = await importOriginal<typeof import('gpt-tokenizer/encoding/o200k_base')>();
  return {
    ...real,
    countTokens: (text: string, opts?: Parameters<typeof real.countTokens>[1]) => {
      handed.push(text);
      return real.countTokens(text, opts);
    },
  };
});

/** The longest run of whitespace or of non-whitespace characters. */
function longestRun(s: string): number {
  let longest = 0;
  for (const m of s.matchAll(/\s+|\S+/g)) longest = Math.max(longest, m[0].length);
  return longest;
}

const lcg = (seed: number) => () => (seed = (seed * 48271) % 2147483647);
const fromRange = (n: number, lo: number, size: number) => {
  const next = lcg(7);
  return Array.from({ length: n }, () => String.fromCodePoint(lo + (next() % size))).join('');
};

describe('what the tokenizer is handed', () => {
  it.each([
    ['Korean syllables without a space', fromRange(16_384, 0xac00, 11_172)],
    ['CJK ideographs', fromRange(20_000, 0x4e00, 20_000)],
    ['emoji (surrogate pairs)', '😀🚀'.repeat(5_000)],
    ['astral ideographs at odd offsets', `x${fromRange(3_000, 0x20000, 40_000)}`],
    ['spaces', ' '.repeat(50_000)],
    ['newlines and tabs', '\n\t'.repeat(10_000)],
    ['one letter', 'a'.repeat(40_000)],
    ['punctuation', '_-'.repeat(10_000)],
    ['a word, then a long run', `hello ${'z'.repeat(3_000)} world`],
    // No ASCII space to cut before within 512 characters, and no run over 128: cut at 512.
    ['lines without a space', `${'x'.repeat(100)}\n`.repeat(50)],
    // A pair that the run limit would cut: the high half at index 127, what follows not a pair. The three are
    // the lowest high half (U+10000), an emoji's, and the highest (U+10FFFF).
    ['a pair at the run limit (U+10000)', `${'a'.repeat(127)}\u{10000}${'b'.repeat(300)}`],
    ['a pair at the run limit (emoji)', `${'a'.repeat(127)}😀${'b'.repeat(300)}`],
    ['a pair at the run limit (U+10FFFF)', `${'a'.repeat(127)}\u{10FFFF}${'b'.repeat(300)}`],
  ])('%s: pieces of at most 512 characters, runs of at most 128, no split pair', async (_name, text) => {
    await loadTokenizer();
    const head = text.slice(0, 4_000).replace(/[\uD800-\uDBFF]$/, ''); // not cut inside a pair here either
    for (const count of [() => countTokens(text), () => countTokensOfAll([text, head]), () => estimateUsage({ texts: [text], extra: '', chat: true, uncountedTokens: 0 }, text, text.length).then((u) => u.inputTokens + u.outputTokens)]) {
      handed.length = 0;
      expect(await count()).toBeGreaterThan(0);
      expect(handed.length).toBeGreaterThan(0);
      expect(Math.max(...handed.map((t) => t.length))).toBeLessThanOrEqual(512);
      expect(Math.max(...handed.map(longestRun))).toBeLessThanOrEqual(128);
      expect(handed.some((t) => /^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/.test(t))).toBe(false);
    }
    // The synchronous count (the budget stage's, for a prompt up to 4,096 characters) is cut the same way.
    handed.length = 0;
    expect(countTokensNow(head)).toBeGreaterThan(0);
    expect(Math.max(...handed.map((t) => t.length))).toBeLessThanOrEqual(512);
    expect(Math.max(...handed.map(longestRun))).toBeLessThanOrEqual(128);
  });

  it('a run of exactly 128 like characters is handed whole; one more is cut at 128', async () => {
    await loadTokenizer();
    for (const [text, pieces] of [
      ['a'.repeat(128), ['a'.repeat(128)]],
      ['a'.repeat(129), ['a'.repeat(128), 'a']],
      [' '.repeat(129), [' '.repeat(128), ' ']],
    ] as const) {
      handed.length = 0;
      await countTokens(text);
      expect(handed).toEqual(pieces);
    }
  });

  it('countTokensNow counts up to 4,096 characters in one go and leaves longer texts to the sliced count', async () => {
    await loadTokenizer();
    const text = 'Explain the migration plan step by step. '.repeat(100);
    expect(countTokensNow(text.slice(0, 4096))).toBe(await countTokens(text.slice(0, 4096)));
    expect(countTokensNow(text.slice(0, 4097))).toBeUndefined();
  });

  it('past ~1M characters of work the tokenizer is handed no more, and the rest is scaled from what it counted', async () => {
    await loadTokenizer();
    const text = 'Please optimise this query. '.repeat(100_000); // 2.8M characters
    handed.length = 0;
    const scaled = await countTokens(text);
    const handedChars = handed.reduce((n, t) => n + t.length, 0);
    expect(handedChars).toBeLessThanOrEqual(1024 * 1024);
    // Work counts 64 characters a call besides the text: pieces of ~500 characters hand on about 89% of the cap.
    expect(handedChars).toBeGreaterThan(900_000);
    expect(scaled).toBe(Math.round((handed.reduce((n, t) => n + (countTokensNow(t) as number), 0) * text.length) / handedChars));
  });

  it('prose is cut before a space, so every piece but the first starts with one', async () => {
    await loadTokenizer();
    const text = 'Please refactor the payment module and explain each change you make. '.repeat(200).trimEnd();
    handed.length = 0;
    await countTokens(text);
    expect(handed.length).toBeGreaterThan(20);
    expect(handed.slice(1).every((t) => t.startsWith(' ') && !t.endsWith(' '))).toBe(true);
    expect(handed.join('')).toBe(text);
  });
});
