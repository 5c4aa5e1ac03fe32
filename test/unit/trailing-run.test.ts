// withoutTrailing (src/trailing-run.ts) replaced /[…]+$/ regexes that are quadratic on client text: it must take
// off exactly what the regex took off, astral characters and lone surrogates included. How long each took is
// measured by bench/trailing-runs.ts, not here.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { questionFeatures } from '../../src/cache/guards.js';
import { embeddingText } from '../../src/cache/request-key.js';
import { termsOf } from '../../src/eval/keywords.js';
import { withoutTrailing } from '../../src/trailing-run.js';

/** Each class withoutTrailing is used with, beside the regex it replaced. */
const CLASSES: Array<{ one: RegExp; run: RegExp }> = [
  { one: /^[.,;:!?)\]]$/, run: /[.,;:!?)\]]+$/ },
  { one: /^\P{L}$/u, run: /\P{L}+$/u },
  { one: /^[\s.?!。？！]$/u, run: /[\s.?!。？！]+$/u },
  { one: /^[-_]$/, run: /[-_]+$/ },
];
/** Letters, members of the classes, spaces, an astral letter (𝐀), an emoji, and both halves of a surrogate pair alone. */
const PIECES = ['a', 'Z', '가', 'é', '.', ',', ';', ':', '!', '?', ')', ']', '-', '_', ' ', '\n', '。', '？', '1', '𝐀', '🙂', '\uD835', '\uDC00'];

describe('withoutTrailing', () => {
  it('takes off what /[…]+$/ took off, for every class it replaces', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...PIECES), { maxLength: 24, size: 'max' }), (pieces) => {
        const s = pieces.join('');
        for (const { one, run } of CLASSES) expect(withoutTrailing(s, one), `${JSON.stringify(s)} ${run}`).toBe(s.replace(run, ''));
      }),
      { numRuns: 3000 },
    );
  });

  it('reads the end by code point: an astral letter is one letter, a lone surrogate is not a letter', () => {
    expect(withoutTrailing('Paris🙂🙂', /^\P{L}$/u)).toBe('Paris');
    expect(withoutTrailing('x𝐀', /^\P{L}$/u)).toBe('x𝐀');
    expect(withoutTrailing('x\uDC00', /^\P{L}$/u)).toBe('x');
    expect(withoutTrailing('...', /^[.]$/)).toBe('');
    expect(withoutTrailing('', /^[.]$/)).toBe('');
  });

  it('its callers read text as before', () => {
    expect(questionFeatures('Open https://example.com/a(b)), then https://example.com/c!?').urls).toEqual(['https://example.com/a(b', 'https://example.com/c']);
    // Names keep their letters only: "(Paris)," and "Paris" are one name.
    expect(questionFeatures('Is it far to (Paris), or to Paris?').entities).toEqual(questionFeatures('Is it far to Paris').entities);
    expect(embeddingText('  Say   HI !?。 ')).toBe('say hi');
    expect([...termsOf('re-index the data_ pipeline--')]).toEqual(expect.arrayContaining(['re-index', 'data', 'pipeline']));
  });
});
