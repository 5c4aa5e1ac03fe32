// Reading chosen top-level members of a JSON body as it streams past (src/usage/top-level-members.ts): for any
// JSON object, cut into any pieces, the members read are JSON.parse's; a body that is not a whole JSON object
// gives nothing.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TopLevelMembers } from '../../src/usage/top-level-members.js';
import { fuzzRuns } from '../helpers/generated.js';

const WANTED = new Set(['usage', 'model', 'error']);

/** `text` cut at `cuts` (byte offsets) and pushed piece by piece. */
function read(text: string | Buffer, cuts: readonly number[] = [], max?: number): Record<string, unknown> | undefined {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const r = new TopLevelMembers(WANTED, max);
  let at = 0;
  for (const c of [...cuts].map((x) => x % (bytes.length + 1)).sort((a, b) => a - b)) {
    r.push(bytes.subarray(at, c));
    at = c;
  }
  r.push(bytes.subarray(at));
  return r.finish();
}

const expected = (o: Record<string, unknown>) => Object.fromEntries([...WANTED].filter((k) => Object.hasOwn(o, k)).map((k) => [k, o[k]]));

describe('top-level members of a streamed JSON body', () => {
  it('reads what JSON.parse reads, for any object, whitespace and cut', () => {
    const key = fc.oneof(fc.constantFrom('usage', 'model', 'error', 'data', 'object', 'us"age', 'us\\age', 'modèle'), fc.string());
    fc.assert(
      fc.property(fc.dictionary(key, fc.jsonValue()), fc.constantFrom(undefined, 0, 2, '\t'), fc.array(fc.nat(), { maxLength: 12 }), (o, indent, cuts) => {
        const text = JSON.stringify(o, null, indent);
        expect(read(text, cuts)).toEqual(expected(JSON.parse(text) as Record<string, unknown>));
      }),
      { numRuns: fuzzRuns(3000) },
    );
  });

  it('an embeddings answer: usage after megabytes of vectors, in 16 KiB pieces', () => {
    const data = Array.from({ length: 300 }, (_, i) => ({ object: 'embedding', index: i, embedding: Array.from({ length: 1536 }, (_, j) => Math.sin(i * j) / 10) }));
    const body = JSON.stringify({ object: 'list', data, model: 'text-embedding-3-small', usage: { prompt_tokens: 2400, total_tokens: 2400 } });
    const cuts = Array.from({ length: Math.floor(body.length / 16384) }, (_, i) => (i + 1) * 16384);
    expect(read(body, cuts)).toEqual({ model: 'text-embedding-3-small', usage: { prompt_tokens: 2400, total_tokens: 2400 } });
  });

  it('a member named twice counts last; a name written with escapes is its name', () => {
    expect(read('{"usage":{"total_tokens":1},"x":[1,{"usage":3}],"usage":{"total_tokens":2}}')).toEqual({ usage: { total_tokens: 2 } });
    expect(read('{"us\\u0061ge":{"total_tokens":5}}')).toEqual({ usage: { total_tokens: 5 } });
    // An escaped quote or backslash inside strings, nested or not, does not end them.
    expect(read('{"data":["a\\"}","\\\\"],"model":"m\\"x\\\\"}', [10, 11, 12, 13, 24, 25])).toEqual({ model: 'm"x\\' });
  });

  it('UTF-8 across pieces: a model name of several bytes per character, cut inside a character', () => {
    const body = Buffer.from('{"model":"모델-ü-😀","usage":{"total_tokens":1}}');
    for (let cut = 0; cut <= body.length; cut++) expect(read(body, [cut])).toEqual({ model: '모델-ü-😀', usage: { total_tokens: 1 } });
  });

  it('a value longer than the bound is not read, and hides an earlier one of the same name', () => {
    expect(read(`{"model":"a","model":"${'x'.repeat(100)}","usage":1}`, [], 64)).toEqual({ usage: 1 });
  });

  it.each([
    ['an array', '[{"usage":1}]'],
    ['a string', '"usage"'],
    ['an object cut short', '{"usage":{"total_tokens":1},"data":[1,2'],
    ['an object cut inside a number', '{"usage":12'],
    ['text after the object', '{"usage":1} x'],
    ['a missing colon', '{"usage" 1}'],
    ['an empty body', ''],
  ])('%s gives nothing', (_name, text) => {
    expect(read(text)).toBeUndefined();
  });
});
