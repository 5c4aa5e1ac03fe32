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

  it('answers trailers in either direction with a TrailersResponse: its header_mutation, no CommonResponse', () => {
    expect(continueResponse('request_trailers', { kind: 'continue' }, false)).toEqual({ response: 'request_trailers', request_trailers: {} });
    const set = { set: [['x-tiergate-usage', 'reported']] as Array<[string, string]> };
    expect(continueResponse('response_trailers', { kind: 'continue', headers: set }, false)).toEqual({
      response: 'response_trailers',
      response_trailers: { header_mutation: { set_headers: [{ header: { key: 'x-tiergate-usage', raw_value: Buffer.from('reported') } }] } },
    });
  });

  it('spells out every mode an override gives, and only those (an omitted body mode means NONE to Envoy)', () => {
    const all = { requestBodyMode: 'BUFFERED', responseHeaderMode: 'SKIP', responseBodyMode: 'NONE', responseTrailerMode: 'SEND' } as const;
    expect(continueResponse('request_headers', { kind: 'continue', modeOverride: all }, true).mode_override).toEqual({
      request_body_mode: 'BUFFERED',
      response_header_mode: 'SKIP',
      response_body_mode: 'NONE',
      response_trailer_mode: 'SEND',
    });
    expect(continueResponse('request_headers', { kind: 'continue', modeOverride: { responseHeaderMode: 'SKIP' } }, true).mode_override).toEqual({ response_header_mode: 'SKIP' });
  });
});

describe('immediateResponse', () => {
  it('carries status, a JSON content-type via raw_value and details without spaces', () => {
    const reply = { kind: 'reply', status: 413, headers: [['content-type', 'application/json']], body: Buffer.from('{}'), details: 'too big here' } as const;
    const r = immediateResponse(reply);
    expect(r.immediate_response?.status).toEqual({ code: 413 });
    expect(r.immediate_response?.headers?.set_headers?.[0]?.header).toEqual({ key: 'content-type', raw_value: Buffer.from('application/json') });
    expect(r.immediate_response?.details).toBe('too_big_here');
    // A run of whitespace is one underscore: details is a single token in Envoy's %RESPONSE_CODE_DETAILS%.
    expect(immediateResponse({ ...reply, details: 'budget  spent\tfor\nday' }).immediate_response?.details).toBe('budget_spent_for_day');
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
