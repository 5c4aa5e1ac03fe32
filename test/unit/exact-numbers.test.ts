import { describe, expect, it } from 'vitest';
import { isLosslessNumber } from 'lossless-json';
import { exactKey } from '../../src/cache/request-key.js';
import { exactOr, exactView, mayHoldLongInteger } from '../../src/llm/exact-numbers.js';
import { parseLlmRequest } from '../../src/llm/parse-request.js';

const view = (raw: string) => exactView(Buffer.from(raw), raw);
const chat = (raw: string) => parseLlmRequest('chat', Buffer.from(raw));
const MSG = '"messages":[{"role":"user","content":"hi"}]';

describe('exactView: integers JSON.parse would round', () => {
  it('is undefined for a body without them, and for digit runs that are not numbers beyond 2^53', () => {
    expect(view(`{"model":"auto","seed":42,${MSG}}`)).toBeUndefined();
    // 16 digits, but below 2^53: JSON.parse keeps it exactly.
    expect(view(`{"seed":1000000000000000,${MSG}}`)).toBeUndefined();
    // Long digit runs inside strings: the cheap test may fire ("id:" looks like a value start), the parse finds nothing.
    expect(view('{"messages":[{"role":"user","content":"card 12345678901234567890, id:12345678901234567890"}]}')).toBeUndefined();
    // Invalid JSON: JSON.parse's view (or its 400) is all there is.
    expect(view('{"seed":12345678901234567890,')).toBeUndefined();
  });

  it('keeps each unsafe integer as its source text, at any depth; safe numbers stay numbers', () => {
    const v = view(`{"seed":9223372036854775807,"metadata":{"ids":[-12345678901234567890,7]},"t":0.5,${MSG}}`);
    expect(v).toBeDefined();
    const seed = v?.seed;
    expect(isLosslessNumber(seed) && seed.toString()).toBe('9223372036854775807');
    const ids = (v?.metadata as { ids: unknown[] }).ids;
    expect(isLosslessNumber(ids[0]) && ids[0].toString()).toBe('-12345678901234567890');
    expect(ids[1]).toBe(7);
    expect(v?.t).toBe(0.5);
  });

  it('reads duplicate keys as JSON.parse does (the last one wins), so the body sent is the body validated', () => {
    const r = chat('{"messages":[{"role":"user","content":"first"}],"seed":12345678901234567890,"messages":[{"role":"user","content":"last"}]}');
    expect(r.messages[0]?.content).toBe('last');
    expect((r.exact?.messages as Array<{ content: string }>)[0]?.content).toBe('last');
  });
});

describe('mayHoldLongInteger: the cheap test on every body', () => {
  // What it must answer, said plainly; the scan looks at every 16th character only, so compare them widely.
  const reference = /[:[,][ \t\n\r]*-?[0-9]{16}/;

  it('finds a 16-digit run where a value starts, wherever it lies, and nothing else', () => {
    for (const s of ['{"a":1234567890123456}', '[1234567890123456]', '{"a": -1234567890123456}', '{"a":[1,\n\t 12345678901234567890]}', '{"시드":12345678901234567890}']) {
      for (let pad = 0; pad < 20; pad++) expect(mayHoldLongInteger(Buffer.from(' '.repeat(pad) + s)), `${pad} ${s}`).toBe(true);
    }
    for (const s of ['{"a":123456789012345}', '{"a":"1234567890123456"}', '{"a":"x 1234567890123456"}', '{"a":1.234567890123456}', '{"a":"번호 1234567890123456789"}', '']) {
      for (let pad = 0; pad < 20; pad++) expect(mayHoldLongInteger(Buffer.from(' '.repeat(pad) + s)), `${pad} ${s}`).toBe(false);
    }
  });

  it('agrees with the regular expression on 20,000 random texts', () => {
    const alphabet = '0123456789000000000011111:[,- \n"ab';
    let seed = 12345;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    let positives = 0;
    for (let t = 0; t < 20_000; t++) {
      let s = '';
      const len = rand(120);
      for (let i = 0; i < len; i++) s += alphabet[rand(alphabet.length)];
      const want = reference.test(s);
      positives += want ? 1 : 0;
      expect(mayHoldLongInteger(Buffer.from(s)), JSON.stringify(s)).toBe(want);
    }
    expect(positives).toBeGreaterThan(100); // the random texts do exercise both answers
  });
});

describe('exactOr', () => {
  const lossy = (o: Record<string, unknown>) => JSON.stringify(o);

  it('returns the exact text when it differs from the lossy body only in the rounded digits', () => {
    const r = chat(`{"model":"auto","seed":12345678901234567890,${MSG}}`);
    const out = exactOr(lossy({ ...r.json, model: 'm' }), { ...(r.exact as Record<string, unknown>), model: 'm' });
    expect(out).toEqual({ exact: true, text: `{"model":"m","seed":12345678901234567890,${MSG}}` });
  });

  it('falls back to the lossy body when the exact reading says anything else', () => {
    const r = chat(`{"model":"auto","seed":12345678901234567890,${MSG}}`);
    const tampered = { ...(r.exact as Record<string, unknown>), model: 'm', messages: [{ role: 'user', content: 'something else' }] };
    const body = lossy({ ...r.json, model: 'm' });
    expect(exactOr(body, tampered)).toEqual({ exact: false, text: body });
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
