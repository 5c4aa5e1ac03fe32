// The answer writer puts continue answers on the wire without protobufjs; its bytes must be exactly what
// proto-loader makes of the same decision through continueResponse(), for every kind and decision shape.
import { describe, expect, it } from 'vitest';
import { createAnswerWriter } from '../../src/extproc/answer-writer.js';
import { extProcServiceDefinition, vendoredRoot } from '../../src/extproc/protos.js';
import { continueAnswer, extProcServerDefinition } from '../../src/extproc/response-encoder.js';
import { continueResponse } from '../../src/extproc/responses.js';
import type { ContinueDecision } from '../../src/extproc/types.js';
import type { RequestKind, WireProcessingResponse } from '../../src/extproc/wire.js';

const stock = extProcServiceDefinition().Process as unknown as {
  responseSerialize: (r: WireProcessingResponse) => Buffer;
  responseDeserialize: (b: Buffer) => WireProcessingResponse;
};
const write = createAnswerWriter(vendoredRoot());
const COMMON: RequestKind[] = ['request_headers', 'request_body', 'response_headers', 'response_body'];
const expected = (kind: RequestKind, d: ContinueDecision, allow = false) => stock.responseSerialize(continueResponse(kind, d, allow));

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const body = Buffer.from(JSON.stringify({ model: 'weak-model', messages: [{ role: 'user', content: 'héllo 🙂' }] }));
const DECISIONS: Array<[string, ContinueDecision]> = [
  ['plain continue', { kind: 'continue' }],
  ['headers set and removed', { kind: 'continue', headers: { set: [['x-llm-tier', 'weak'], ['x-llm-model', 'modèle-ü 🙂'], ['content-length', '42']], remove: ['authorization', 'X-Tenant-Id'] } }],
  ['empty set and remove lists', { kind: 'continue', headers: { set: [], remove: [] } }],
  ['route cache cleared alone', { kind: 'continue', clearRouteCache: true }],
  ['route cache cleared with headers', { kind: 'continue', clearRouteCache: true, headers: { set: [['x-llm-tier', 'strong']] } }],
  ['body replaced', { kind: 'continue', body, clearRouteCache: true, headers: { set: [['content-length', String(body.length)]] } }],
  ['empty body', { kind: 'continue', body: Buffer.alloc(0) }],
  ['body larger than the scratch buffer', { kind: 'continue', body: Buffer.alloc(60_000, 0x61), headers: { set: [['content-length', '60000']] } }],
  // The metadata is written first (the writer goes backwards), so the body's room is made with bytes already in
  // the buffer, which must move with it: a usage-carrying last chunk whose body is rewritten.
  ['body larger than the scratch buffer, after metadata', { kind: 'continue', body: Buffer.alloc(40_000, 0x63), dynamicMetadata: { tiergate: { tier: 'strong', total_tokens: 160 } } }],
  ['many headers, more than the scratch buffer', { kind: 'continue', headers: { set: Array.from({ length: 300 }, (_, i) => [`x-h${i}`, 'v'.repeat(100)] as const) } }],
  ['empty header value', { kind: 'continue', headers: { set: [['x-empty', '']] } }],
  [
    'dynamic metadata',
    { kind: 'continue', dynamicMetadata: { tiergate: { tier: 'strong', total_tokens: 160, cost_usd: 0.000123, cache_hit: false, hit: true, negative: -1.5, zero: 0, empty: '', nan: Number.NaN, big: 2 ** 60 } }, headers: { set: [['x-usage-total-tokens', '160']] } },
  ],
  ['two metadata namespaces, one empty', { kind: 'continue', dynamicMetadata: { a: { x: 'é' }, b: {} } }],
  ['mode override not allowed', { kind: 'continue', modeOverride: { responseBodyMode: 'STREAMED' } }],
];

describe('answer writer', () => {
  const cases = COMMON.flatMap((kind) => DECISIONS.map(([name, d]) => [`${kind}: ${name}`, kind, d] as const));

  it.each(cases)('%s: the bytes proto-loader writes for continueResponse()', (_name, kind, d) => {
    const bytes = write(kind, d, false);
    expect(bytes).toBeInstanceOf(Buffer);
    expect(Buffer.compare(bytes as Buffer, expected(kind, d))).toBe(0);
  });

  it('covers the CONTINUE_AND_REPLACE status and clear_route_cache among the cases', () => {
    const decoded = cases.map(([, kind, d]) => stock.responseDeserialize(write(kind, d, false) as Buffer));
    expect(decoded.some((r) => r.request_headers?.response?.status === 'CONTINUE_AND_REPLACE')).toBe(true);
    expect(decoded.some((r) => r.request_body?.response?.clear_route_cache === true)).toBe(true);
    expect(decoded.some((r) => r.dynamic_metadata?.fields?.tiergate?.structValue?.fields?.cost_usd?.numberValue === 0.000123)).toBe(true);
  });

  it('matches on many generated decisions', () => {
    // A small deterministic generator (no seed library needed): header lists, bodies and metadata of varying size.
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      // The high bits: an LCG's low bits repeat with a short period (the lowest alternates), which would tie
      // together the choices made one after another.
      return Math.floor((seed / 2 ** 31) * n);
    };
    const word = () => ['weak', 'strong', 'x', 'é', '🙂', '', 'a'.repeat(rand(300))][rand(7)] as string;
    for (let i = 0; i < 400; i++) {
      const kind = COMMON[rand(4)] as RequestKind;
      const d: ContinueDecision = { kind: 'continue' };
      if (rand(2)) d.headers = { set: Array.from({ length: rand(6) }, (_, j) => [`x-h${j}`, word()] as const), remove: Array.from({ length: rand(3) }, (_, j) => `X-R${j}`) };
      if (rand(2)) d.body = Buffer.alloc(rand(3) === 0 ? rand(64 * 1024) : rand(200), 0x62);
      if (rand(2)) d.clearRouteCache = rand(2) === 1;
      if (rand(3) === 0) d.dynamicMetadata = { tiergate: Object.fromEntries(Array.from({ length: rand(5) }, (_, j) => [`k${j}${word()}`, [word(), rand(1000) / 7, rand(2) === 1][rand(3)] as string | number | boolean])) };
      expect(Buffer.compare(write(kind, d, false) as Buffer, expected(kind, d)), JSON.stringify({ kind, d: { ...d, body: d.body?.length } })).toBe(0);
    }
  });

  it('matches on bodies whose lengths sit at the varint size boundaries (1, 2 and 3 bytes)', () => {
    // The enclosing messages' lengths are a few bytes more than the body's: the ranges cover theirs too.
    const lengths = [0, 1, ...range(120, 132), ...range(16_370, 16_390)];
    for (const kind of COMMON) {
      for (const n of lengths) {
        const d: ContinueDecision = { kind: 'continue', body: Buffer.alloc(n, 0x64), dynamicMetadata: n % 2 ? { tiergate: { tier: 'weak' } } : undefined };
        expect(Buffer.compare(write(kind, d, false) as Buffer, expected(kind, d)), `${kind}, ${n} bytes`).toBe(0);
      }
    }
  });

  it('refuses to be built over protos whose fields are not the ones it writes', () => {
    const P = 'envoy.service.ext_proc.v3.';
    const field = (root: ReturnType<typeof vendoredRoot>, type: string, name: string) => root.lookupType(type).fields[name] as unknown as Record<string, unknown>;
    const changed: Array<[string, (root: ReturnType<typeof vendoredRoot>) => void]> = [
      ['a missing field', (r) => void r.lookupType('envoy.config.core.v3.HeaderValue').remove(r.lookupType('envoy.config.core.v3.HeaderValue').fields.raw_value!)],
      ['a scalar of another type', (r) => void (field(r, 'envoy.config.core.v3.HeaderValue', 'raw_value').type = 'string')],
      ['a message of another type', (r) => void (field(r, `${P}ProcessingResponse`, 'request_body').resolvedType = r.lookupType(`${P}HeadersResponse`))],
      ['a repeated field made single', (r) => void (field(r, `${P}HeaderMutation`, 'set_headers').repeated = false)],
      ['a single field made repeated', (r) => void (field(r, `${P}CommonResponse`, 'clear_route_cache').repeated = true)],
      ['a field made a map', (r) => void (field(r, `${P}CommonResponse`, 'clear_route_cache').map = true)],
      ['a number past 15 (a two-byte tag)', (r) => void (field(r, `${P}CommonResponse`, 'clear_route_cache').id = 16)],
      ['Struct.fields not a map', (r) => void (field(r, 'google.protobuf.Struct', 'fields').map = false)],
      ['Struct.fields a map of something else', (r) => void (field(r, 'google.protobuf.Struct', 'fields').resolvedType = r.lookupType('google.protobuf.ListValue'))],
      ['Struct.fields numbered past 15', (r) => void (field(r, 'google.protobuf.Struct', 'fields').id = 16)],
      ['no CONTINUE_AND_REPLACE status', (r) => void r.lookupEnum(`${P}CommonResponse.ResponseStatus`).remove('CONTINUE_AND_REPLACE')],
    ];
    for (const [what, change] of changed) {
      const root = vendoredRoot();
      expect(() => createAnswerWriter(root), 'the stock protos').not.toThrow();
      change(root);
      expect(() => createAnswerWriter(root), what).toThrow(/is not a|has no CONTINUE_AND_REPLACE/);
    }
  });

  it('leaves a body over 64 KiB to protobufjs, which copies it once', () => {
    const big: ContinueDecision = { kind: 'continue', body: Buffer.alloc(64 * 1024 + 1) };
    expect(write('request_body', big, false)).toBeUndefined();
    const answer = continueAnswer('request_body', big, false) as WireProcessingResponse;
    expect(answer.request_body?.response?.body_mutation?.body?.length).toBe(64 * 1024 + 1);
  });

  it('leaves trailers answers and an allowed mode override to the general path', () => {
    expect(write('request_trailers', { kind: 'continue', headers: { set: [['x-a', 'b']] } }, false)).toBeUndefined();
    expect(write('response_trailers', { kind: 'continue' }, false)).toBeUndefined();
    expect(write('response_headers', { kind: 'continue', modeOverride: { responseBodyMode: 'BUFFERED' } }, true)).toBeUndefined();
    // Allowed but not on a headers answer: nothing to override, so the writer takes it (and drops it, as continueResponse does).
    const d: ContinueDecision = { kind: 'continue', modeOverride: { responseBodyMode: 'BUFFERED' } };
    expect((write('response_body', d, true) as Buffer).toString('hex')).toBe(expected('response_body', d, true).toString('hex'));
  });

  it('refuses a bad header name or value as the general path does, and the next answer is whole', () => {
    expect(() => write('request_body', { kind: 'continue', headers: { set: [['bad name', 'v']] } }, false)).toThrow(/invalid header name/);
    expect(() => write('request_body', { kind: 'continue', headers: { set: [['x-a', 'v\r\nx-injected: 1']] } }, false)).toThrow(/invalid value/);
    const d: ContinueDecision = { kind: 'continue', headers: { set: [['x-llm-tier', 'weak']] } };
    expect((write('request_body', d, false) as Buffer).toString('hex')).toBe(expected('request_body', d).toString('hex'));
  });

  it('returns its own copy: a later answer does not change an earlier one', () => {
    const first = write('request_body', { kind: 'continue', body: Buffer.from('first') }, false) as Buffer;
    const copy = Buffer.from(first);
    write('request_body', { kind: 'continue', body: Buffer.from('second!') }, false);
    expect(first.equals(copy)).toBe(true);
  });

  it('is what the transport sends, and the server serializer passes its bytes through', () => {
    const d: ContinueDecision = { kind: 'continue', headers: { set: [['x-llm-tier', 'weak']] } };
    const answer = continueAnswer('response_headers', d, false);
    expect(answer).toBeInstanceOf(Buffer);
    const serialize = (extProcServerDefinition().Process as unknown as { responseSerialize: (a: unknown) => Buffer }).responseSerialize;
    expect(serialize(answer).equals(answer as Buffer)).toBe(true);
    // A decision the writer leaves alone comes back as the object, which the serializer encodes.
    const trailers = continueAnswer('response_trailers', d, false);
    expect(Buffer.isBuffer(trailers)).toBe(false);
    expect(serialize(trailers).equals(stock.responseSerialize(trailers as WireProcessingResponse))).toBe(true);
  });
});
