// The span helpers of src/telemetry/tracing.ts, in process with an in-memory exporter: what each starts (or does
// not) while tracing is on and off, where it hangs, and the trace ids a row and a log line carry. The tracing
// suite checks the same through a running tiergate; tracing-sdk, the SDK's start from OTEL_* in a child process.
import { propagation, SpanKind, SpanStatusCode, trace, ROOT_CONTEXT } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { requestTraceId, scrubber, setTracingEnabled, startClientSpan, startSpanNamed, startStreamSpan, traceLogFields, w3cTraceId, type TraceCarrier } from '../../src/telemetry/tracing.js';

const exporter = new InMemorySpanExporter();
beforeAll(() => {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
});
afterAll(() => {
  setTracingEnabled(false);
  propagation.disable();
  trace.disable();
});
beforeEach(() => {
  exporter.reset();
  setTracingEnabled(true);
});

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const carrier = (headers: Record<string, string>): TraceCarrier => ({ get: (n) => headers[n] });
const TP = carrier({ traceparent: `00-${TRACE}-${SPAN}-01` });

describe('startStreamSpan', () => {
  it("a server span of tiergate's tracer, under the call's context, else the request's, else a new trace", () => {
    const other = carrier({ traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` });
    for (const [call, request, parent] of [
      [TP, other, TRACE],
      [undefined, TP, TRACE],
      [carrier({}), TP, TRACE],
      [undefined, undefined, undefined],
    ] as const) {
      const { span, context } = startStreamSpan('ext_proc stream', call, request);
      span.end();
      expect(trace.getSpan(context ?? ROOT_CONTEXT)).toBe(span);
      const done = exporter.getFinishedSpans().at(-1);
      expect([done?.name, done?.kind, done?.instrumentationScope.name]).toEqual(['ext_proc stream', SpanKind.SERVER, 'tiergate']);
      if (parent === undefined) expect(done?.parentSpanContext).toBeUndefined();
      else expect([done?.spanContext().traceId, done?.parentSpanContext?.spanId]).toEqual([parent, SPAN]);
    }
  });

  it('off: the one shared span that records nothing, and no context', () => {
    setTracingEnabled(false);
    const a = startStreamSpan('x', TP, TP);
    const b = startStreamSpan('y', undefined, undefined);
    expect(a.span).toBe(b.span);
    expect([a.span.isRecording(), a.context]).toEqual([false, undefined]);
  });
});

describe('startSpanNamed', () => {
  it("a child of the stream's context, named prefix and name; no context or tracing off: nothing recorded", () => {
    const { span: stream, context } = startStreamSpan('stream', undefined, undefined);
    const stage = startSpanNamed('stage', 'classify', context);
    stage.end();
    stream.end();
    const [s] = exporter.getFinishedSpans();
    expect([s?.name, s?.instrumentationScope.name, s?.parentSpanContext?.spanId, s?.kind]).toEqual(['stage classify', 'tiergate', stream.spanContext().spanId, SpanKind.INTERNAL]);
    expect(startSpanNamed('stage', 'x', undefined).isRecording()).toBe(false);
    setTracingEnabled(false);
    expect(startSpanNamed('stage', 'x', context).isRecording()).toBe(false);
  });
});

describe('startClientSpan', () => {
  it('a client span whose context its headers carry; end records an error as one, and nothing else as one', () => {
    const { context } = startStreamSpan('stream', TP, undefined);
    const ok = startClientSpan('embeddings', context);
    ok.end(undefined);
    const failed = startClientSpan('embeddings', context);
    failed.end(new Error('timed out'));
    const [a, b] = exporter.getFinishedSpans();
    expect([a?.name, a?.kind, a?.instrumentationScope.name, a?.status.code, a?.events]).toEqual(['embeddings', SpanKind.CLIENT, 'tiergate', SpanStatusCode.UNSET, []]);
    expect(ok.headers).toEqual({ traceparent: `00-${TRACE}-${a?.spanContext().spanId}-01` });
    expect(b?.status.code).toBe(SpanStatusCode.ERROR);
    expect(b?.events.map((e) => [e.name, e.attributes?.['exception.message']])).toEqual([['exception', 'timed out']]);
  });

  it('no context, or tracing off: no span and no headers to send', () => {
    expect(startClientSpan('embeddings', undefined).headers).toEqual({});
    const { context } = startStreamSpan('stream', undefined, undefined);
    setTracingEnabled(false);
    const off = startClientSpan('embeddings', context);
    off.end(new Error('x'));
    expect(off.headers).toEqual({});
    expect(exporter.getFinishedSpans().filter((s) => s.name === 'embeddings')).toEqual([]);
  });
});

describe('the trace a row and a log line name', () => {
  it("tracing on: the span's trace, with its span id on log lines", () => {
    const { span, context } = startStreamSpan('stream', TP, undefined);
    expect(requestTraceId(undefined, undefined, span)).toBe(TRACE);
    expect(traceLogFields(context, undefined, undefined)).toEqual({ trace_id: TRACE, span_id: span.spanContext().spanId });
    span.end();
  });

  it("tracing off: the call's traceparent, else the request's; neither, or a context holding no valid span: none", () => {
    setTracingEnabled(false);
    const noop = startStreamSpan('stream', undefined, undefined).span;
    const other = carrier({ traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` });
    expect(requestTraceId(TP, other, noop)).toBe(TRACE);
    expect(requestTraceId(undefined, other, noop)).toBe('a'.repeat(32));
    expect(requestTraceId(carrier({}), other, noop)).toBe('a'.repeat(32));
    expect(requestTraceId(undefined, undefined, noop)).toBeNull();
    expect(traceLogFields(undefined, undefined, TP)).toEqual({ trace_id: TRACE });
    expect(traceLogFields(ROOT_CONTEXT, TP, undefined)).toEqual({ trace_id: TRACE });
    expect(traceLogFields(undefined, undefined, undefined)).toEqual({});
    expect(w3cTraceId(undefined)).toBeNull();
  });
});

describe('scrubber (what the OTel diagnostics tiergate logs must not say)', () => {
  const scrub = scrubber({
    OTEL_EXPORTER_OTLP_HEADERS: 'x-honeycomb-team=hc%2Bkey42, x-dataset = tiergate',
    OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'authorization=Bearer%20tr4ce,empty=,noequals',
  });

  it.each([
    ['a header value, as set and as decoded', 'sent hc%2Bkey42 and hc+key42', 'sent [redacted] and [redacted]'],
    ['a traces header value', 'Header "authorization" has invalid value (Bearer tr4ce)', 'Header "authorization" has invalid value ([redacted])'],
    ['a second header of the list, trimmed', 'dataset tiergate', 'dataset [redacted]'],
    ["a URL's credentials", "export URL: 'https://user:pa55@otel.example:4318'", "export URL: 'https://[redacted]@otel.example:4318'"],
    ['a URL without credentials, unchanged', 'export to http://otel:4318/v1/traces failed', 'export to http://otel:4318/v1/traces failed'],
  ])('%s', (_what, text, expected) => {
    expect(scrub(text)).toBe(expected);
  });

  it('a value that holds another is taken out whole, not left with the other cut out of it', () => {
    expect(scrubber({ OTEL_EXPORTER_OTLP_HEADERS: 'a=tok,b=tok-extended' })('key tok-extended')).toBe('key [redacted]');
  });

  it('an empty value or a pair without "=" hides nothing (it would have taken out every empty string or header name)', () => {
    expect(scrub('empty noequals')).toBe('empty noequals');
    expect(scrubber({})('nothing to hide')).toBe('nothing to hide');
  });
});
