// With tracing on, every stream gets a span and every pipeline stage a span; with it off, none are recorded.
import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTracingEnabled, tracingRequested } from '../../src/telemetry/tracing.js';
import { chatRequestHeaders } from '../../src/dev/envoy-client.js';
import { jsonBody, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

const exporter = new InMemorySpanExporter();
let tg: TestTiergate;
beforeAll(async () => {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  tg = await startTiergate();
});
afterAll(async () => {
  setTracingEnabled(false);
  await tg.stop();
});

async function oneRequest(content: string) {
  const s = tg.pool.open();
  await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'trace-me']]), false);
  await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content }] }));
  s.close();
}

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

  it('records nothing when disabled', async () => {
    setTracingEnabled(false);
    exporter.reset();
    await oneRequest('hi');
    await new Promise((r) => setTimeout(r, 50));
    expect(exporter.getFinishedSpans()).toEqual([]);
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
