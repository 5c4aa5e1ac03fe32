import { describe, expect, it } from 'vitest';
import { requestKeys, type CacheScope } from '../../src/cache/request-key.js';
import { exactOr, exactView, longIntegers, outsideStrings } from '../../src/llm/exact-numbers.js';
import { parseLlmRequest } from '../../src/llm/parse-request.js';

const view = (raw: string) => exactView(Buffer.from(raw));
const chat = (raw: string) => parseLlmRequest('chat', Buffer.from(raw));
const exactKey = (scope: CacheScope, llm: ReturnType<typeof chat>) => requestKeys(scope, llm).exact;
const MSG = '"messages":[{"role":"user","content":"hi"}]';
/** The route's serialisation of a request's exact view, with `model` rewritten as the route stage does. */
const routed = (raw: string) => {
  const r = chat(raw);
  return exactOr(JSON.stringify({ ...r.json, model: 'm' }), { ...(r.exact as Record<string, unknown>), model: 'm' });
};

describe('longIntegers: the scan every body gets', () => {
  // What it must find, said plainly; the scan looks at every 16th byte only, so compare the two widely.
  function reference(s: string): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (const m of s.matchAll(/[:[,][ \t\n\r]*(-?[0-9]{16,})(?=[ \t\n\r,\]}])/g)) {
      const digits = m[1] as string;
      const start = (m.index as number) + m[0].length - digits.length;
      if (!Number.isSafeInteger(Number(digits))) out.push([start, start + digits.length]);
    }
    return out;
  }

  it('finds integers beyond 2^53 where a value starts, wherever they lie, and nothing else', () => {
    const yes = ['{"a":9007199254740992}', '{"a":-9007199254740992}', '{"a":9999999999999999}', '{"a":12345678901234567}', '[12345678901234567]', '{"a": -12345678901234567 }', '{"a":[1,\n\t 12345678901234567890]}', '{"시드":12345678901234567890}',
      // every kind of JSON whitespace on either side: a body pretty-printed with CRLF line ends, tabs
      '{\r\n  "seed": 12345678901234567890\r\n}', '{"a":\r12345678901234567890\t}', '{"a":\t12345678901234567890\r}', '{"a":\n12345678901234567890\n}'];
    const no = [
      '{"a":1234567890123456}', // 16 digits, below 2^53: JSON.parse keeps it exactly
      '{"a":9007199254740991}', // 2^53 - 1
      '{"a":-9007199254740991}',
      '{"a":"x: 00000000000000000000009007199254740991,"}', // leading zeros, as Number() reads them: safe
      '{"a":"x: 0000000000000000000123,"}', // fewer than 16 digits once its zeros are dropped
      '{"a":"12345678901234567890"}', // a string
      '{"a":"x 12345678901234567890"}',
      '{"a":12345678901234567890.5}', // a float: any backend reads JSON.parse's double back as the same number
      '{"a":12345678901234567890e2}',
      '{"a":"번호 12345678901234567890"}',
      '',
    ];
    for (let pad = 0; pad < 20; pad++) {
      for (const s of yes) expect(longIntegers(Buffer.from(' '.repeat(pad) + s)), `${pad} ${s}`).toHaveLength(1);
      for (const s of no) expect(longIntegers(Buffer.from(' '.repeat(pad) + s)), `${pad} ${s}`).toEqual([]);
    }
  });

  it('agrees with the regular expression on 20,000 random texts', () => {
    const alphabet = `${'0123456789'.repeat(4)}99999:[,]}- \n\t\r"ab.`;
    let seed = 12345;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    let positives = 0;
    for (let t = 0; t < 20_000; t++) {
      let s = '';
      const len = rand(160);
      for (let i = 0; i < len; i++) s += alphabet[rand(alphabet.length)];
      const want = reference(s);
      positives += want.length > 0 ? 1 : 0;
      expect(longIntegers(Buffer.from(s)), JSON.stringify(s)).toEqual(want);
    }
    expect(positives).toBeGreaterThan(100); // the random texts do exercise both answers
  });
});

describe('exactView', () => {
  it('is undefined for a body without such integers, and for one whose digit runs are inside strings', () => {
    expect(view(`{"model":"auto","seed":42,${MSG}}`)).toBeUndefined();
    // The scan cannot tell "id:…" inside a string from a value; wrapping it breaks the string, so it is left alone.
    expect(view('{"messages":[{"role":"user","content":"card id:12345678901234567890, [12345678901234567890]"}]}')).toBeUndefined();
    expect(view('{"seed":12345678901234567890,')).toBeUndefined(); // invalid JSON: JSON.parse's 400 stands
  });

  it('is the same parse as JSON.parse apart from the rounded integers, at any depth', () => {
    const raw = `{"seed":9223372036854775807,"metadata":{"ids":[-12345678901234567890,7]},"t":0.5,${MSG}}`;
    const v = view(raw) as Record<string, unknown>;
    const plain = JSON.parse(raw) as Record<string, unknown>;
    expect(v.seed).not.toBe(plain.seed);
    expect(String(v.seed)).toMatch(/9223372036854775807$/);
    expect(String((v.metadata as { ids: unknown[] }).ids[0])).toMatch(/-12345678901234567890$/);
    expect({ ...v, seed: 0, metadata: { ids: [0, 7] } }).toEqual({ ...plain, seed: 0, metadata: { ids: [0, 7] } });
  });

  it('reads duplicate keys as JSON.parse does (it is JSON.parse), so the body sent is the body validated', () => {
    const r = chat('{"messages":[{"role":"user","content":"first"}],"seed":12345678901234567890,"messages":[{"role":"user","content":"last"}]}');
    expect(r.messages[0]?.content).toBe('last');
    expect((r.exact?.messages as Array<{ content: string }>)[0]?.content).toBe('last');
  });
});

describe('exactOr', () => {
  it('sends the integers as the client wrote them', () => {
    expect(routed(`{"model":"auto","seed":12345678901234567890,"x":[-98765432109876543210],${MSG}}`)).toEqual({
      exact: true,
      text: `{"model":"m","seed":12345678901234567890,"x":[-98765432109876543210],${MSG}}`,
    });
  });

  it('falls back to the validated body when the exact one would say anything else', () => {
    const r = chat(`{"model":"auto","seed":12345678901234567890,${MSG}}`);
    const body = JSON.stringify({ ...r.json, model: 'm' });
    const tampered = { ...(r.exact as Record<string, unknown>), model: 'm', messages: [{ role: 'user', content: 'something else' }] };
    expect(exactOr(body, tampered)).toEqual({ exact: false, text: body });
  });

  it('a string whose digits look like a value does not cost the body its real integers', () => {
    // The scan takes ": 9223372036854775807," inside the string for a value; the seed must still go on exactly.
    const raw = String.raw`{"model":"auto","note":"x: 9223372036854775807, y","seed":12345678901234567890,"ids":["\\", 18446744073709551615],` + `${MSG}}`;
    const out = routed(raw);
    expect(out.exact).toBe(true);
    expect(out.text).toContain('"seed":12345678901234567890');
    expect(out.text).toContain(String.raw`"ids":["\\",18446744073709551615]`);
    expect(JSON.parse(out.text).note).toBe('x: 9223372036854775807, y');
    // A run right after an escaped quote is inside its string; one after a string ending in a backslash is not.
    expect(outsideStrings(Buffer.from(String.raw`{"a":"\"1234567890123456789"}`), [[8, 27]])).toEqual([]);
    expect(outsideStrings(Buffer.from(String.raw`{"a":"\\","b":1234567890123456789}`), [[14, 33]])).toEqual([[14, 33]]);
  });

  it('a client string that looks like a mark never becomes a number', () => {
    // The client sends a string spelled like a mark; validation saw a string, so a string goes on.
    const raw = `{"model":"auto","seed":12345678901234567890,"user":"\\u0001tg99999",${MSG}}`;
    const out = routed(raw);
    expect(out.exact).toBe(false);
    expect(JSON.parse(out.text).user).toBe('\u0001tg99999');
    // …and one spelled like a mark as an object key cannot break the body either.
    const key = routed(`{"model":"auto","seed":12345678901234567890,"metadata":{"\\u0001tg1":1},${MSG}}`);
    expect(key.exact).toBe(false);
    expect(JSON.parse(key.text).metadata).toEqual({ '\u0001tg1': 1 });
  });
});

describe('the cache key sees exact integers', () => {
  const scope = { tenant: 't', namespace: '1', tier: 'weak', model: 'small-v1' };

  it('two seeds that differ only beyond 2^53 are different questions', () => {
    const a = chat(`{"seed":9223372036854775807,${MSG}}`);
    const b = chat(`{"seed":9223372036854775806,${MSG}}`);
    expect(a.json.seed).toBe(b.json.seed); // what JSON.parse alone sees
    expect(exactKey(scope, a)).not.toBe(exactKey(scope, b));
  });

  it('a body with no such integer keeps the key it always had', () => {
    const a = chat(`{"seed":7,${MSG}}`);
    expect(a.exact).toBeUndefined();
    expect(exactKey(scope, a)).toBe(exactKey(scope, { ...a, exact: { ...a.json } }));
  });
});
