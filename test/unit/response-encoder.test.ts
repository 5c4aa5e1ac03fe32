// The server's answer encoder skips proto-loader's fromObject copy; what goes on the wire must not change.
import { describe, expect, it } from 'vitest';
import { extProcServiceDefinition } from '../../src/extproc/protos.js';
import { extProcServerDefinition } from '../../src/extproc/response-encoder.js';
import { continueResponse, immediateResponse } from '../../src/extproc/responses.js';
import type { ContinueDecision } from '../../src/extproc/types.js';
import type { RequestKind, WireProcessingResponse } from '../../src/extproc/wire.js';

const stock = extProcServiceDefinition().Process as unknown as { responseSerialize: (r: WireProcessingResponse) => Buffer; responseDeserialize: (b: Buffer) => unknown };
const ours = extProcServerDefinition().Process as unknown as { responseSerialize: (r: WireProcessingResponse) => Buffer };

const KINDS: RequestKind[] = ['request_headers', 'request_body', 'request_trailers', 'response_headers', 'response_body', 'response_trailers'];
const body = Buffer.from(JSON.stringify({ model: 'weak-model', messages: [{ role: 'user', content: 'héllo 🙂' }] }));
const DECISIONS: Array<[string, ContinueDecision]> = [
  ['plain continue', { kind: 'continue' }],
  ['headers set and removed', { kind: 'continue', headers: { set: [['x-llm-tier', 'weak'], ['x-llm-model', 'modèle-ü'], ['content-length', '42']], remove: ['authorization', 'X-Tenant-Id'] } }],
  ['route cache cleared', { kind: 'continue', clearRouteCache: true }],
  ['body replaced', { kind: 'continue', body, clearRouteCache: true, headers: { set: [['content-length', String(body.length)]] } }],
  ['empty body', { kind: 'continue', body: Buffer.alloc(0) }],
  ['dynamic metadata', { kind: 'continue', dynamicMetadata: { tiergate: { tier: 'strong', total_tokens: 160, cost_usd: 0.000123, cache_hit: false, negative: -1.5 } }, headers: { set: [['x-usage-total-tokens', '160']] } }],
  ['mode override', { kind: 'continue', modeOverride: { requestBodyMode: 'NONE', responseHeaderMode: 'SKIP', responseBodyMode: 'STREAMED' } }],
];

describe('response encoder', () => {
  const cases: Array<readonly [string, WireProcessingResponse]> = KINDS.flatMap((kind) => DECISIONS.map(([name, d]) => [`${kind}: ${name}`, continueResponse(kind, d, true)] as const));
  cases.push(['immediate response', immediateResponse({ kind: 'reply', status: 429, headers: [['content-type', 'application/json'], ['retry-after', '3']], body: Buffer.from('{"error":{}}'), details: 'rate limited' })]);
  cases.push(['immediate response, unnamed status', immediateResponse({ kind: 'reply', status: 499, headers: [], body: Buffer.alloc(0), details: 'x' })]);

  it('covers the CONTINUE_AND_REPLACE status and a mode override among the cases', () => {
    expect(cases.some(([, r]) => r.request_headers?.response?.status === 'CONTINUE_AND_REPLACE')).toBe(true);
    expect(cases.some(([, r]) => r.mode_override !== undefined)).toBe(true);
  });

  it.each(cases)('%s: the same bytes as proto-loader, and the answer object untouched', (_name, answer) => {
    const expected = stock.responseSerialize(answer);
    const status = answer.request_headers?.response?.status;
    const bytes = ours.responseSerialize(answer);
    expect(Buffer.compare(bytes, expected)).toBe(0);
    // Untouched: the stock encoder still reads the same message from it, and the status is still a name.
    expect(Buffer.compare(stock.responseSerialize(answer), expected)).toBe(0);
    expect(answer.request_headers?.response?.status).toBe(status);
  });
});
