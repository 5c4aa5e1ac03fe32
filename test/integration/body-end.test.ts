// Where a request body ends when its last message does not say end_of_stream (envoy-ext-proc.md §2.2, §2.4).
// - BUFFERED: a request with trailers (HTTP/2, or HTTP/1 with trailers enabled) gets its whole body in one
//   message with end_of_stream false, whatever the trailer mode (SRC Filter::onTrailers). That message is the
//   whole body: tiergate must decide on it, or the request would go upstream unrouted, past every limit.
// - BUFFERED_PARTIAL: a message without end_of_stream means the body outgrew Envoy's buffer and the rest passes
//   unprocessed; an LLM request tiergate cannot see whole is refused (413), not waved through.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECOMMENDED_FILTER, chatRequestHeaders, getHeader, type FilterConfig } from '../../src/dev/envoy-client.js';
import { jsonBody, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

let tg: TestTiergate;
beforeAll(async () => {
  tg = await startTiergate();
});
afterAll(async () => {
  await tg.stop();
});

const mode = (requestBodyMode: 'BUFFERED' | 'BUFFERED_PARTIAL' | 'STREAMED', requestTrailerMode: 'SKIP' | 'SEND'): FilterConfig => ({
  ...RECOMMENDED_FILTER,
  processingMode: { ...RECOMMENDED_FILTER.processingMode, requestBodyMode, requestTrailerMode },
});
const body = (content: string) => jsonBody({ model: 'auto', messages: [{ role: 'user', content }] });

describe('a BUFFERED body followed by trailers (end_of_stream false)', () => {
  it.each(['SKIP', 'SEND'] as const)('trailer mode %s: routed on that message, and counted against the limits', async (trailerMode) => {
    const t = await startTiergate({ tenants: { '*': { requestsPerMinute: 1 } } });
    try {
      const first = t.pool.open(mode('BUFFERED', trailerMode));
      await first.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'tr-1']]), false);
      const o = await first.sendRequestBody(body('Please debug this'), false);
      expect(o).toMatchObject({ kind: 'continue', clearedRouteCache: true });
      expect(getHeader(first.requestHeaders, 'x-llm-tier')).toBe('strong');
      expect(JSON.parse((o.kind === 'continue' && o.body ? o.body : Buffer.alloc(0)).toString())).toMatchObject({ model: 'strong-model' });
      if (trailerMode === 'SEND') expect((await first.sendRequestTrailers([['x-checksum', 'abc']])).kind).toBe('continue');
      first.close();
      // The tenant's one request a minute is spent: trailers are no way around the limit.
      const second = t.pool.open(mode('BUFFERED', trailerMode));
      // (Refused on its headers: the first request filled the window, which tiergate then knows is full.)
      expect(await second.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'tr-2']]), false)).toMatchObject({ kind: 'immediate', status: 429 });
      second.close();
    } finally {
      await t.stop();
    }
  });
});

describe('BUFFERED_PARTIAL', () => {
  it('a body that fit the buffer (end_of_stream true) is decided as usual', async () => {
    const s = tg.pool.open(mode('BUFFERED_PARTIAL', 'SKIP'));
    await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'bp-1']]), false);
    const o = await s.sendRequestBody(body('hi'), true);
    // (Whether Envoy applies a body answer's header changes in this mode is left open by envoy-ext-proc.md §5,
    // so only the body is checked.)
    expect(JSON.parse((o.kind === 'continue' && o.body ? o.body : Buffer.alloc(0)).toString())).toMatchObject({ model: 'weak-model' });
    s.close();
  });

  it('a body past the buffer (end_of_stream false: the rest would pass unseen) is refused with 413', async () => {
    const s = tg.pool.open(mode('BUFFERED_PARTIAL', 'SKIP'));
    await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'bp-2']]), false);
    const o = await s.sendRequestBody(Buffer.from('{"model":"auto","messages":[{"role":"user","content":"aaaa'), false);
    expect(o).toMatchObject({ kind: 'immediate', status: 413 });
    if (o.kind === 'immediate') expect(JSON.parse(o.body.toString())).toMatchObject({ error: { code: 'request_too_large' } });
    s.close();
  });
});

describe('a STREAMED body followed by trailers', () => {
  it('is refused with a 400 on the trailers, rather than reaching the backend empty (its pieces went out held back)', async () => {
    const s = tg.pool.open(mode('STREAMED', 'SEND'));
    await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'st-trailers']]), false);
    const whole = body('hi');
    const pieces = [whole.subarray(0, 10), whole.subarray(10)];
    const answers = await Promise.all(pieces.map((p) => s.sendRequestBody(p, false)));
    for (const a of answers) expect(a).toMatchObject({ kind: 'continue', body: Buffer.alloc(0) });
    const t = await s.sendRequestTrailers([['x-checksum', 'abc']]);
    expect(t).toMatchObject({ kind: 'immediate', status: 400 });
    s.close();
  });
});
