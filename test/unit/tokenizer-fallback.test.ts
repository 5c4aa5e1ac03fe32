// The tokenizer is a library reading the client's text: if it throws on some text, counting falls back to one
// token per four characters instead of failing the request's admission or losing its ledger row.
import { describe, expect, it, vi } from 'vitest';
import { countTokens, countTokensNow, countTokensOfAll, loadTokenizer } from '../../src/llm/tokenizer.js';
import { estimateUsage } from '../../src/usage/estimate.js';

/** A character the stand-in tokenizer refuses, as the real one refused special tokens' strings. */
const REFUSED = '\u{E000}';
vi.mock('gpt-tokenizer/encoding/o200k_base', async (importOriginal) => {
  const real = await importOriginal<typeof import('gpt-tokenizer/encoding/o200k_base')>();
  return {
    ...real,
    countTokens: (text: string, opts?: Parameters<typeof real.countTokens>[1]) => {
      if (text.includes(REFUSED)) throw new Error('the tokenizer refuses this text');
      return real.countTokens(text, opts);
    },
  };
});

describe('a tokenizer that throws', () => {
  it('counts the text it refuses as one token per four characters, and the rest exactly', async () => {
    await loadTokenizer();
    const refused = `${REFUSED} twelve chars`; // 14 UTF-16 units
    expect(countTokensNow(refused)).toBe(4);
    expect(await countTokens(refused)).toBe(4);
    expect(countTokensNow('Say hi')).toBe(2);
    expect(await countTokensOfAll(['Say hi', refused])).toBe(6);
    const usage = await estimateUsage({ texts: [refused], extra: '', chat: true, uncountedTokens: 0 }, `${REFUSED}abc`, 0);
    expect([usage.inputTokens, usage.outputTokens]).toEqual([4 + 6, 1]);
  });
});
