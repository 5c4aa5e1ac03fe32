// The FULL_DUPLEX_STREAMED answers (src/extproc/duplex.ts) on their own, read back from the bytes Envoy gets:
// which request-headers answers are held for the body, what the released headers answer carries, and where
// end_of_stream and mode_override may appear. The integration suite (full-duplex) drives the same through the
// whole service; these pin the merge and the edge cases it does not reach.
import { describe, expect, it } from 'vitest';
import { DuplexShaper } from '../../src/extproc/duplex.js';
import { extProcServiceDefinition } from '../../src/extproc/protos.js';
import { CONTINUE, type ContinueDecision } from '../../src/extproc/types.js';
import type { Answer, WireProcessingRequest, WireProcessingResponse } from '../../src/extproc/wire.js';

const deserialize = (extProcServiceDefinition().Process as unknown as { responseDeserialize: (b: Buffer) => WireProcessingResponse }).responseDeserialize;
const read = (answers: Answer[]) => answers.map((a) => (Buffer.isBuffer(a) ? deserialize(a) : a));
const msg = (m: WireProcessingRequest) => m;
const body = (text: string, eos: boolean) => msg({ request_body: { body: Buffer.from(text), end_of_stream: eos } });
/** The header mutation of a request-headers answer, as Envoy reads it. */
const mutation = (a: WireProcessingResponse | undefined) => {
  const m = a?.request_headers?.response?.header_mutation;
  return { set: (m?.set_headers ?? []).map((h) => [h.header?.key, Buffer.from(h.header?.raw_value ?? []).toString()]), remove: m?.remove_headers ?? [] };
};
const routed: ContinueDecision = { kind: 'continue', awaitBody: true, headers: { set: [['x-tenant', 't1']] }, dynamicMetadata: { tiergate: { tenant: 't1' } } };

describe('the held request-headers answer', () => {
  it('a request whose headers end it is answered at once, even for a decision that awaits a body that will not come', () => {
    const s = new DuplexShaper(true, false);
    const now = read(s.answers('request_headers', routed, msg({ request_headers: { end_of_stream: true } })));
    expect(now).toHaveLength(1);
    expect(mutation(now[0])).toEqual({ set: [['x-tenant', 't1']], remove: [] });
    // Envoy's own encoding leaves a false end_of_stream out; written out, it means the same: the body follows.
    expect(new DuplexShaper(true, false).answers('request_headers', routed, msg({ request_headers: { end_of_stream: false } }))).toEqual([]);
  });

  it('released with the body: both decisions’ header changes, exactly; the headers decision’s metadata on it, the body’s on the body', () => {
    const s = new DuplexShaper(true, false);
    expect(s.answers('request_headers', routed, msg({ request_headers: {} }))).toEqual([]);
    expect(s.answers('request_body', CONTINUE, body('{"mo', false))).toEqual([]);
    const bodyDecision: ContinueDecision = { kind: 'continue', headers: { remove: ['x-llm-tier'] }, dynamicMetadata: { tiergate: { tier: 'weak' } } };
    const [headers, streamed, ...rest] = read(s.answers('request_body', bodyDecision, body('del":1}', true)));
    expect(rest).toEqual([]);
    // Neither side's missing list turns into an entry of the other's.
    expect(mutation(headers)).toEqual({ set: [['x-tenant', 't1']], remove: ['x-llm-tier'] });
    expect(headers?.dynamic_metadata?.fields?.tiergate?.structValue?.fields?.tenant?.stringValue).toBe('t1');
    expect(headers?.mode_override).toBeUndefined();
    // Neither decision asked for the route to be matched again.
    expect(headers?.request_headers?.response?.clear_route_cache ?? false).toBe(false);
    const sr = streamed?.request_body?.response?.body_mutation?.streamed_response;
    expect([Buffer.from(sr?.body ?? []).toString(), sr?.end_of_stream]).toEqual(['{"model":1}', true]);
    expect(streamed?.dynamic_metadata?.fields?.tiergate?.structValue?.fields?.tier?.stringValue).toBe('weak');
  });

  it('clears the route cache when either decision asked, and only then; a held decision with no header changes adds none', () => {
    for (const [held, bodyAsks] of [
      [true, false],
      [false, true],
    ]) {
      const s = new DuplexShaper(true, false);
      s.answers('request_headers', { kind: 'continue', awaitBody: true, clearRouteCache: held }, msg({ request_headers: {} }));
      const [headers] = read(s.answers('request_body', { kind: 'continue', headers: { set: [['x-llm-tier', 'weak']] }, clearRouteCache: bodyAsks }, body('{}', true)));
      expect(headers?.request_headers?.response?.clear_route_cache, `held ${held}, body ${bodyAsks}`).toBe(true);
      expect(mutation(headers)).toEqual({ set: [['x-llm-tier', 'weak']], remove: [] });
    }
  });

  it('a body that ends with trailers: the body answer does not end the stream, and the trailers go on unchanged after it', () => {
    const s = new DuplexShaper(true, false);
    s.answers('request_headers', routed, msg({ request_headers: {} }));
    s.answers('request_body', CONTINUE, body('{}', false));
    const trailersDecision: ContinueDecision = { kind: 'continue', headers: { set: [['x-llm-tier', 'strong']] } };
    const out = read(s.answers('request_trailers', trailersDecision, msg({ request_trailers: {} })));
    expect(out.map((a) => a.response)).toEqual(['request_headers', 'request_body', 'request_trailers']);
    expect(mutation(out[0])).toEqual({ set: [['x-tenant', 't1'], ['x-llm-tier', 'strong']], remove: [] });
    expect(out[1]?.request_body?.response?.body_mutation?.streamed_response?.end_of_stream).toBe(false);
    expect(out[2]?.request_trailers?.header_mutation).toBeUndefined();
  });

  it('trailers with nothing held (the headers went on at once): one trailers answer, with the decision', () => {
    const s = new DuplexShaper(true, false);
    expect(read(s.answers('request_headers', { kind: 'continue' }, msg({ request_headers: {} })))).toHaveLength(1);
    const out = read(s.answers('request_trailers', { kind: 'continue', headers: { remove: ['x-debug'] } }, msg({ request_trailers: {} })));
    expect(out).toHaveLength(1);
    expect(out[0]?.request_trailers?.header_mutation?.remove_headers).toEqual(['x-debug']);
  });
});

describe('answers that are not held', () => {
  it('never a mode_override, on any headers answer, whatever the decision asks (Envoy ignores it with a duplex direction, §10)', () => {
    const wants: ContinueDecision = { kind: 'continue', headers: { set: [['x-a', '1']] }, modeOverride: { responseBodyMode: 'STREAMED' } };
    const s = new DuplexShaper(false, true);
    for (const kind of ['request_headers', 'response_headers'] as const) {
      const [a] = read(s.answers(kind, wants, msg({ [kind]: {} })));
      expect(a?.response, kind).toBe(kind);
      expect(a?.mode_override, kind).toBeUndefined();
    }
  });

  it('a response chunk goes on as it came, or as the decision replaced it, with its own end_of_stream', () => {
    const s = new DuplexShaper(false, true);
    const chunk = (text: string, eos: boolean) => msg({ response_body: { body: Buffer.from(text), end_of_stream: eos } });
    const [same] = read(s.answers('response_body', CONTINUE, chunk('data: 1\n\n', false)));
    expect(Buffer.from(same?.response_body?.response?.body_mutation?.streamed_response?.body ?? []).toString()).toBe('data: 1\n\n');
    const [replaced] = read(s.answers('response_body', { kind: 'continue', body: Buffer.alloc(0) }, chunk('data: {"usage":{}}\n\n', true)));
    const sr = replaced?.response_body?.response?.body_mutation?.streamed_response;
    expect([Buffer.from(sr?.body ?? []).length, sr?.end_of_stream]).toEqual([0, true]);
    expect([s.covers('response_body'), s.covers('request_body')]).toEqual([true, false]);
  });
});
