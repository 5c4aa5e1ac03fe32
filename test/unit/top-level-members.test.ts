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
    // The bound counts the value's bytes, quotes included: 64 is read, 65 is not, whatever the cuts.
    const model = (n: number) => `{"model":"${'x'.repeat(n - 2)}","usage":1}`;
    for (const cut of [0, 10, 40, 73, 80]) {
      expect(read(model(64), [cut], 64)).toEqual({ model: 'x'.repeat(62), usage: 1 });
      expect(read(model(65), [cut], 64)).toEqual({ usage: 1 });
    }
  });

  it('a carriage return is whitespace too (a CRLF pretty-printer), like space, tab and newline', () => {
    expect(read('\r\n{\r\n\t"usage" \r:\r\n {"total_tokens":1}\r\n ,\t"model"\r\n:"m"\r\n}\r\n')).toEqual({ usage: { total_tokens: 1 }, model: 'm' });
  });

  it('a wanted name written with an escape, cut anywhere, even right after its backslash', () => {
    const body = Buffer.from('{"us\\u0061ge":{"total_tokens":5},"mod\\"el":1,"\\u006dodel":"m"}');
    for (let cut = 0; cut <= body.length; cut++) expect(read(body, [cut])).toEqual({ usage: { total_tokens: 5 }, model: 'm' });
  });

  it.each([
    ['an array', '[{"usage":1}]'],
    ['a string', '"usage"'],
    ['an object cut short', '{"usage":{"total_tokens":1},"data":[1,2'],
    ['an object cut inside a number', '{"usage":12'],
    ['text after the object', '{"usage":1} x'],
    ['a missing colon', '{"usage" 1}'],
    ['another character for the colon', '{"usage";1}'],
    ['an array that reads like an object', '["usage":1}'],
    ['an object closed by a square bracket', '{"usage":{"total_tokens":1}]'],
    ['a member without a name after a comma', '{"usage":1,]'],
    ['a missing value before a comma', '{"usage":,"model":"m"}'],
    ['a missing value before the end', '{"model":"m","usage":}'],
    ['a value opened by a closing bracket', '{"model":"m","usage":]}'],
    ['a value opened by a colon', '{"model":"m","usage"::1}'],
    ['an empty body', ''],
  ])('%s gives nothing', (_name, text) => {
    expect(read(text)).toBeUndefined();
  });
});
