// One ledger row per request, for every way a request can end, driven through the Envoy-faithful client.
import { createHash } from 'node:crypto';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECOMMENDED_FILTER, chatRequestHeaders, getHeader, postHeaders, type ExtProcSession, type FilterConfig } from '../../src/dev/envoy-client.js';
import { sha256Hex } from '../../src/auth/api-keys.js';
import { MAX_CLIENT_TEXT, boundedClientText } from '../../src/ledger/client-text.js';
import { countTokens, countTokensOfAll } from '../../src/llm/tokenizer.js';
import { USAGE_METADATA_KEYS } from '../../src/pipeline/response-accounting.js';
import { jsonBody, logEvents, metricValue, rowFor, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

let tg: TestTiergate;
let tgOverride: TestTiergate;
beforeAll(async () => {
  const config = { usage: { trailer: 'x-usage' }, ledger: { userHashKey: undefined } };
  tg = await startTiergate(config);
  tgOverride = await startTiergate({ ...config, envoy: { allowModeOverride: true } });
});
afterAll(async () => {
  await tg.stop();
  await tgOverride.stop();
});

const ALLOW_OVERRIDE: FilterConfig = { ...RECOMMENDED_FILTER, allowModeOverride: true };
const USAGE = { prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500 };
const chatJson = (model: string, usage: unknown = USAGE) =>
  jsonBody({ id: 'c1', object: 'chat.completion', model, choices: [{ index: 0, message: { role: 'assistant', content: 'Hello there' }, finish_reason: 'stop' }], usage });
const sseChunk = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
const delta = (content: string, model = 'weak-model') => sseChunk({ object: 'chat.completion.chunk', model, choices: [{ index: 0, delta: { content }, finish_reason: null }] });

/** Sends a short "auto" chat request (routed weak) and returns the open session. */
async function routed(t: TestTiergate, opts: { filter?: FilterConfig; headers?: Array<[string, string]>; body?: Record<string, unknown> } = {}): Promise<ExtProcSession> {
  const s = t.pool.open(opts.filter);
  await s.sendRequestHeaders(chatRequestHeaders(opts.headers ?? []), false);
  const o = await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'Say hi' }], ...opts.body }));
  expect(o.kind).toBe('continue');
  return s;
}


describe('ledger rows for every ending', () => {
  it('buffered JSON success: reported usage, cost from the price table, x-usage-total-tokens and dynamic metadata', async () => {
    const s = await routed(tgOverride, { filter: ALLOW_OVERRIDE, headers: [['x-request-id', 'json-ok'], ['x-feature-id', 'search']] });
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    expect(s.mode.responseBodyMode).toBe('BUFFERED'); // asked for by tiergate (§10)
    const body = chatJson('weak-model');
    const o = await s.sendResponseBody(body, true);
    expect(o.kind).toBe('continue');
    expect(getHeader(s.responseHeaders, 'x-usage-total-tokens')).toBe('1500');
    // weak-model: $0.10 / $0.40 per million → 1000 × 0.1e-6 + 500 × 0.4e-6
    expect(s.dynamicMetadata.tiergate).toEqual({ input_tokens: 1000, output_tokens: 500, total_tokens: 1500, cost_usd: 0.0003, usage_source: 'reported' });
    // Every key is one envoy.yaml may log (checked there against USAGE_METADATA_KEYS).
    for (const k of Object.keys(s.dynamicMetadata.tiergate ?? {})) expect(USAGE_METADATA_KEYS).toContain(k);
    s.close();
    const row = await rowFor(tgOverride, 'json-ok');
    expect(row).toMatchObject({
      schema_version: 1,
      status: 'success',
      http_status: 200,
      tier: 'weak',
      model_alias: 'auto',
      model_resolved: 'weak-model',
      feature_id: 'search',
      classifier_version: 'v7',
      usage: { input_tokens: 1000, output_tokens: 500, total_tokens: 1500, cached_input_tokens: 0, reasoning_tokens: 0 },
      usage_source: 'reported',
      cost_usd: { input: 0.0001, output: 0.0002, total: 0.0003, price_table_version: 'embedded-defaults' },
      cache_hit: false,
      error_code: null,
      fallback_used: false,
      finish_reason: 'stop',
    });
    expect(row.latency_ms.ttft).toBeGreaterThanOrEqual(0);
    // Milliseconds (to the µs): the backend's part is known here, and a test request is never a minute long.
    expect(row.latency_ms.provider).toBeGreaterThan(0);
    expect(row.latency_ms.total).toBeGreaterThanOrEqual(row.latency_ms.provider ?? 0);
    expect(row.latency_ms.total).toBeLessThan(60_000);
  });

  it('streamed SSE with a usage chunk, cut mid-line: reported usage on the last chunk, cached input priced lower', async () => {
    const s = await routed(tg, { headers: [['x-request-id', 'sse-ok']], body: { model: 'strong-model', stream: true } });
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    const usage = { prompt_tokens: 2000, completion_tokens: 100, total_tokens: 2100, prompt_tokens_details: { cached_tokens: 1000 } };
    const text = delta('Hel', 'strong-model') + delta('lo', 'strong-model') + sseChunk({ object: 'chat.completion.chunk', model: 'strong-model', choices: [], usage }) + 'data: [DONE]\n\n';
    const bytes = Buffer.from(text);
    const cuts = [7, 60, bytes.length - 20];
    let prev = 0;
    for (const c of cuts) {
      await s.sendResponseBody(bytes.subarray(prev, c), false);
      prev = c;
    }
    expect(s.dynamicMetadata.tiergate).toBeUndefined(); // only the final answer carries it
    await s.sendResponseBody(bytes.subarray(prev), true);
    // strong-model: input $2.50, cached $1.25, output $10 per million.
    const cost = (1000 * 2.5 + 1000 * 1.25 + 100 * 10) / 1e6;
    expect(s.dynamicMetadata.tiergate).toMatchObject({ total_tokens: 2100, cost_usd: cost });
    expect(getHeader(s.responseHeaders, 'x-usage-total-tokens')).toBeUndefined(); // headers were already sent
    s.close();
    const row = await rowFor(tg, 'sse-ok');
    expect(row).toMatchObject({ status: 'success', stream: true, tier: 'strong', usage_source: 'reported', usage: { cached_input_tokens: 1000 } });
    expect(row.cost_usd?.total).toBe(cost);
    expect(row.classifier_version).toBe('alias');
  });

  it('compressed responses (gzip JSON, brotli SSE) are read for usage and passed on untouched', async () => {
    const json = await routed(tgOverride, { filter: ALLOW_OVERRIDE, headers: [['x-request-id', 'json-gzip']] });
    await json.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json'], ['content-encoding', 'gzip']], false);
    const o = await json.sendResponseBody(gzipSync(chatJson('weak-model')), true);
    expect(o).toMatchObject({ kind: 'continue' });
    expect((o as { body?: Buffer }).body).toBeUndefined(); // no body mutation: the client gets the compressed bytes
    expect(getHeader(json.responseHeaders, 'content-encoding')).toBe('gzip');
    expect(json.dynamicMetadata.tiergate).toMatchObject({ total_tokens: 1500, usage_source: 'reported' });
    json.close();
    expect(await rowFor(tgOverride, 'json-gzip')).toMatchObject({ usage: { total_tokens: 1500 }, usage_source: 'reported', model_resolved: 'weak-model' });

    const sse = await routed(tg, { headers: [['x-request-id', 'sse-br']], body: { stream: true } });
    await sse.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream'], ['content-encoding', 'br']], false);
    const usage = { prompt_tokens: 20, completion_tokens: 4, total_tokens: 24 };
    const bytes = brotliCompressSync(Buffer.from(delta('Hel') + delta('lo') + sseChunk({ object: 'chat.completion.chunk', model: 'weak-model', choices: [], usage }) + 'data: [DONE]\n\n'));
    const half = Math.floor(bytes.length / 2);
    await sse.sendResponseBody(bytes.subarray(0, half), false);
    await sse.sendResponseBody(bytes.subarray(half), false);
    await sse.sendResponseBody(Buffer.alloc(0), true);
    expect(sse.dynamicMetadata.tiergate).toMatchObject({ total_tokens: 24, usage_source: 'reported' });
    sse.close();
    expect(await rowFor(tg, 'sse-br')).toMatchObject({ status: 'success', usage: { total_tokens: 24 }, usage_source: 'reported' });
  });

  it('SSE without usage: counted with the tokenizer and marked estimated', async () => {
    const s = await routed(tg, { headers: [['x-request-id', 'sse-nousage']], body: { stream: true } });
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    await s.sendResponseBody(Buffer.from(delta('The answer is forty-two.') + delta(' Anything else?')), false);
    await s.sendResponseBody(Buffer.from('data: [DONE]\n\n'), true);
    expect(s.dynamicMetadata.tiergate).toMatchObject({ usage_source: 'none_reported' });
    s.close();
    const row = await rowFor(tg, 'sse-nousage');
    expect(row.usage_source).toBe('estimated');
    expect(row.status).toBe('success');
    expect(row.usage.output_tokens).toBe(await countTokens('The answer is forty-two. Anything else?'));
    // One message: its text, plus 3 per message and 3 to prime the reply.
    expect(row.usage.input_tokens).toBe((await countTokens('Say hi')) + 6);
    expect(row.cost_usd?.total).toBeGreaterThan(0);
  });

  it('an estimate whose prompt and answer write out <|endoftext|> is counted as text, and the row is written', async () => {
    // The tokenizer's default throws on a special token's string: the row's build failed and the row was lost.
    const prompt = 'Explain <|endoftext|> in one line';
    const s = await routed(tg, { headers: [['x-request-id', 'sse-special']], body: { stream: true, messages: [{ role: 'user', content: prompt }] } });
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    await s.sendResponseBody(Buffer.from(delta('It marks the end: <|endoftext|>') + 'data: [DONE]\n\n'), true);
    s.close();
    const row = await rowFor(tg, 'sse-special');
    expect(row).toMatchObject({ status: 'success', usage_source: 'estimated' });
    expect(row.usage.input_tokens).toBe((await countTokens(prompt)) + 6);
    expect(row.usage.output_tokens).toBe(await countTokens('It marks the end: <|endoftext|>'));
    expect(row.usage.output_tokens).toBeGreaterThan(await countTokens('It marks the end: '));
  });

  it('an estimate counts budgets.mediaPartEstimate (1,000) for each image part, which the tokenizer cannot read', async () => {
    const image = { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } };
    const content = [{ type: 'text', text: 'Say hi' }, image, image];
    const s = await routed(tg, { headers: [['x-request-id', 'sse-images']], body: { stream: true, messages: [{ role: 'user', content }] } });
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    await s.sendResponseBody(Buffer.from(delta('Two cats.') + 'data: [DONE]\n\n'), true);
    s.close();
    const row = await rowFor(tg, 'sse-images');
    expect(row.usage_source).toBe('estimated');
    expect(row.usage.input_tokens).toBe((await countTokens('Say hi')) + 6 + 2 * 1000);
  });

  it("an estimate counts the history's tool calls, which the model reads back as prompt", async () => {
    const args = JSON.stringify({ path: 'notes.md', text: 'A long note about the release plan. '.repeat(40) });
    const messages = [
      { role: 'user', content: 'Save my notes' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'write_file', arguments: args } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'saved' },
    ];
    const s = await routed(tg, { headers: [['x-request-id', 'sse-tool-calls']], body: { stream: true, messages } });
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    await s.sendResponseBody(Buffer.from(delta('Saved.') + 'data: [DONE]\n\n'), true);
    s.close();
    const row = await rowFor(tg, 'sse-tool-calls');
    expect(row.usage_source).toBe('estimated');
    expect(row.usage.input_tokens).toBe((await countTokensOfAll(['Save my notes', '', 'saved', `write_file\n${args}`])) + 3 * 3 + 3);
  });

  it('usage from a configured response trailer wins over the body', async () => {
    const filter: FilterConfig = { ...RECOMMENDED_FILTER, processingMode: { ...RECOMMENDED_FILTER.processingMode, responseTrailerMode: 'SEND' } };
    const s = await routed(tg, { filter, headers: [['x-request-id', 'trailer']], body: { stream: true } });
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    await s.sendResponseBody(Buffer.from(delta('Hi') + 'data: [DONE]\n\n'), false);
    await s.sendResponseTrailers([['x-usage', JSON.stringify({ prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 })]]);
    expect(s.dynamicMetadata.tiergate).toMatchObject({ total_tokens: 10 });
    s.close();
    expect((await rowFor(tg, 'trailer')).usage).toMatchObject({ input_tokens: 7, output_tokens: 3, total_tokens: 10 });
  });

  it('finish_reason: why the answer ended, as it says; a Responses turn cut short gives its reason; null when none was named', async () => {
    const ended = async (id: string, chunks: string) => {
      const s = await routed(tg, { headers: [['x-request-id', id]], body: { stream: true, n: 2 } });
      await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
      await s.sendResponseBody(Buffer.from(chunks + 'data: [DONE]\n\n'), true);
      s.close();
      return (await rowFor(tg, id)).finish_reason;
    };
    const finish = (index: number, reason: string) => sseChunk({ object: 'chat.completion.chunk', model: 'weak-model', choices: [{ index, delta: {}, finish_reason: reason }] });
    expect(await ended('finish-length', delta('Hel') + finish(0, 'length'))).toBe('length');
    expect(await ended('finish-tools', finish(0, 'tool_calls'))).toBe('tool_calls');
    // With several choices, the last one the answer named.
    expect(await ended('finish-two', finish(0, 'length') + finish(1, 'stop'))).toBe('stop');
    // A stream that ends without naming a reason, and a backend's reason of any length, bounded as its other words are.
    expect(await ended('finish-none', delta('Hel'))).toBeNull();
    const long = 'x'.repeat(5000);
    expect(await ended('finish-long', finish(0, long))).toBe(boundedClientText(long));

    const responses = async (id: string, body: (response: Record<string, unknown>) => Buffer, type: string) => {
      const s = tg.pool.open();
      await s.sendRequestHeaders(postHeaders('/v1/responses', [['x-request-id', id]]), false);
      expect((await s.sendRequestBody(jsonBody({ model: 'auto', store: false, input: 'Say hi' }))).kind).toBe('continue');
      await s.sendResponseHeaders([[':status', '200'], ['content-type', type]], false);
      const response = { id: 'resp_1', object: 'response', model: 'weak-model', status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, output: [], usage: { input_tokens: 5, output_tokens: 2, total_tokens: 7 } };
      await s.sendResponseBody(body(response), true);
      s.close();
      return (await rowFor(tg, id)).finish_reason;
    };
    expect(await responses('incomplete-json', (r) => jsonBody(r), 'application/json')).toBe('max_output_tokens');
    const event = (r: Record<string, unknown>) => Buffer.from(`event: response.incomplete\ndata: ${JSON.stringify({ type: 'response.incomplete', sequence_number: 0, response: r })}\n\n`);
    expect(await responses('incomplete-sse', event, 'text/event-stream')).toBe('max_output_tokens');
    expect(await responses('completed-json', (r) => jsonBody({ ...r, status: 'completed', incomplete_details: null }), 'application/json')).toBe('completed');
  });

  it('upstream error: status upstream_error, the error code from the body, nothing billed', async () => {
    const s = await routed(tg, { headers: [['x-request-id', 'upstream-500']] });
    await s.sendResponseHeaders([[':status', '503'], ['content-type', 'application/json']], false);
    await s.sendResponseBody(jsonBody({ error: { message: 'overloaded', type: 'server_error', code: 'overloaded' } }), true);
    s.close();
    const row = await rowFor(tg, 'upstream-500');
    expect(row).toMatchObject({ status: 'upstream_error', http_status: 503, error_code: 'overloaded', usage_source: 'none', finish_reason: null });
    expect(row.cost_usd?.total).toBe(0);
  });

  // vLLM answers {"error": {..., "type": "BadRequestError", "code": 400}}; before, a numeric code made the row's
  // error_code "upstream_error", which said less than the status. Older vLLM sends the error as the body.
  it.each([
    ['vLLM', 400, { error: { message: 'max_tokens too large', type: 'BadRequestError', param: null, code: 400 } }, 'BadRequestError'],
    ['older vLLM', 404, { object: 'error', message: 'The model does not exist.', type: 'NotFoundError', param: null, code: 404 }, 'NotFoundError'],
    ['an error naming nothing', 502, { error: { message: 'bad gateway', code: 502 } }, 'http_502'],
    ['an error naming nothing, at 400', 400, { error: { message: 'bad request', code: 400 } }, 'http_400'],
  ])('upstream error from %s: the row names it by its type, else by the status', async (name, status, body, code) => {
    const id = `named-${status}-${code}`;
    const s = await routed(tg, { headers: [['x-request-id', id]] });
    await s.sendResponseHeaders([[':status', String(status)], ['content-type', 'application/json']], false);
    await s.sendResponseBody(jsonBody(body), true);
    s.close();
    // Refused by the backend: nothing was generated, so nothing is estimated.
    expect(await rowFor(tg, id), name).toMatchObject({ status: 'upstream_error', http_status: status, error_code: code, usage_source: 'none' });
  });

  it.each([400, 502])("an error status %i with a body that names no error (a proxy's HTML page) is an upstream error by its status", async (status) => {
    const id = `html-${status}`;
    const s = await routed(tg, { headers: [['x-request-id', id]] });
    await s.sendResponseHeaders([[':status', String(status)], ['content-type', 'text/html']], false);
    await s.sendResponseBody(Buffer.from('<html><body>Error</body></html>'), true);
    s.close();
    expect(await rowFor(tg, id)).toMatchObject({ status: 'upstream_error', http_status: status, error_code: `http_${status}`, usage_source: 'none' });
  });

  it("an unnamed error event in a 200 stream is named upstream_error, not by the stream's status", async () => {
    const s = await routed(tg, { headers: [['x-request-id', 'sse-unnamed']], body: { stream: true } });
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    await s.sendResponseBody(Buffer.from(delta('Partial') + sseChunk({ error: { message: 'boom' } })), true);
    s.close();
    expect(await rowFor(tg, 'sse-unnamed')).toMatchObject({ status: 'upstream_error', http_status: 200, error_code: 'upstream_error' });
  });

  it('a refusal at a model without a price costs 0, not unpriced: nothing was spent', async () => {
    const t = await startTiergate({ tiers: { weak: { model: 'mystery-7b' }, strong: { model: 'strong-model' } } });
    try {
      const s = await routed(t, { headers: [['x-request-id', 'refused-unpriced']] });
      await s.sendResponseHeaders([[':status', '429'], ['content-type', 'application/json']], false);
      await s.sendResponseBody(jsonBody({ error: { message: 'slow down', type: 'requests', code: 'rate_limit_exceeded' } }), true);
      s.close();
      expect((await rowFor(t, 'refused-unpriced')).cost_usd?.total).toBe(0);
      expect(await metricValue(t.app, 'tiergate_unpriced_requests_total')).toBe(0);
    } finally {
      await t.stop();
    }
  });

  it('an error event mid-stream after a 200 is an upstream error, with the text so far estimated', async () => {
    const s = await routed(tg, { headers: [['x-request-id', 'sse-error']], body: { stream: true } });
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    await s.sendResponseBody(Buffer.from(delta('Partial answer') + sseChunk({ error: { message: 'boom', type: 'server_error', code: null } })), true);
    s.close();
    const row = await rowFor(tg, 'sse-error');
    expect(row).toMatchObject({ status: 'upstream_error', error_code: 'server_error', usage_source: 'estimated' });
    expect(row.usage.output_tokens).toBe(await countTokens('Partial answer'));
  });

  it('local replies: 400 and 413 rows carry their code and no tier', async () => {
    const s = tg.pool.open();
    await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'bad-json']]), false);
    expect((await s.sendRequestBody(Buffer.from('{not json'))).kind).toBe('immediate');
    s.close();
    expect(await rowFor(tg, 'bad-json')).toMatchObject({ status: 'rejected', http_status: 400, error_code: 'invalid_json', tier: null, usage_source: 'none' });

    const small = await startTiergate({ limits: { maxRequestBodyBytes: 100 } });
    try {
      const t = small.pool.open();
      await t.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'too-big']]), false);
      await t.sendRequestBody(jsonBody({ messages: [{ role: 'user', content: 'x'.repeat(500) }] }));
      t.close();
      expect(await rowFor(small, 'too-big')).toMatchObject({ status: 'rejected', http_status: 413, error_code: 'request_too_large' });
    } finally {
      await small.stop();
    }
  });

  it('client gone mid-stream: status cancelled, the text streamed so far estimated', async () => {
    const s = await routed(tg, { headers: [['x-request-id', 'cancelled']], body: { stream: true } });
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    await s.sendResponseBody(Buffer.from(delta('Once upon a time')), false);
    s.cancel(); // the downstream connection died: Envoy resets the side stream
    const row = await rowFor(tg, 'cancelled');
    expect(row).toMatchObject({ status: 'cancelled', usage_source: 'estimated', http_status: 200 });
    expect(row.usage.output_tokens).toBe(await countTokens('Once upon a time'));
  });

  it('cancelled before any response: the prompt is estimated, nothing generated', async () => {
    const s = await routed(tg, { headers: [['x-request-id', 'cancel-early']] });
    s.close();
    const row = await rowFor(tg, 'cancel-early');
    expect(row).toMatchObject({ status: 'cancelled', http_status: null, usage_source: 'estimated', usage: { output_tokens: 0 } });
    expect(row.latency_ms.ttft).toBeNull();
    expect(row.latency_ms.provider).toBeNull();
    expect(row.latency_ms.total).toBeGreaterThan(0);
  });

  it('a client gone before its body was read: never sent on, so nothing to estimate', async () => {
    const s = tg.pool.open();
    await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'gone-before-body']]), false);
    s.close();
    expect(await rowFor(tg, 'gone-before-body')).toMatchObject({ status: 'cancelled', usage_source: 'none', usage: { input_tokens: 0, output_tokens: 0 }, cost_usd: { total: 0 } });
  });

  it('an estimated prompt counts tool and legacy functions definitions, both when both are sent', async () => {
    const fn = { name: 'lookup', description: 'Look up the weather for a city and a day.', parameters: { type: 'object' } };
    const inputFor = async (id: string, body: Record<string, unknown>) => {
      const s = await routed(tg, { headers: [['x-request-id', id]], body });
      s.close();
      return (await rowFor(tg, id)).usage.input_tokens;
    };
    const tools = [{ type: 'function', function: fn }];
    const none = await inputFor('defs-none', {});
    const toolTokens = await countTokens(JSON.stringify(tools));
    const functionTokens = await countTokens(JSON.stringify([fn]));
    expect(await inputFor('defs-tools', { tools })).toBe(none + toolTokens);
    expect(await inputFor('defs-functions', { functions: [fn] })).toBe(none + functionTokens);
    // Both sent: both read by the model, both counted (before, only tools were).
    expect(await inputFor('defs-both', { tools, functions: [fn] })).toBeGreaterThanOrEqual(none + toolTokens + functionTokens);
  });

  it('request ids: from x-request-id, generated when absent; event ids are unique', async () => {
    const s = tg.pool.open();
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'no id' }] }));
    s.close();
    await expect.poll(async () => (await tg.rows()).some((r) => /^[0-9a-f-]{36}$/.test(r.request_id))).toBe(true);
    const rows = await tg.rows();
    expect(new Set(rows.map((r) => r.event_id)).size).toBe(rows.length);
  });

  it('client-chosen strings are bounded in the row: over 256 characters they keep their start and end in a hash of the whole', async () => {
    // Before: a 16 KB x-request-id, feature header and model name went into the row whole, ~50 KB per row.
    const long = (c: string) => c.repeat(16_000);
    const ids = [`${long('r')}-a`, `${long('r')}-b`]; // the same start: they must stay two requests
    for (const id of ids) {
      const s = await routed(tg, { headers: [['x-request-id', id], ['x-feature-id', long('f')]], body: { model: long('m') } });
      s.close();
    }
    await expect.poll(async () => (await tg.rows()).filter((r) => r.request_id.startsWith('rrrr')).length).toBe(2);
    const stored = (await tg.rows()).filter((r) => r.request_id.startsWith('rrrr'));
    expect(new Set(stored.map((r) => r.request_id)).size).toBe(2);
    for (const r of stored) {
      for (const v of [r.request_id, r.feature_id, r.model_alias]) {
        expect(v?.length).toBeLessThanOrEqual(MAX_CLIENT_TEXT);
        expect(v).toMatch(/^(r+|f+|m+)…[0-9a-f]{16}$/);
      }
      expect(JSON.stringify(r).length).toBeLessThan(3_000);
    }
    // An ordinary id is kept exactly (Envoy's access log joins on it).
    expect(boundedClientText('8e3c6a52-2f8e-4f7a-9d7e-0b6f2f1f9a11')).toBe('8e3c6a52-2f8e-4f7a-9d7e-0b6f2f1f9a11');
    expect(boundedClientText('x'.repeat(MAX_CLIENT_TEXT))).toBe('x'.repeat(MAX_CLIENT_TEXT));
    // A cut never splits a surrogate pair.
    const emoji = boundedClientText('😀'.repeat(300));
    expect(() => encodeURIComponent(emoji)).not.toThrow(); // it throws on a lone surrogate
  });

  it('the path is bounded too: an unauthenticated request to a 16 KB path leaves a row of ~1 KB, not 16', async () => {
    // Refused requests leave a row whatever their path, and with keys on anyone can be refused.
    const t = await startTiergate({ auth: { mode: 'api_key', keys: [{ id: 'k', sha256: sha256Hex('sk-real'), tenant: 'acme' }] } });
    try {
      const path = `/v1/${'p'.repeat(16_000)}`;
      const s = t.pool.open();
      expect(await s.sendRequestHeaders(postHeaders(path, [['x-request-id', 'long-path']]), false)).toMatchObject({ kind: 'immediate', status: 401 });
      s.close();
      const row = await rowFor(t, 'long-path');
      expect(row.path.length).toBeLessThanOrEqual(MAX_CLIENT_TEXT);
      expect(row.path).toMatch(/^\/v1\/p+…[0-9a-f]{16}$/);
      expect(JSON.stringify(row).length).toBeLessThan(3_000);
    } finally {
      await t.stop();
    }
  });

  it('an unknown model has cost null and is counted, never a crash', async () => {
    const t = await startTiergate({ tiers: { weak: { model: 'mystery-7b' }, strong: { model: 'strong-model' } } });
    try {
      const s = await routed(t, { headers: [['x-request-id', 'unpriced']] });
      await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      await s.sendResponseBody(chatJson('mystery-7b'), true);
      expect(s.dynamicMetadata.tiergate?.cost_usd).toBeUndefined();
      s.close();
      expect((await rowFor(t, 'unpriced')).cost_usd).toBeNull();
      expect(await metricValue(t.app, 'tiergate_unpriced_requests_total')).toBe(1);
      expect(t.logs.join('')).toContain('ledger.unpriced_model');
    } finally {
      await t.stop();
    }
  });

  it("a provider's service tiers: each priced at its own prices as the response names it, an unlisted one unpriced", async () => {
    const t = await startTiergate({
      tiers: { weak: { model: 'weak-model' }, strong: { model: 'strong-model', provider: 'openai' } },
      prices: {
        version: 'tiers-1',
        models: {
          'weak-model': { input: 0.1, output: 0.4, serviceTiers: { priority: { input: 0.2, output: 0.8 }, flex: { input: 0.05, output: 0.2 } } },
          'strong-model': { input: 2.5, output: 10 }, // no service tiers: priced alike on every tier
        },
      },
    });
    try {
      const answered = async (id: string, body: Buffer, contentType = 'application/json') => {
        const s = await routed(t, { headers: [['x-request-id', id]] });
        await s.sendResponseHeaders([[':status', '200'], ['content-type', contentType]], false);
        await s.sendResponseBody(body, true);
        s.close();
        return { metadata: s.dynamicMetadata.tiergate, row: await rowFor(t, id) };
      };
      const withTier = (model: string, tier: string | null) => jsonBody({ ...JSON.parse(chatJson(model).toString()), service_tier: tier });
      // 1000 input, 500 output tokens: priority at 0.2/0.8, default at 0.1/0.4.
      const priority = await answered('st-priority', withTier('weak-model', 'priority'));
      expect(priority.row).toMatchObject({ service_tier: 'priority', cost_usd: { input: 0.0002, output: 0.0004, total: 0.0006, price_table_version: 'tiers-1' } });
      expect(priority.metadata?.cost_usd).toBe(0.0006); // Envoy's access log prices it the same
      expect((await answered('st-default', withTier('weak-model', 'default'))).row).toMatchObject({ service_tier: 'default', cost_usd: { total: 0.0003 } });
      expect((await answered('st-none', withTier('weak-model', null))).row).toMatchObject({ service_tier: null, cost_usd: { total: 0.0003 } });
      // A stream names its tier on every chunk; the usage chunk's tokens are priced at flex.
      const chunk = (o: Record<string, unknown>) => sseChunk({ object: 'chat.completion.chunk', model: 'weak-model', service_tier: 'flex', ...o });
      const sse = Buffer.from(chunk({ choices: [{ index: 0, delta: { content: 'Hi' }, finish_reason: 'stop' }] }) + chunk({ choices: [], usage: USAGE }) + 'data: [DONE]\n\n');
      expect((await answered('st-flex', sse, 'text/event-stream')).row).toMatchObject({ service_tier: 'flex', cost_usd: { total: 0.00015 } });
      // A model without service tiers is priced the same whatever the response says (strong-model answered: a fallback).
      expect((await answered('st-untiered', withTier('strong-model', 'priority'))).row).toMatchObject({ service_tier: 'priority', cost_usd: { total: 0.0075 } });
      // A tier the model's prices do not list: not priced as default (which would understate it), but unpriced.
      const unpricedBefore = await metricValue(t.app, 'tiergate_unpriced_requests_total');
      const scale = await answered('st-scale', withTier('weak-model', 'scale'));
      expect(scale.row).toMatchObject({ service_tier: 'scale', cost_usd: null, usage: { total_tokens: 1500 } });
      expect(scale.metadata?.cost_usd).toBeUndefined();
      expect(await metricValue(t.app, 'tiergate_unpriced_requests_total')).toBe(unpricedBefore + 1);
      const logged = t.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(logged.filter((l) => l.event === 'ledger.unpriced_model')).toEqual([expect.objectContaining({ model: 'weak-model', service_tier: 'scale' })]);
      // Said at start: the tier sent to OpenAI has a price without service tiers (the other tier's provider is not openai).
      expect(logged.filter((l) => l.event === 'config.service_tiers_unpriced').map((l) => l.path)).toEqual(['tiers.strong']);
    } finally {
      await t.stop();
    }
  });

  it('a dated snapshot is priced as its model; another tier answering marks fallback_used', async () => {
    const before = await metricValue(tg.app, 'tiergate_fallback_total', { tier: 'weak' });
    const s = await routed(tg, { headers: [['x-request-id', 'fallback']] });
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await s.sendResponseBody(chatJson('strong-model-2026-01-01'), true);
    s.close();
    const row = await rowFor(tg, 'fallback');
    expect(row).toMatchObject({ tier: 'weak', model_resolved: 'strong-model-2026-01-01', fallback_used: true });
    expect(row.cost_usd?.total).toBe((1000 * 2.5 + 500 * 10) / 1e6);
    expect(await metricValue(tg.app, 'tiergate_fallback_total', { tier: 'weak' })).toBe(before + 1); // the fallback-share alert's numerator
  });

  it('embeddings (routed without classification) get a row with their usage', async () => {
    const s = tg.pool.open();
    await s.sendRequestHeaders(postHeaders('/v1/embeddings', [['x-request-id', 'emb']]), false);
    await s.sendRequestBody(jsonBody({ model: 'text-embedding-3-small', input: 'hello' }));
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await s.sendResponseBody(jsonBody({ object: 'list', data: [], model: 'text-embedding-3-small', usage: { prompt_tokens: 7, total_tokens: 7 } }), true);
    s.close();
    const row = await rowFor(tg, 'emb');
    expect(row).toMatchObject({ path: '/v1/embeddings', status: 'success', usage: { input_tokens: 7, total_tokens: 7 }, cost_usd: null });
    // Timed from the body's last piece, passed on unread, as a chat request is from its body's answer.
    expect(row.latency_ms.ttft).toBeGreaterThanOrEqual(0);
    expect(row.latency_ms.provider).toBeGreaterThanOrEqual(row.latency_ms.ttft ?? Infinity);
    expect(row.latency_ms.total).toBeGreaterThanOrEqual(row.latency_ms.provider ?? Infinity);
  });

  it("audio: a chat answer's audio tokens at the model's audio prices, a model without them unpriced rather than priced as text", async () => {
    const t = await startTiergate({
      prices: {
        version: 'audio-1',
        models: {
          'strong-model': { input: 2.5, output: 10, audioInput: 32, audioOutput: 64 },
          'weak-model': { input: 0.1, output: 0.4 }, // no audio prices
        },
      },
    });
    try {
      // OpenAI's shape for an audio model's answer: the audio parts of the counts in their details.
      const usage = { prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500, prompt_tokens_details: { cached_tokens: 0, audio_tokens: 800 }, completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 400 } };
      const answered = async (id: string, model: string, spent: unknown = usage) => {
        const s = await routed(t, { headers: [['x-request-id', id]], body: { model } });
        await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
        await s.sendResponseBody(chatJson(model, spent), true);
        s.close();
        return { metadata: s.dynamicMetadata.tiergate, row: await rowFor(t, id) };
      };
      const priced = await answered('audio-priced', 'strong-model');
      // input: 200 text × 2.5 + 800 audio × 32; output: 100 text × 10 + 400 audio × 64 (per million).
      expect(priced.row).toMatchObject({
        usage: { input_tokens: 1000, output_tokens: 500, audio_input_tokens: 800, audio_output_tokens: 400, audio_seconds: 0 },
        cost_usd: { input: 0.0261, output: 0.0266, total: 0.0527, price_table_version: 'audio-1' },
      });
      expect(priced.metadata?.cost_usd).toBe(0.0527); // Envoy's access log prices it the same
      // All as text it would have been 0.0075, a seventh of the bill; so a model without audio prices is left unpriced.
      const unpriced = await answered('audio-unpriced', 'weak-model');
      expect(unpriced.row).toMatchObject({ cost_usd: null, usage: { audio_input_tokens: 800 } });
      expect(unpriced.metadata?.cost_usd).toBeUndefined();
      expect(await metricValue(t.app, 'tiergate_unpriced_requests_total', { reason: 'price' })).toBe(1);
      const logged = logEvents(t.logs, 'ledger.unpriced_model');
      expect(logged).toEqual([expect.objectContaining({ model: 'weak-model', audio: true })]);
      expect(await metricValue(t.app, 'tiergate_tokens_total', { kind: 'audio_input' })).toBe(1600);
      expect(await metricValue(t.app, 'tiergate_tokens_total', { kind: 'audio_output' })).toBe(800);
      // A text answer from the same model is priced as before, and its row says it had no audio.
      const text = await answered('audio-none', 'weak-model', USAGE);
      expect(text.row).toMatchObject({ cost_usd: { total: 0.0003 }, usage: { audio_input_tokens: 0, audio_output_tokens: 0, audio_seconds: 0 } });
    } finally {
      await t.stop();
    }
  });

  it('audio: transcriptions on unclassified paths, billed by audio tokens or by the minute, as JSON or streamed', async () => {
    const t = await startTiergate({
      tiers: { weak: { model: 'weak-model' }, strong: { model: 'strong-model' }, stt: { model: 'gpt-4o-transcribe' }, whisper: { model: 'whisper-1' } },
      routing: { unclassifiedPaths: { '/v1/embeddings': {}, '/v1/audio/transcriptions': { tier: 'stt' }, '/v1/audio/translations': { tier: 'whisper' } } },
      prices: { version: 'audio-2', models: { 'gpt-4o-transcribe': { input: 2.5, output: 10, audioInput: 6 }, 'whisper-1': { audioMinute: 0.006 } } },
    });
    try {
      const transcribed = async (id: string, path: string, contentType: string, body: string) => {
        const s = t.pool.open();
        const headers = postHeaders(path, [['x-request-id', id]]).map(([k, v]): [string, string] => [k, k === 'content-type' ? 'multipart/form-data; boundary=x' : v]);
        await s.sendRequestHeaders(headers, false);
        expect(getHeader(s.requestHeaders, 'x-llm-tier')).toBe(path.endsWith('translations') ? 'whisper' : 'stt');
        await s.sendRequestBody(Buffer.from('--x\r\ncontent-disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF\r\n--x--\r\n'));
        await s.sendResponseHeaders([[':status', '200'], ['content-type', contentType]], false);
        await s.sendResponseBody(Buffer.from(body), true);
        s.close();
        return rowFor(t, id);
      };
      // gpt-4o-transcribe: 1,000 input tokens, 900 of them audio; 300 output tokens.
      const tokens = { type: 'tokens', input_tokens: 1000, input_token_details: { text_tokens: 100, audio_tokens: 900 }, output_tokens: 300, total_tokens: 1300 };
      const json = await transcribed('stt-json', '/v1/audio/transcriptions', 'application/json', JSON.stringify({ text: 'hello', usage: tokens }));
      // 100 × 2.5 + 900 × 6 input, 300 × 10 output, per million.
      expect(json).toMatchObject({ tier: 'stt', model_resolved: 'gpt-4o-transcribe', usage_source: 'reported', usage: { input_tokens: 1000, audio_input_tokens: 900, output_tokens: 300 }, cost_usd: { input: 0.00565, output: 0.003, total: 0.00865 } });
      // Streamed (stream=true in the form): the usage comes in the last event.
      const events = sseChunk({ type: 'transcript.text.delta', delta: 'hel' }) + sseChunk({ type: 'transcript.text.delta', delta: 'lo' }) + sseChunk({ type: 'transcript.text.done', text: 'hello', usage: tokens });
      expect(await transcribed('stt-sse', '/v1/audio/transcriptions', 'text/event-stream', events)).toMatchObject({ usage_source: 'reported', usage: { audio_input_tokens: 900 }, cost_usd: { total: 0.00865 } });
      // whisper-1 reports the seconds of audio, not tokens: 150 s at $0.006 a minute.
      const duration = await transcribed('whisper', '/v1/audio/translations', 'application/json', JSON.stringify({ text: 'hello', usage: { type: 'duration', seconds: 150 } }));
      expect(duration).toMatchObject({ tier: 'whisper', usage_source: 'reported', usage: { input_tokens: 0, output_tokens: 0, audio_seconds: 150 }, cost_usd: { input: 0.015, output: 0, total: 0.015 } });
    } finally {
      await t.stop();
    }
  });

  it('usage nobody could measure is unpriced, not $0: a request tiergate does not read, an answer it cannot read', async () => {
    const t = await startTiergate({
      tiers: { weak: { model: 'weak-model' }, strong: { model: 'strong-model' }, whisper: { model: 'whisper-1' }, moderation: { model: 'omni-moderation-latest' } },
      routing: { unclassifiedPaths: { '/v1/embeddings': { tier: 'weak' }, '/v1/audio/transcriptions': { tier: 'whisper' }, '/v1/moderations': { tier: 'moderation' } } },
      prices: { version: 'unmeasured-1', models: { 'weak-model': { input: 0.1, output: 0.4 }, 'whisper-1': { audioMinute: 0.006 }, 'omni-moderation-latest': { input: 0, output: 0 } } },
    });
    try {
      const answered = async (id: string, path: string, contentType: string, body: string, encoding?: string) => {
        const s = t.pool.open();
        await s.sendRequestHeaders(postHeaders(path, [['x-request-id', id]]), false);
        await s.sendRequestBody(Buffer.from('(a body tiergate does not read on this path)'));
        await s.sendResponseHeaders([[':status', '200'], ['content-type', contentType], ...(encoding ? [['content-encoding', encoding] as [string, string]] : [])], false);
        await s.sendResponseBody(Buffer.from(body), true);
        s.close();
        return rowFor(t, id);
      };
      // whisper-1 asked for a plain-text transcript: no usage, and neither the upload nor the text says how long the audio was.
      expect(await answered('text-transcript', '/v1/audio/transcriptions', 'text/plain; charset=utf-8', 'hello there')).toMatchObject({
        status: 'success',
        usage_source: 'estimated',
        usage: { input_tokens: 0, output_tokens: 0, audio_seconds: 0 },
        cost_usd: null,
      });
      // An embeddings backend that reports no usage: the input it embedded was never counted.
      expect(await answered('embeddings-no-usage', '/v1/embeddings', 'application/json', JSON.stringify({ object: 'list', data: [], model: 'weak-model' }))).toMatchObject({ usage_source: 'estimated', cost_usd: null });
      // An endpoint the provider does not charge for, priced at 0: it costs nothing, whatever was not seen.
      expect(await answered('moderation', '/v1/moderations', 'application/json', JSON.stringify({ id: 'modr-1', model: 'omni-moderation-latest', results: [] }))).toMatchObject({
        usage_source: 'estimated',
        cost_usd: { total: 0, price_table_version: 'unmeasured-1' },
      });
      // A request without a body (a GET) held nothing to bill: its zeros are zeros.
      const get = t.pool.open();
      await get.sendRequestHeaders(postHeaders('/v1/embeddings', [['x-request-id', 'bodiless']]).map(([k, v]): [string, string] => [k, k === ':method' ? 'GET' : v]), true);
      await get.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      await get.sendResponseBody(Buffer.from(JSON.stringify({ object: 'list', data: [] })), true);
      get.close();
      expect(await rowFor(t, 'bodiless')).toMatchObject({ usage_source: 'estimated', cost_usd: { total: 0 } });
      // A chat answer in a coding tiergate cannot undo: the prompt was counted, what was generated was not.
      const s = await routed(t, { headers: [['x-request-id', 'unreadable-answer']] });
      await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json'], ['content-encoding', 'x-unknown']], false);
      await s.sendResponseBody(Buffer.from('(encoded)'), true);
      s.close();
      const unreadable = await rowFor(t, 'unreadable-answer');
      expect(unreadable).toMatchObject({ usage_source: 'estimated', cost_usd: null });
      expect(unreadable.usage.input_tokens).toBeGreaterThan(0);
      // A JSON answer that does not parse (cut short on its way): what it generated was not seen either. Before
      // 2026-12-06 it was priced as its prompt alone, where an HTML page in its place was unpriced.
      const broken = await routed(t, { headers: [['x-request-id', 'broken-json']] });
      await broken.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      await broken.sendResponseBody(Buffer.from('{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"content":"Hel'), true);
      broken.close();
      expect(await rowFor(t, 'broken-json')).toMatchObject({ status: 'success', usage_source: 'estimated', usage: { output_tokens: 0 }, cost_usd: null });
      // A backend that reports a total and no split: the total counts (the budget takes it), the split that prices
      // it was never reported. Before, its 0 in and 0 out priced it at $0.
      const totalOnly = await routed(t, { headers: [['x-request-id', 'total-only']] });
      await totalOnly.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      await totalOnly.sendResponseBody(jsonBody({ id: 'c1', object: 'chat.completion', model: 'weak-model', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { total_tokens: 15 } }), true);
      totalOnly.close();
      expect(await rowFor(t, 'total-only')).toMatchObject({ usage_source: 'reported', usage: { input_tokens: 0, output_tokens: 0, total_tokens: 15 }, cost_usd: null });
      expect(await metricValue(t.app, 'tiergate_unpriced_requests_total', { reason: 'unmeasured' })).toBe(5);
      expect(await metricValue(t.app, 'tiergate_unpriced_requests_total', { reason: 'price' })).toBe(0);
      // Each logged as what was not seen (these models have prices), never as an unpriced model.
      const logged = t.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => String(l.event).startsWith('ledger.un'));
      expect(logged).toEqual([
        expect.objectContaining({ event: 'ledger.unmeasured_usage', path: '/v1/audio/transcriptions', model: 'whisper-1', unmeasured: 'request_and_answer' }),
        expect.objectContaining({ event: 'ledger.unmeasured_usage', path: '/v1/embeddings', model: 'weak-model', unmeasured: 'request' }),
        expect.objectContaining({ event: 'ledger.unmeasured_usage', path: '/v1/chat/completions', model: 'weak-model', unmeasured: 'answer' }),
        expect.objectContaining({ event: 'ledger.unmeasured_usage', path: '/v1/chat/completions', model: 'weak-model', unmeasured: 'request_and_answer' }),
      ]);
    } finally {
      await t.stop();
    }
  });

  it('a row that names no model is unmeasured, not a model without a price: an embeddings path routed to no tier', async () => {
    // The default routing: /v1/embeddings goes to Envoy's catch-all route, so only the answer can name its model.
    const t = await startTiergate({});
    try {
      const embeddings = async (id: string) => {
        const s = t.pool.open();
        await s.sendRequestHeaders(postHeaders('/v1/embeddings', [['x-request-id', id]]), false);
        await s.sendRequestBody(jsonBody({ model: 'text-embedding-3-small', input: 'hello' }));
        return s;
      };
      // Cancelled before its answer (the client left, or Envoy shut down): nothing named the model.
      const gone = await embeddings('no-answer');
      gone.cancel();
      // An answer that names no model and reports no usage (some embedding servers).
      const bare = await embeddings('no-model');
      await bare.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      await bare.sendResponseBody(jsonBody({ object: 'list', data: [] }), true);
      bare.close();
      for (const id of ['no-answer', 'no-model']) expect(await rowFor(t, id)).toMatchObject({ model_resolved: null, usage_source: 'estimated', cost_usd: null });
      // No price could be added for "(none)": the alert's reason and the log say what was not seen instead.
      expect(await metricValue(t.app, 'tiergate_unpriced_requests_total', { reason: 'unmeasured' })).toBe(2);
      expect(await metricValue(t.app, 'tiergate_unpriced_requests_total', { reason: 'price' })).toBe(0);
      expect(logEvents(t.logs, 'ledger.unpriced_model')).toEqual([]);
      expect(logEvents(t.logs, 'ledger.unmeasured_usage')).toEqual([expect.objectContaining({ path: '/v1/embeddings', model: '(none)', unmeasured: 'request' })]);
    } finally {
      await t.stop();
    }
  });

  it('speech: tts-1 priced by the characters of its input, gpt-4o-mini-tts by its audio tokens, an audio answer without usage unpriced', async () => {
    const tiergateFor = (model: string) =>
      startTiergate({
        tiers: { weak: { model: 'weak-model' }, strong: { model: 'strong-model' }, tts: { model } },
        routing: { unclassifiedPaths: { '/v1/embeddings': {}, '/v1/audio/speech': { tier: 'tts' } } },
        prices: { version: 'speech-1', models: { 'tts-1': { characters: 15 }, 'gpt-4o-mini-tts': { input: 0.6, output: 12, audioOutput: 12 } } },
      });
    // 12 code points: the emoji is one character, though two UTF-16 units (input.length is 13).
    const input = 'Hello, 세상! 👋';
    const instructions = 'Speak warmly.';
    const spoken = async (t: TestTiergate, id: string, request: Buffer, contentType: string, answer: string, status = 200) => {
      const s = t.pool.open();
      await s.sendRequestHeaders(postHeaders('/v1/audio/speech', [['x-request-id', id]]), false);
      expect(getHeader(s.requestHeaders, 'x-llm-tier')).toBe('tts');
      // The body goes on as it came: tiergate only reads it.
      const o = await s.sendRequestBody(request);
      expect(o.kind).toBe('continue');
      expect(o.kind === 'continue' && o.body).toBeFalsy();
      await s.sendResponseHeaders([[':status', String(status)], ['content-type', contentType]], false);
      await s.sendResponseBody(Buffer.from(answer), true);
      s.close();
      const row = await rowFor(t, id);
      // Envoy's metadata prices reported usage as the row does, the characters spoken included (before
      // 2026-12-06 it left them out).
      if (row.usage_source === 'reported') expect(s.dynamicMetadata.tiergate?.cost_usd).toBe(row.cost_usd?.total);
      return row;
    };
    expect(input.length).toBe(13);
    const request = jsonBody({ model: 'tts-1', input, voice: 'alloy', instructions });
    const promptTokens = await countTokensOfAll([input, instructions]);
    const tts1 = await tiergateFor('tts-1');
    try {
      // The default answer is the audio itself, with no usage: the request says what tts-1 bills.
      expect(await spoken(tts1, 'tts-1', request, 'audio/mpeg', 'ID3(mp3 frames)')).toMatchObject({
        tier: 'tts',
        model_resolved: 'tts-1',
        usage_source: 'estimated',
        usage: { input_characters: 12, input_tokens: promptTokens, output_tokens: 0 },
        cost_usd: { input: (12 * 15) / 1e6, output: 0, total: (12 * 15) / 1e6 },
      });
      // An answer that reports tokens (as SSE): tts-1 bills the characters all the same.
      const reported = sseChunk({ type: 'speech.audio.done', usage: { input_tokens: 14, output_tokens: 100, total_tokens: 114 } });
      expect(await spoken(tts1, 'tts-1-sse', request, 'text/event-stream', reported)).toMatchObject({ usage_source: 'reported', cost_usd: { total: (12 * 15) / 1e6 } });
      // A body that is not a speech request: nothing to count it by, so unpriced rather than $0.
      expect(await spoken(tts1, 'tts-1-unread', Buffer.from('not json'), 'audio/mpeg', 'ID3')).toMatchObject({ usage: { input_characters: 0 }, cost_usd: null });
      expect(await metricValue(tts1.app, 'tiergate_unpriced_requests_total')).toBe(1);
      // Refused: nothing was spoken, so no characters are billed.
      const refused = await spoken(tts1, 'tts-1-refused', request, 'application/json', JSON.stringify({ error: { message: 'no', type: 'invalid_request_error', code: 'invalid_value' } }), 400);
      expect(refused).toMatchObject({ status: 'upstream_error', usage_source: 'none', usage: { input_characters: 0 }, cost_usd: { total: 0 } });
    } finally {
      await tts1.stop();
    }
    const mini = await tiergateFor('gpt-4o-mini-tts');
    try {
      // Asked for as SSE (stream_format: "sse"), the last event reports the tokens; what it generated is audio.
      const events = sseChunk({ type: 'speech.audio.delta', audio: 'SUQz' }) + sseChunk({ type: 'speech.audio.done', usage: { input_tokens: 14, output_tokens: 1000, total_tokens: 1014 } });
      expect(await spoken(mini, 'mini-sse', request, 'text/event-stream', events)).toMatchObject({
        usage_source: 'reported',
        usage: { input_tokens: 14, output_tokens: 1000, audio_output_tokens: 1000, input_characters: 12 },
        cost_usd: { input: 0.0000084, output: 0.012, total: 0.0120084 },
      });
      // The audio itself: the text is counted, the audio it bills for is not known.
      expect(await spoken(mini, 'mini-audio', request, 'audio/mpeg', 'ID3')).toMatchObject({ usage_source: 'estimated', usage: { input_tokens: promptTokens }, cost_usd: null });
      const logged = mini.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => String(l.event).startsWith('ledger.un'));
      expect(logged).toEqual([expect.objectContaining({ event: 'ledger.unmeasured_usage', path: '/v1/audio/speech', model: 'gpt-4o-mini-tts', unmeasured: 'answer' })]);
    } finally {
      await mini.stop();
    }
  });

  it("images: an image model's image tokens at its image prices, on an unclassified path", async () => {
    const t = await startTiergate({
      tiers: { weak: { model: 'weak-model' }, strong: { model: 'strong-model' }, image: { model: 'gpt-image-1' } },
      routing: { unclassifiedPaths: { '/v1/embeddings': {}, '/v1/images/edits': { tier: 'image' } } },
      prices: { version: 'image-1', models: { 'gpt-image-1': { input: 5, output: 40, imageInput: 10 } } },
    });
    try {
      const s = t.pool.open();
      await s.sendRequestHeaders(postHeaders('/v1/images/edits', [['x-request-id', 'edit']]), false);
      await s.sendRequestBody(Buffer.from('(a multipart body with two images)'));
      await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      // gpt-image-1's usage: 1,200 input tokens, 1,000 of them the images edited; 4,160 output tokens, the image.
      const usage = { input_tokens: 1200, input_tokens_details: { text_tokens: 200, image_tokens: 1000 }, output_tokens: 4160, total_tokens: 5360 };
      await s.sendResponseBody(jsonBody({ created: 1, data: [{ b64_json: 'iVBORw0KGgo=' }], usage }), true);
      s.close();
      // 200 × 5 + 1,000 × 10 input, 4,160 × 40 output, per million.
      expect(await rowFor(t, 'edit')).toMatchObject({ tier: 'image', usage_source: 'reported', usage: { input_tokens: 1200, image_input_tokens: 1000, image_output_tokens: 0, output_tokens: 4160 }, cost_usd: { input: 0.011, output: 0.1664, total: 0.1774 } });
      expect(await metricValue(t.app, 'tiergate_tokens_total', { kind: 'image_input' })).toBe(1000);
    } finally {
      await t.stop();
    }
  });

  it('the end user is stored only as a hash', async () => {
    const s = await routed(tg, { headers: [['x-request-id', 'user']], body: { user: 'alice@example.com' } });
    s.close();
    const row = await rowFor(tg, 'user');
    expect(row.user_id_hash).toBe(createHash('sha256').update('alice@example.com').digest('hex'));
    expect(JSON.stringify(row)).not.toContain('alice');
  });

  it('header text a client wrote in UTF-8 is stored as that text, and one user has one hash whichever names them', async () => {
    // Envoy hands over a header's bytes as they came: UTF-8 from curl or Go for "결제" and "김철수".
    const asSent = (text: string) => Buffer.from(text, 'utf8').toString('latin1');
    let s = await routed(tg, { headers: [['x-request-id', 'utf8-header'], ['x-feature-id', asSent('결제')], ['x-user-id', asSent('김철수')]] });
    s.close();
    s = await routed(tg, { headers: [['x-request-id', 'utf8-body']], body: { user: '김철수' } });
    s.close();
    // A value that is not UTF-8 (a latin1 "café", one byte for é) stays as its bytes read.
    s = await routed(tg, { headers: [['x-request-id', 'latin1-header'], ['x-feature-id', 'caf\u00e9']] });
    s.close();
    const [fromHeader, fromBody, latin1] = await Promise.all(['utf8-header', 'utf8-body', 'latin1-header'].map((id) => rowFor(tg, id)));
    expect(fromHeader?.feature_id).toBe('결제');
    expect(fromHeader?.user_id_hash).toBe(createHash('sha256').update('김철수').digest('hex'));
    expect(fromBody?.user_id_hash).toBe(fromHeader?.user_id_hash);
    expect(latin1?.feature_id).toBe('café');
  });

  it('an empty feature or user header names nothing: no feature, and the body\'s user names the user', async () => {
    const s = await routed(tg, { headers: [['x-request-id', 'empty-headers'], ['x-feature-id', ''], ['x-user-id', '']], body: { user: 'bob' } });
    s.close();
    const row = await rowFor(tg, 'empty-headers');
    expect(row.feature_id).toBeNull();
    expect(row.user_id_hash).toBe(createHash('sha256').update('bob').digest('hex'));
  });

  it('counts tokens and cost in metrics', async () => {
    expect(await metricValue(tg.app, 'tiergate_tokens_total', { tier: 'strong', kind: 'cached_input' })).toBeGreaterThanOrEqual(1000);
    expect(await metricValue(tg.app, 'tiergate_usage_total', { source: 'estimated' })).toBeGreaterThan(0);
    expect(await metricValue(tg.app, 'tiergate_ledger_rows_total', { sink: 'memory', result: 'written' })).toBeGreaterThan(0);
  });

  it('prices reload with the config: new streams are priced by the new table and carry its version', async () => {
    const t = await startTiergate();
    try {
      const price = async (id: string) => {
        const s = await routed(t, { headers: [['x-request-id', id]] });
        await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
        await s.sendResponseBody(chatJson('weak-model'), true);
        s.close();
        return (await rowFor(t, id)).cost_usd;
      };
      expect(await price('before')).toMatchObject({ total: 0.0003, price_table_version: 'embedded-defaults' });
      const ok = await t.app.config.apply('prices: { version: "2026-12", models: { weak-model: { input: 1, output: 2 } } }\n', {}, t.app.reloadListener);
      expect(ok).toBe(true);
      // 1000 × 1e-6 + 500 × 2e-6
      expect(await price('after')).toEqual({ input: 0.001, output: 0.001, total: 0.002, price_table_version: '2026-12' });
    } finally {
      await t.stop();
    }
  });
});
