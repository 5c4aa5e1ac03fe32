import { describe, expect, it } from 'vitest';
import { continueResponse, encodeDynamicMetadata, immediateResponse } from '../../src/extproc/responses.js';
import { vendoredRoot } from '../helpers/proto-root.js';

describe('continueResponse', () => {
  it('adds an empty header_mutation when clearing the route cache (Envoy ignores the bit without one)', () => {
    const r = continueResponse('request_body', { kind: 'continue', clearRouteCache: true }, false);
    expect(r).toEqual({ response: 'request_body', request_body: { response: { header_mutation: {}, clear_route_cache: true } } });
  });

  it('never sets clear_route_cache in the response direction', () => {
    const r = continueResponse('response_headers', { kind: 'continue', clearRouteCache: true }, false);
    expect(r.response_headers?.response?.clear_route_cache).toBeUndefined();
  });

  it.each([
    ['request_headers', true, true],
    ['response_headers', true, true],
    ['request_body', true, false],
    ['request_headers', false, false],
  ] as const)('mode_override on %s with allow=%s → sent=%s', (kind, allow, sent) => {
    const r = continueResponse(kind, { kind: 'continue', modeOverride: { requestBodyMode: 'NONE', responseBodyMode: 'STREAMED' } }, allow);
    expect(r.mode_override !== undefined).toBe(sent);
    if (sent) expect(r.mode_override).toEqual({ request_body_mode: 'NONE', response_body_mode: 'STREAMED' });
  });

  it('uses CONTINUE_AND_REPLACE for a body in a headers answer, plain CONTINUE for a body answer', () => {
    const b = Buffer.from('x');
    expect(continueResponse('request_headers', { kind: 'continue', body: b }, false).request_headers?.response?.status).toBe('CONTINUE_AND_REPLACE');
    expect(continueResponse('request_body', { kind: 'continue', body: b }, false).request_body?.response).toEqual({ body_mutation: { body: b } });
  });

  it('answers trailers with a TrailersResponse', () => {
    expect(continueResponse('request_trailers', { kind: 'continue' }, false)).toEqual({ response: 'request_trailers', request_trailers: {} });
  });
});

describe('immediateResponse', () => {
  it('carries status, a JSON content-type via raw_value and details without spaces', () => {
    const r = immediateResponse({ kind: 'reply', status: 413, headers: [['content-type', 'application/json']], body: Buffer.from('{}'), details: 'too big here' });
    expect(r.immediate_response?.status).toEqual({ code: 413 });
    expect(r.immediate_response?.headers?.set_headers?.[0]?.header).toEqual({ key: 'content-type', raw_value: Buffer.from('application/json') });
    expect(r.immediate_response?.details).toBe('too_big_here');
  });
});

describe('dynamic metadata', () => {
  it('survives protobuf encoding (camelCase Struct fields; snake_case would be dropped)', () => {
    const T = vendoredRoot().lookupType('envoy.service.ext_proc.v3.ProcessingResponse');
    const obj = continueResponse('response_body', { kind: 'continue', dynamicMetadata: { tiergate: { tier: 'strong', total_tokens: 42, cache_hit: false } } }, false);
    const decoded = T.toObject(T.decode(T.encode(T.fromObject(obj)).finish()));
    expect(decoded.dynamic_metadata.fields.tiergate.structValue.fields).toEqual({
      tier: { stringValue: 'strong' },
      total_tokens: { numberValue: 42 },
      cache_hit: { boolValue: false },
    });
    // The trap the encoder avoids: snake_case Struct keys encode to nothing.
    const wrong = { response: 'response_body', response_body: {}, dynamic_metadata: { fields: { tiergate: { struct_value: { fields: { tier: { string_value: 'x' } } } } } } };
    const lost = T.toObject(T.decode(T.encode(T.fromObject(wrong)).finish()));
    expect(lost.dynamic_metadata.fields.tiergate.structValue).toBeUndefined();
    expect(encodeDynamicMetadata({ ns: { a: 'b' } })).toEqual({ fields: { ns: { structValue: { fields: { a: { stringValue: 'b' } } } } } });
  });
});
