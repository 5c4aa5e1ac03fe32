// Where a request body ends when its last message does not say end_of_stream (envoy-ext-proc.md §2.2, §2.4).
// - BUFFERED: a request with trailers (HTTP/2, or HTTP/1 with trailers enabled) gets its whole body in one
//   message with end_of_stream false, whatever the trailer mode (SRC Filter::onTrailers). That message is the
//   whole body: tiergate must decide on it, or the request would go upstream unrouted, past every limit.
// - BUFFERED_PARTIAL: a message without end_of_stream means the body outgrew Envoy's buffer and the rest passes
//   unprocessed; an LLM request tiergate cannot see whole is refused (413), not waved through.
// - NONE (a filter or a route's processing_mode without request_body_mode: Envoy's default, and kgateway's): no
//   body ever comes. Envoy 1.34+ says so in protocol_config, and the request is refused (500) on its headers; an
//   older Envoy does not, and the request is only counted and logged when its answer comes. A response body mode
//   NONE leaves the answer's usage unmeasured: counted, and the row says what the status says, not "cancelled".
// - Request header mode SKIP (§2.2): the body, or the trailers, come first. tiergate knows neither caller nor
//   path, so the request is refused (500) on that first message rather than passed on unchecked.
// - STREAMED (§2.2, §6): Envoy releases the headers, and picks the route, with the answer to them, before the
//   body comes; an LLM request there cannot be routed and is refused (500) on its headers.
// - Response header mode SKIP: the answer's body comes first. It is still read for its usage (its kind told by its
//   first bytes) and the forced usage chunk still taken out; its status is unknown. With no response body either,
//   nothing of the answer comes at all, and its usage goes unmeasured as with the headers.
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECOMMENDED_FILTER, chatRequestHeaders, getHeader, postHeaders, type FilterConfig } from '../../src/dev/envoy-client.js';
import { jsonBody, logEvents, metricValue, rowFor, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

let tg: TestTiergate;
beforeAll(async () => {
  tg = await startTiergate();
});
afterAll(async () => {
  await tg.stop();
});

const mode = (requestBodyMode: 'BUFFERED' | 'BUFFERED_PARTIAL' | 'STREAMED' | 'NONE', requestTrailerMode: 'SKIP' | 'SEND'): FilterConfig => ({
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

describe('request_body_mode STREAMED: the route is chosen before the body comes', () => {
  const refused = () => metricValue(tg.app, 'tiergate_filter_mode_refused_total', { mode: 'request_body_streamed' });

  it('said in protocol_config (Envoy 1.34+): an LLM request is refused 500 on its headers, with its row; trailers change nothing', async () => {
    const before = await refused();
    for (const [id, trailerMode] of [['streamed-1', 'SKIP'], ['streamed-2', 'SEND']] as const) {
      const s = tg.pool.open(mode('STREAMED', trailerMode));
      // Before: "continue" here released the headers, and the route, with no tier: the body's answer named the
      // strong model and set x-llm-tier, which Envoy ignores in this mode, so the request took the catch-all route.
      const o = await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', id]]), false);
      s.close();
      expect(o).toMatchObject({ kind: 'immediate', status: 500 });
      expect(JSON.parse(o.kind === 'immediate' ? o.body.toString() : '{}')).toMatchObject({ error: { type: 'server_error', code: 'request_body_streamed', message: expect.stringContaining('BUFFERED') } });
      expect(await rowFor(tg, id)).toMatchObject({ status: 'rejected', http_status: 500, error_code: 'request_body_streamed', tier: null, path: '/v1/chat/completions' });
    }
    expect(await refused()).toBe(before + 2);
    const warned = logEvents(tg.logs, 'extproc.filter_mode_refused').filter((l) => l.mode === 'request_body_streamed');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 'warn', path: '/v1/chat/completions', message: expect.stringContaining('request_body_mode STREAMED') });
  });

  it('what tiergate routes on its headers alone passes: a fixed-tier path, a path it does not read', async () => {
    const before = await refused();
    for (const path of ['/v1/embeddings', '/healthz']) {
      const s = tg.pool.open(mode('STREAMED', 'SKIP'));
      expect(await s.sendRequestHeaders(postHeaders(path), false), path).toMatchObject({ kind: 'continue' });
      s.close();
    }
    expect(await refused()).toBe(before);
  });
});

describe('request_body_mode NONE: Envoy never sends the body', () => {
  const notSent = (answer: string) => metricValue(tg.app, 'tiergate_body_not_sent_total', { body: 'request', answer });
  const answered = async (id: string) => {
    const s = tg.pool.open(mode('NONE', 'SKIP'));
    const o = await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', id]]), false);
    s.close();
    return o;
  };

  it('said in protocol_config (Envoy 1.34+): a 500 on the headers naming the setting, with its row; logged once per interval', async () => {
    const [refusedBefore, warnedBefore] = [await notSent('refused'), logEvents(tg.logs, 'extproc.body_not_sent').length];
    const o = await answered('none-1');
    // Before, the headers were answered "continue": the request went upstream with no tier header, unclassified
    // and past every limit and ACL, and its row had no tier.
    expect(o).toMatchObject({ kind: 'immediate', status: 500 });
    const json = JSON.parse(o.kind === 'immediate' ? o.body.toString() : '{}') as { error: Record<string, unknown> };
    expect(json.error).toMatchObject({ type: 'server_error', code: 'request_body_not_sent', message: expect.stringContaining('request_body_mode') });
    expect(o.kind === 'immediate' && getHeader(o.headers, 'content-type')).toBe('application/json');
    expect(await rowFor(tg, 'none-1')).toMatchObject({ status: 'rejected', error_code: 'request_body_not_sent', tier: null });
    expect(await answered('none-2')).toMatchObject({ kind: 'immediate', status: 500 });
    expect(await notSent('refused')).toBe(refusedBefore + 2);
    const warned = logEvents(tg.logs, 'extproc.body_not_sent').slice(warnedBefore);
    // Every request on the route is refused: one line per interval says so, not one per request.
    expect(warned).toHaveLength(warnedBefore === 0 ? 1 : 0);
    if (warned[0]) expect(warned[0]).toMatchObject({ level: 'warn', path: '/v1/chat/completions', body: 'request', answer: 'refused', message: expect.stringContaining('BUFFERED') });
  });

  it('what needs no body is answered as before: a GET 405, a POST with none 400, a path tiergate does not read passes', async () => {
    const before = await notSent('refused');
    const get = tg.pool.open(mode('NONE', 'SKIP'));
    expect(await get.sendRequestHeaders(chatRequestHeaders([[':method', 'GET']]), false)).toMatchObject({ kind: 'immediate', status: 405 });
    get.close();
    const empty = tg.pool.open(mode('NONE', 'SKIP'));
    expect(await empty.sendRequestHeaders(chatRequestHeaders(), true)).toMatchObject({ kind: 'immediate', status: 400 });
    empty.close();
    for (const path of ['/v1/embeddings', '/v1/audio/speech', '/healthz']) {
      const other = tg.pool.open(mode('NONE', 'SKIP'));
      expect(await other.sendRequestHeaders(postHeaders(path), false), path).toMatchObject({ kind: 'continue' });
      other.close();
    }
    expect(await notSent('refused')).toBe(before);
  });

  it('an Envoy before 1.34 does not say: counted as passed when the answer comes, its row kept', async () => {
    const old: FilterConfig = { ...mode('NONE', 'SKIP'), sendProtocolConfig: false };
    const before = await notSent('passed');
    const s = tg.pool.open(old);
    expect(await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'none-old']]), false)).toMatchObject({ kind: 'continue' });
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'weak-model', choices: [], usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 } }), true);
    s.close();
    expect(await notSent('passed')).toBe(before + 1);
    expect(await rowFor(tg, 'none-old')).toMatchObject({ tier: null, usage: { total_tokens: 12 } });
    // A body that came, then an answer: nothing to report.
    const fine = tg.pool.open({ ...RECOMMENDED_FILTER, sendProtocolConfig: false });
    await fine.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'none-old-fine']]), false);
    await fine.sendRequestBody(body('hi'), true);
    await fine.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    fine.close();
    expect(await notSent('passed')).toBe(before + 1);
  });
});

describe('response_body_mode NONE: Envoy never sends the answer', () => {
  const unmeasured = () => metricValue(tg.app, 'tiergate_body_not_sent_total', { body: 'response', answer: 'unmeasured' });
  const noAnswerBody: FilterConfig = { ...RECOMMENDED_FILTER, processingMode: { ...RECOMMENDED_FILTER.processingMode, responseBodyMode: 'NONE' } };

  it.each([
    ['200', 'success', null, 'estimated'],
    ['429', 'upstream_error', 'http_429', 'none'],
  ])('said in protocol_config: an answer with status %s is over at its headers, its row "%s", its usage as the status says, counted', async (status, rowStatus, code, source) => {
    const before = await unmeasured();
    const id = `no-answer-body-${status}`;
    const s = tg.pool.open(noAnswerBody);
    await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', id]]), false);
    await s.sendRequestBody(body('hi'), true);
    expect(await s.sendResponseHeaders([[':status', status], ['content-type', 'application/json']], false)).toMatchObject({ kind: 'continue' });
    s.close();
    // Before, the row said "cancelled" for an answer the client got whole.
    expect(await rowFor(tg, id)).toMatchObject({ status: rowStatus, http_status: Number(status), error_code: code, tier: 'weak', usage_source: source });
    expect(await unmeasured()).toBe(before + 1);
  });

  it('a body the answer does not have (end_of_stream on its headers), or mode overrides allowed, is nothing to report', async () => {
    const before = await unmeasured();
    const s = tg.pool.open(noAnswerBody);
    await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'no-answer-body-empty']]), false);
    await s.sendRequestBody(body('hi'), true);
    await s.sendResponseHeaders([[':status', '204']], true);
    s.close();
    const t = await startTiergate({ envoy: { allowModeOverride: true } });
    try {
      const o = t.pool.open({ ...noAnswerBody, allowModeOverride: true });
      await o.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'no-answer-body-override']]), false);
      await o.sendRequestBody(body('hi'), true);
      // tiergate asks for the body it needs in its answer to the headers, so Envoy sends it after all.
      await o.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      await o.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'weak-model', choices: [], usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 } }), true);
      o.close();
      expect(await rowFor(t, 'no-answer-body-override')).toMatchObject({ status: 'success', usage_source: 'reported', usage: { total_tokens: 12 } });
      expect(await metricValue(t.app, 'tiergate_body_not_sent_total', { body: 'response' })).toBe(0);
    } finally {
      await t.stop();
    }
    expect(await unmeasured()).toBe(before);
  });
});

describe('request_header_mode SKIP: the body comes without its headers', () => {
  const headerless = (requestBodyMode: 'BUFFERED' | 'STREAMED' | 'FULL_DUPLEX_STREAMED' | 'NONE', requestTrailerMode: 'SKIP' | 'SEND'): FilterConfig => ({
    ...RECOMMENDED_FILTER,
    processingMode: { ...RECOMMENDED_FILTER.processingMode, requestHeaderMode: 'SKIP', requestBodyMode, requestTrailerMode },
  });
  const notSent = () => metricValue(tg.app, 'tiergate_filter_mode_refused_total', { mode: 'request_headers_skipped' });
  // What a client picks for itself must not route it: before, these reached Envoy's routes untouched.
  const spoofing = chatRequestHeaders([['x-request-id', 'skip-hdr'], ['x-llm-tier', 'strong'], ['x-tenant-id', 'acme'], ['authorization', 'Bearer sk-client']]);

  it.each(['BUFFERED', 'STREAMED', 'FULL_DUPLEX_STREAMED'] as const)('%s: the first body message is answered 500 naming the setting, with a row of its own', async (bodyMode) => {
    const [before, warnedBefore] = [await notSent(), logEvents(tg.logs, 'extproc.filter_mode_refused').filter((l) => l.mode === 'request_headers_skipped').length];
    const s = tg.pool.open(headerless(bodyMode, bodyMode === 'FULL_DUPLEX_STREAMED' ? 'SEND' : 'SKIP'));
    // (Envoy sends tiergate nothing for the headers: the client's request continues to the body.)
    expect(await s.sendRequestHeaders(spoofing, false)).toMatchObject({ kind: 'continue' });
    const o = await s.sendRequestBody(body('Please debug this'), true);
    s.close();
    // Before: "continue", and the request went upstream on the client's own x-llm-tier, with its own key, no row.
    expect(o).toMatchObject({ kind: 'immediate', status: 500 });
    if (o.kind !== 'immediate') return;
    expect(getHeader(o.headers, 'content-type')).toBe('application/json');
    expect(JSON.parse(o.body.toString())).toMatchObject({ error: { type: 'server_error', code: 'request_headers_not_sent', message: expect.stringContaining('request_header_mode') } });
    // The client's x-request-id never reached tiergate: the row is found by the one its reply names.
    const id = getHeader(o.headers, 'x-request-id') ?? '';
    expect(id).not.toBe('skip-hdr');
    expect(await rowFor(tg, id)).toMatchObject({ status: 'rejected', http_status: 500, error_code: 'request_headers_not_sent', tenant_id: '(unauthenticated)', tier: null, path: '' });
    expect(await notSent()).toBe(before + 1);
    const warned = logEvents(tg.logs, 'extproc.filter_mode_refused').filter((l) => l.mode === 'request_headers_skipped').slice(warnedBefore);
    expect(warned.length).toBeLessThanOrEqual(1);
    if (warnedBefore === 0) expect(warned[0]).toMatchObject({ level: 'warn', mode: 'request_headers_skipped', message: expect.stringContaining('request_header_mode') });
  });

  it('trailers first (body mode NONE, trailer mode SEND): refused the same way; with no request message at all, nothing to refuse', async () => {
    const before = await notSent();
    const s = tg.pool.open(headerless('NONE', 'SEND'));
    await s.sendRequestHeaders(spoofing, false);
    expect(await s.sendRequestTrailers([['x-checksum', 'abc']])).toMatchObject({ kind: 'immediate', status: 500 });
    s.close();
    expect(await notSent()).toBe(before + 1);
    // Nothing on the request path (a route's override that skips the request): its answer passes as before.
    const quiet = tg.pool.open(headerless('NONE', 'SKIP'));
    await quiet.sendRequestHeaders(spoofing, true);
    expect(await quiet.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false)).toMatchObject({ kind: 'continue' });
    quiet.close();
    expect(await notSent()).toBe(before + 1);
  });
});

describe('response_header_mode SKIP: the answer comes without its headers', () => {
  const noAnswerHeaders = (responseBodyMode: 'STREAMED' | 'BUFFERED' | 'NONE'): FilterConfig => ({
    ...RECOMMENDED_FILTER,
    processingMode: { ...RECOMMENDED_FILTER.processingMode, responseHeaderMode: 'SKIP', responseBodyMode },
  });
  const notSent = () => metricValue(tg.app, 'tiergate_response_headers_not_sent_total');
  const answer = jsonBody({ id: 'c-1', object: 'chat.completion', model: 'weak-model', choices: [{ index: 0, message: { role: 'assistant', content: 'hello' }, finish_reason: 'stop' }], usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } });
  const chunk = (o: object) => `data: ${JSON.stringify({ id: 'c-2', object: 'chat.completion.chunk', model: 'weak-model', ...o })}\n\n`;
  const usageChunk = chunk({ choices: [], usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } });

  it.each(['STREAMED', 'BUFFERED'] as const)('a JSON answer (%s) is read for its usage: priced, its status unknown, counted and logged', async (bodyMode) => {
    const [before, warnedBefore] = [await notSent(), logEvents(tg.logs, 'extproc.response_headers_not_sent').length];
    const id = `skip-answer-headers-${bodyMode}`;
    const s = tg.pool.open(noAnswerHeaders(bodyMode));
    await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', id]]), false);
    await s.sendRequestBody(body('hi'), true);
    // (Envoy sends tiergate nothing for them: they go on to the client as the backend sent them.)
    expect(await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false)).toMatchObject({ kind: 'continue' });
    // Whitespace first, as a pretty-printing backend may send: the kind waits for the first byte that tells it.
    expect(await s.sendResponseBody(Buffer.from('\n  '), false)).toMatchObject({ kind: 'continue' });
    expect(await s.sendResponseBody(answer, true)).toMatchObject({ kind: 'continue' });
    s.close();
    // Before: the body went unread, the row "estimated" with no output and no cost.
    expect(await rowFor(tg, id)).toMatchObject({ status: 'success', http_status: null, usage_source: 'reported', usage: { input_tokens: 11, output_tokens: 7 }, cost_usd: { total: expect.any(Number) } });
    expect(s.dynamicMetadata.tiergate).toMatchObject({ usage_source: 'reported', total_tokens: 18 });
    expect(await notSent()).toBe(before + 1);
    const warned = logEvents(tg.logs, 'extproc.response_headers_not_sent').slice(warnedBefore);
    expect(warned.length).toBeLessThanOrEqual(1);
    if (warnedBefore === 0) expect(warned[0]).toMatchObject({ level: 'warn', path: '/v1/chat/completions', message: expect.stringContaining('response_header_mode') });
  });

  it('a stream is read for its usage, and the usage chunk the client did not ask for is still taken out', async () => {
    const before = await notSent();
    const s = tg.pool.open(noAnswerHeaders('STREAMED'));
    await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'skip-answer-headers-sse']]), false);
    await s.sendRequestBody(jsonBody({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'hi' }] }), true);
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    const first = chunk({ choices: [{ index: 0, delta: { content: 'hel' } }] });
    expect(await s.sendResponseBody(Buffer.from(first), false)).toEqual({ kind: 'continue', clearedRouteCache: false });
    const last = await s.sendResponseBody(Buffer.from(`${usageChunk}data: [DONE]\n\n`), true);
    s.close();
    // Before, the usage chunk reached a client that never asked for it.
    expect(last).toMatchObject({ kind: 'continue', body: Buffer.from('data: [DONE]\n\n') });
    expect(await rowFor(tg, 'skip-answer-headers-sse')).toMatchObject({ status: 'success', http_status: null, stream: true, usage_source: 'reported', usage: { output_tokens: 7 } });
    expect(await notSent()).toBe(before + 1);
  });

  it('an error body still names the error, with nothing spent; a compressed body, whose coding only the headers say, is passed on unread', async () => {
    const s = tg.pool.open(noAnswerHeaders('STREAMED'));
    await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'skip-answer-headers-error']]), false);
    await s.sendRequestBody(jsonBody({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'hi' }] }), true);
    await s.sendResponseBody(jsonBody({ error: { message: 'too long', type: 'invalid_request_error', code: 'context_length_exceeded' } }), true);
    s.close();
    // A whole JSON error is a refusal, as its status would have said: nothing spent (it was the prompt's estimate).
    expect(await rowFor(tg, 'skip-answer-headers-error')).toMatchObject({ status: 'upstream_error', http_status: null, error_code: 'context_length_exceeded', usage_source: 'none', cost_usd: { total: 0 } });

    const z = tg.pool.open(noAnswerHeaders('STREAMED'));
    await z.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'skip-answer-headers-gzip']]), false);
    await z.sendRequestBody(jsonBody({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'hi' }] }), true);
    const compressed = gzipSync(Buffer.from(`${chunk({ choices: [{ index: 0, delta: { content: 'hel' } }] })}${usageChunk}data: [DONE]\n\n`));
    // Untouched: read as SSE, its bytes could have been cut as if they were events.
    expect(await z.sendResponseBody(compressed, true)).toEqual({ kind: 'continue', clearedRouteCache: false });
    z.close();
    // What it generated is not known: an estimate, left unpriced rather than priced at the prompt alone.
    expect(await rowFor(tg, 'skip-answer-headers-gzip')).toMatchObject({ status: 'success', http_status: null, usage_source: 'estimated', cost_usd: null });
  });

  it('with no response body either, nothing of the answer comes: counted as an answer unmeasured', async () => {
    const unmeasured = () => metricValue(tg.app, 'tiergate_body_not_sent_total', { body: 'response', answer: 'unmeasured' });
    const [before, skippedBefore] = [await unmeasured(), await notSent()];
    const s = tg.pool.open(noAnswerHeaders('NONE'));
    await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'skip-answer-all']]), false);
    await s.sendRequestBody(body('hi'), true);
    // An Envoy 1.37+ closes the stream here: no further message is due (§2.6).
    s.close();
    expect(await rowFor(tg, 'skip-answer-all')).toMatchObject({ tier: 'weak', http_status: null });
    expect(await unmeasured()).toBe(before + 1);
    expect(await notSent()).toBe(skippedBefore);
    // A request tiergate answered itself has no answer to measure.
    const refused = tg.pool.open(noAnswerHeaders('NONE'));
    await refused.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'skip-answer-refused']]), false);
    expect(await refused.sendRequestBody(jsonBody({ model: 'auto', messages: [] }), true)).toMatchObject({ kind: 'immediate', status: 400 });
    refused.close();
    await rowFor(tg, 'skip-answer-refused');
    expect(await unmeasured()).toBe(before + 1);
  });
});
