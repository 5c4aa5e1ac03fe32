// With tracing on, every stream gets a span and every pipeline stage a child span; with it off, none are
// recorded. The stream's span hangs under Envoy's ext_proc client span when the side stream's gRPC metadata
// carries its context, else under the request's own; the ledger row names that trace.
import { propagation, SpanKind, trace } from '@opentelemetry/api';
import { CompositePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3Propagator } from '@opentelemetry/propagator-b3';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenAiEmbedder } from '../../src/cache/embedders/openai-embedder.js';
import { setTracingEnabled, tracingRequested, w3cTraceId } from '../../src/telemetry/tracing.js';
import { hrTimeToMilliseconds } from '@opentelemetry/core';
import { chatRequestHeaders, postHeaders, type Headers } from '../../src/dev/envoy-client.js';
import { jsonBody, rowFor, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

const exporter = new InMemorySpanExporter();
let tg: TestTiergate;
beforeAll(async () => {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  // What the SDK sets up from OTEL_PROPAGATORS=tracecontext,b3 (its default is tracecontext and baggage).
  propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new B3Propagator()] }));
  tg = await startTiergate();
});
afterAll(async () => {
  setTracingEnabled(false);
  propagation.disable();
  await tg.stop();
});

async function oneRequest(content: string, requestId = 'trace-me', opts: { headers?: Headers; metadata?: Headers } = {}) {
  const s = tg.pool.open(undefined, opts.metadata);
  await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', requestId], ...(opts.headers ?? [])]), false);
  await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content }] }));
  s.close();
}

/** Every finished span of the request whose stream span has this x-request-id: the stream span first. */
async function spansOf(requestId: string): Promise<{ stream: ReadableSpan; stages: ReadableSpan[] }> {
  let stream: ReadableSpan | undefined;
  await expect.poll(() => (stream = exporter.getFinishedSpans().find((s) => s.name === 'ext_proc stream' && s.attributes['tiergate.request_id'] === requestId))).toBeDefined();
  const traceId = (stream as ReadableSpan).spanContext().traceId;
  const stages = exporter.getFinishedSpans().filter((s) => s.name.startsWith('stage ') && s.spanContext().traceId === traceId);
  return { stream: stream as ReadableSpan, stages };
}

// Envoy's ext_proc client span, and a client's span before Envoy: two different traces, so that which one
// tiergate's span joined is visible.
const ENVOY_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const ENVOY_SPAN = '00f067aa0ba902b7';
const CLIENT_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CLIENT_SPAN = 'b7ad6b7169203331';
const ENVOY_TRACEPARENT = `00-${ENVOY_TRACE}-${ENVOY_SPAN}-01`;
const CLIENT_TRACEPARENT = `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`;

describe('tracing', () => {
  it('records a span per stream and per stage when enabled', async () => {
    setTracingEnabled(true);
    await oneRequest('please debug this');
    await expect.poll(() => exporter.getFinishedSpans().map((s) => s.name)).toContain('ext_proc stream');
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(expect.arrayContaining(['stage parse', 'stage classify', 'stage policy', 'stage budget', 'stage route', 'ext_proc stream']));
    const stream = spans.find((s) => s.name === 'ext_proc stream');
    expect(stream?.attributes).toMatchObject({ 'tiergate.request_id': 'trace-me', 'tiergate.tier': 'strong', 'tiergate.outcome': 'routed' });
    // Attributes carry no prompt text.
    expect(JSON.stringify(spans.map((s) => s.attributes))).not.toContain('debug this');
  });

  it('puts every stage span under its stream span, in one trace', async () => {
    setTracingEnabled(true);
    await oneRequest('please debug this', 'trace-tree');
    const { stream, stages } = await spansOf('trace-tree');
    expect(stream.kind).toBe(SpanKind.SERVER);
    // No trace context anywhere: a new trace, with the stream span as its root.
    expect(stream.parentSpanContext).toBeUndefined();
    expect(stages.map((s) => s.name)).toEqual(expect.arrayContaining(['stage parse', 'stage classify', 'stage policy', 'stage budget', 'stage route']));
    for (const s of stages) expect(s.parentSpanContext?.spanId).toBe(stream.spanContext().spanId);
  });

  it("hangs the stream span under Envoy's ext_proc client span from the call's gRPC metadata, over the request's", async () => {
    setTracingEnabled(true);
    await oneRequest('hi', 'trace-envoy', { metadata: [['traceparent', ENVOY_TRACEPARENT]], headers: [['traceparent', CLIENT_TRACEPARENT]] });
    const { stream, stages } = await spansOf('trace-envoy');
    expect(stream.spanContext().traceId).toBe(ENVOY_TRACE);
    expect(stream.parentSpanContext?.spanId).toBe(ENVOY_SPAN);
    expect(stages.length).toBeGreaterThanOrEqual(5);
    expect((await rowFor(tg, 'trace-envoy')).trace_id).toBe(ENVOY_TRACE);
  });

  it("hangs it under the request's own trace context when Envoy sent none", async () => {
    setTracingEnabled(true);
    await oneRequest('hi', 'trace-client', { headers: [['traceparent', CLIENT_TRACEPARENT]] });
    const { stream } = await spansOf('trace-client');
    expect(stream.spanContext().traceId).toBe(CLIENT_TRACE);
    expect(stream.parentSpanContext?.spanId).toBe(CLIENT_SPAN);
    expect((await rowFor(tg, 'trace-client')).trace_id).toBe(CLIENT_TRACE);
  });

  it("traces the semantic cache's call to the embeddings endpoint under the stream span, and sends it the context", async () => {
    const seen: Array<string | undefined> = [];
    const server = createServer((req, res) => {
      seen.push(req.headers.traceparent as string | undefined);
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: [{ index: 0, embedding: [1, 0, 0] }] })));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    const semantic = await startTiergate({ tenants: { '*': { cache: { mode: 'semantic' } } } }, {}, { embedder: new OpenAiEmbedder({ url, model: 'e5', apiKey: undefined, timeoutMs: 2000, maxConcurrency: 4 }) });
    try {
      setTracingEnabled(true);
      const s = semantic.pool.open(undefined, [['traceparent', ENVOY_TRACEPARENT]]);
      await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'trace-embed']]), false);
      await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'What is the capital of France?' }] }));
      s.close();
      const { stream } = await spansOf('trace-embed');
      const call = exporter.getFinishedSpans().find((x) => x.name === 'embeddings POST' && x.spanContext().traceId === ENVOY_TRACE);
      expect(call?.kind).toBe(SpanKind.CLIENT);
      expect(call?.parentSpanContext?.spanId).toBe(stream.spanContext().spanId);
      expect(seen[0]).toBe(`00-${ENVOY_TRACE}-${call?.spanContext().spanId}-01`);
      // Tracing off: nothing is sent.
      setTracingEnabled(false);
      const off = semantic.pool.open(undefined, [['traceparent', ENVOY_TRACEPARENT]]);
      await off.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'trace-embed-off']]), false);
      await off.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'What is the capital of Spain?' }] }));
      off.close();
      await expect.poll(() => seen.length).toBe(2);
      expect(seen[1]).toBeUndefined();
    } finally {
      await semantic.stop();
      server.close();
    }
  });

  it("reads the context with the configured propagator: Envoy's B3 headers", async () => {
    setTracingEnabled(true);
    await oneRequest('hi', 'trace-b3', { metadata: [['x-b3-traceid', ENVOY_TRACE], ['x-b3-spanid', ENVOY_SPAN], ['x-b3-sampled', '1']] });
    const { stream } = await spansOf('trace-b3');
    expect(stream.spanContext().traceId).toBe(ENVOY_TRACE);
    expect(stream.parentSpanContext?.spanId).toBe(ENVOY_SPAN);
  });

  it('starts a new trace when the context it was given is not a valid one', async () => {
    setTracingEnabled(true);
    await oneRequest('hi', 'trace-bad', { metadata: [['traceparent', `00-${'0'.repeat(32)}-${ENVOY_SPAN}-01`]], headers: [['traceparent', 'garbage']] });
    const { stream } = await spansOf('trace-bad');
    expect(stream.parentSpanContext).toBeUndefined();
    expect(stream.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
    expect((await rowFor(tg, 'trace-bad')).trace_id).toBe(stream.spanContext().traceId);
  });

  it('records nothing when disabled', async () => {
    setTracingEnabled(false);
    exporter.reset();
    await oneRequest('hi');
    await new Promise((r) => setTimeout(r, 50));
    expect(exporter.getFinishedSpans()).toEqual([]);
  });

  it("names Envoy's trace, else the request's, in the ledger row with tracing off", async () => {
    setTracingEnabled(false);
    await oneRequest('hi', 'row-envoy', { metadata: [['traceparent', ENVOY_TRACEPARENT]], headers: [['traceparent', CLIENT_TRACEPARENT]] });
    await oneRequest('hi', 'row-client', { headers: [['traceparent', CLIENT_TRACEPARENT]] });
    await oneRequest('hi', 'row-none');
    await oneRequest('hi', 'row-bad', { headers: [['traceparent', `00-${CLIENT_TRACE}-${'0'.repeat(16)}-01`]] });
    expect((await rowFor(tg, 'row-envoy')).trace_id).toBe(ENVOY_TRACE);
    expect((await rowFor(tg, 'row-client')).trace_id).toBe(CLIENT_TRACE);
    expect((await rowFor(tg, 'row-none')).trace_id).toBeNull();
    expect((await rowFor(tg, 'row-bad')).trace_id).toBeNull();
  });

  it("puts the trace on the request's log lines", async () => {
    setTracingEnabled(false);
    const s = tg.pool.open(undefined, [['traceparent', ENVOY_TRACEPARENT]]);
    await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'log-trace']]), false);
    await s.sendRequestBody(Buffer.from('{not json'));
    s.close();
    await expect.poll(() => tg.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.request_id === 'log-trace' && e.event === 'request.rejected')).toMatchObject({ trace_id: ENVOY_TRACE });
  });

  it.each([
    [ENVOY_TRACEPARENT, ENVOY_TRACE],
    [`00-${ENVOY_TRACE}-${ENVOY_SPAN}-01-future`, ENVOY_TRACE],
    [`ff-${ENVOY_TRACE}-${ENVOY_SPAN}-01`, null],
    [`00-${'0'.repeat(32)}-${ENVOY_SPAN}-01`, null],
    [`00-${ENVOY_TRACE.toUpperCase()}-${ENVOY_SPAN}-01`, null],
    [`00-${ENVOY_TRACE}-${ENVOY_SPAN}`, null],
    ['', null],
  ])('traceparent %j → trace id %j', (tp, id) => {
    expect(w3cTraceId(tp)).toBe(id);
  });

  it.each([
    [{}, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, true],
    [{ OTEL_TRACES_EXPORTER: 'console' }, true],
    [{ OTEL_TRACES_EXPORTER: 'none' }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }, false],
  ])('OTEL_* %j → tracing %s', (env, on) => {
    expect(tracingRequested(env)).toBe(on);
  });
});

// The stream span ends when the request's ledger row is built, carrying the row's model, tokens, cost and error
// under OpenTelemetry's GenAI names, and the stream's own end time. This tiergate builds its rows late (a long
// linger, and 5× that when traffic stops), so a span ended at build time would be seconds longer than the request.
describe('the stream span carries its row', () => {
  let late: TestTiergate;
  beforeAll(async () => {
    late = await startTiergate({ ledger: { lingerMs: 200 } });
  });
  afterAll(async () => {
    setTracingEnabled(false);
    await late.stop();
  });

  const durationMs = (s: ReadableSpan) => hrTimeToMilliseconds(s.duration);
  /** A request on `path` with this id and body, sent to the late-building tiergate; the session, still open. */
  async function sent(requestId: string, body: Buffer, path = '/v1/chat/completions') {
    const s = late.pool.open();
    await s.sendRequestHeaders(postHeaders(path, [['x-request-id', requestId]]), false);
    await s.sendRequestBody(body);
    return s;
  }
  /** The stream span, once the row's batch (up to 5 lingers after the stream) has ended it. */
  async function streamSpan(requestId: string): Promise<ReadableSpan> {
    let span: ReadableSpan | undefined;
    await expect.poll(() => (span = exporter.getFinishedSpans().find((x) => x.name === 'ext_proc stream' && x.attributes['tiergate.request_id'] === requestId)), { timeout: 5000 }).toBeDefined();
    return span as ReadableSpan;
  }

  it('a routed chat answer: operation, models, reported tokens, cost, tenant; ended when the stream ended', async () => {
    setTracingEnabled(true);
    const s = await sent('genai-json', jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'secret prompt words' }] }));
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    const usage = { prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500, prompt_tokens_details: { cached_tokens: 200 }, completion_tokens_details: { reasoning_tokens: 100 } };
    await s.sendResponseBody(jsonBody({ id: 'c1', object: 'chat.completion', model: 'weak-model-2026-01-01', choices: [{ index: 0, message: { role: 'assistant', content: 'secret answer words' }, finish_reason: 'length' }], usage }), true);
    s.close();
    const span = await streamSpan('genai-json');
    const row = await rowFor(late, 'genai-json');
    expect(span.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai-compatible',
      'gen_ai.request.model': 'weak-model',
      'tiergate.model_alias': 'auto',
      'gen_ai.response.model': 'weak-model-2026-01-01',
      'gen_ai.response.finish_reasons': ['length'],
      'gen_ai.usage.input_tokens': 1000,
      'gen_ai.usage.output_tokens': 500,
      'gen_ai.usage.cache_read.input_tokens': 200,
      'gen_ai.usage.reasoning.output_tokens': 100,
      'tiergate.usage_source': 'reported',
      'tiergate.cost_usd': row.cost_usd?.total,
      'tiergate.tenant': 'default',
      'tiergate.tier': 'weak',
      'tiergate.outcome': 'routed',
      // The stream's own facts (README "Tracing"): its path, the answer's status and the time to its first byte.
      'url.path': '/v1/chat/completions',
      'http.response.status_code': 200,
    });
    expect(span.attributes['tiergate.ttft_ms']).toBeCloseTo(row.latency_ms.ttft as number, 2);
    expect(row.cost_usd?.total).toBeGreaterThan(0);
    expect(span.attributes['error.type']).toBeUndefined();
    // The span began after the stream's accounting did and ended at the same moment: never longer than the row's
    // total, although the row was built some hundreds of ms later.
    expect(durationMs(span)).toBeLessThanOrEqual(row.latency_ms.total + 0.01);
    expect(JSON.stringify(span.attributes)).not.toMatch(/secret/);
  });

  it('a stream without usage: the estimate, named as one', async () => {
    setTracingEnabled(true);
    const s = await sent('genai-sse', jsonBody({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'Count to five' }] }));
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    const chunk = { object: 'chat.completion.chunk', model: 'weak-model', choices: [{ index: 0, delta: { content: 'one two three four five' }, finish_reason: 'stop' }] };
    await s.sendResponseBody(Buffer.from(`data: ${JSON.stringify(chunk)}\n\ndata: [DONE]\n\n`), true);
    s.close();
    const span = await streamSpan('genai-sse');
    const row = await rowFor(late, 'genai-sse');
    expect(row.usage_source).toBe('estimated');
    expect(row.usage.output_tokens).toBeGreaterThan(0);
    expect(span.attributes).toMatchObject({
      'gen_ai.usage.input_tokens': row.usage.input_tokens,
      'gen_ai.usage.output_tokens': row.usage.output_tokens,
      'tiergate.usage_source': 'estimated',
      'gen_ai.response.finish_reasons': ['stop'],
    });
  });

  it("a refusal: the catalogue code as error.type, no tokens", async () => {
    setTracingEnabled(true);
    const s = await sent('genai-bad', Buffer.from('{not json'));
    s.close();
    const span = await streamSpan('genai-bad');
    const row = await rowFor(late, 'genai-bad');
    expect(row.error_code).toBeTruthy();
    expect(span.attributes).toMatchObject({ 'gen_ai.operation.name': 'chat', 'error.type': row.error_code, 'tiergate.usage_source': 'none', 'tiergate.outcome': 'local_reply' });
    expect(span.attributes['gen_ai.usage.input_tokens']).toBeUndefined();
  });

  it("an upstream error: the provider's code as error.type", async () => {
    setTracingEnabled(true);
    const s = await sent('genai-429', jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }));
    await s.sendResponseHeaders([[':status', '429'], ['content-type', 'application/json']], false);
    await s.sendResponseBody(jsonBody({ error: { message: 'slow down', type: 'requests', code: 'rate_limit_exceeded' } }), true);
    s.close();
    expect((await streamSpan('genai-429')).attributes).toMatchObject({ 'error.type': 'rate_limit_exceeded', 'http.response.status_code': 429 });
  });

  it('embeddings (routed without classification): the embeddings operation and their tokens', async () => {
    setTracingEnabled(true);
    const s = await sent('genai-emb', jsonBody({ model: 'text-embedding-3-small', input: 'hello' }), '/v1/embeddings');
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await s.sendResponseBody(jsonBody({ object: 'list', data: [], model: 'text-embedding-3-small', usage: { prompt_tokens: 7, total_tokens: 7 } }), true);
    s.close();
    const span = await streamSpan('genai-emb');
    expect(span.attributes).toMatchObject({ 'gen_ai.operation.name': 'embeddings', 'gen_ai.response.model': 'text-embedding-3-small', 'gen_ai.usage.input_tokens': 7, 'gen_ai.usage.output_tokens': 0 });
  });
});
