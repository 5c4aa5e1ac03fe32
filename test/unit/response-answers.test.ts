// The response-side answers: routing facts as response headers, the body mode tiergate asks for when Envoy
// allows mode_override (SSE streamed without content-length, JSON buffered), and usage on the final answer.
import { describe, expect, it } from 'vitest';
import type { TierRuntime } from '../../src/config/runtime.js';
import { METADATA_NAMESPACE, finalAnswer, responseHeadersAnswer, withBody } from '../../src/pipeline/response-answers.js';

const weak = { name: 'weak', model: 'weak-model' } as TierRuntime;
const facts = { tier: weak, limitHeaders: [['x-ratelimit-remaining-requests', '9'] as const], cacheStatus: 'miss', requestId: 'req-1' };

describe('response answers', () => {
  it('sets tier, resolved model, limit headers, cache status and request id, in that order', () => {
    const { decision } = responseHeadersAnswer(facts, 'json', false, false, true);
    expect(decision.kind).toBe('continue');
    expect(decision.headers?.set).toEqual([['x-llm-tier', 'weak'], ['x-gateway-model-resolved', 'weak-model'], ['x-ratelimit-remaining-requests', '9'], ['x-cache', 'miss'], ['x-request-id', 'req-1']]);
    expect(decision.modeOverride).toBeUndefined();
  });

  it('sets nothing when nothing was routed', () => {
    expect(responseHeadersAnswer({ tier: undefined, limitHeaders: undefined, cacheStatus: undefined, requestId: undefined }, 'other', false, false, true)).toEqual({ decision: { kind: 'continue' }, buffered: false });
  });

  it.each([
    ['sse', true, false, true, 'STREAMED', false, true],
    ['json', true, false, true, 'BUFFERED', true, false],
    ['other', true, false, true, 'BUFFERED', true, false],
    // An answer of unbounded size (an embeddings batch) is never asked for whole: over Envoy's buffer it would be a 500.
    ['json', true, false, false, 'STREAMED', false, false],
    ['other', true, true, false, 'STREAMED', false, false],
    ['sse', false, true, true, undefined, true, false],
    ['json', false, false, true, undefined, false, false],
  ] as const)('%s body, override allowed %s, configured buffered %s, may buffer %s: mode %s, buffered %s, content-length removed %s', (kind, override, configured, mayBuffer, mode, buffered, removesLength) => {
    const a = responseHeadersAnswer(facts, kind, override, configured, mayBuffer);
    expect(a.decision.modeOverride?.responseBodyMode).toBe(mode);
    expect(a.buffered).toBe(buffered);
    expect(a.decision.headers?.remove?.includes('content-length') ?? false).toBe(removesLength);
  });

  it('the final answer carries usage as dynamic metadata, and the total as a header only for a buffered body', () => {
    const usage = { input_tokens: 3, output_tokens: 4, total_tokens: 7, usage_source: 'reported' };
    expect(finalAnswer(usage, true)).toEqual({ kind: 'continue', dynamicMetadata: { [METADATA_NAMESPACE]: usage }, headers: { set: [['x-usage-total-tokens', '7']] } });
    expect(finalAnswer(usage, false).headers).toBeUndefined();
    // A response with no usage at all (an error page): no total to give, so no header, rather than "undefined".
    const none = { usage_source: 'none' };
    expect(finalAnswer(none, true)).toEqual({ kind: 'continue', dynamicMetadata: { [METADATA_NAMESPACE]: none } });
  });

  it("a replaced buffered body sets its own content-length beside the answer's headers; a streamed chunk sets none", () => {
    const body = Buffer.from('{"ok":true}');
    expect(withBody({ kind: 'continue' }, body, true)).toEqual({ kind: 'continue', body, headers: { set: [['content-length', '11']] } });
    const withHeaders = { kind: 'continue' as const, headers: { set: [['x-usage-total-tokens', '7'] as const], remove: ['etag'] } };
    expect(withBody(withHeaders, body, true).headers).toEqual({ set: [['x-usage-total-tokens', '7'], ['content-length', '11']], remove: ['etag'] });
    expect(withBody(withHeaders, body, false)).toEqual({ ...withHeaders, body });
    expect(withBody({ kind: 'continue' }, body, false)).toEqual({ kind: 'continue', body });
  });
});
