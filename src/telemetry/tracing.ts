// OpenTelemetry tracing, configured entirely by the standard OTEL_* variables and off when none is set.
// Only main.ts calls startTracing; everything else calls startSpan, which hands out one shared
// non-recording span while tracing is off (the API would otherwise allocate a tracer and a span per call
// on the hot path for spans that go nowhere).
import { INVALID_SPAN_CONTEXT, trace, type Span } from '@opentelemetry/api';

const NOOP_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
let enabled = false;

export function startSpan(name: string): Span {
  return enabled ? trace.getTracer('tiergate').startSpan(name) : NOOP_SPAN;
}

/** Like startSpan, with the name built only when a span is really recorded. */
/** The W3C trace id a request came with (its traceparent header), else the span's own when tracing is on. */
export function requestTraceId(traceparent: string | undefined, span: Span): string | null {
  const m = traceparent ? /^[0-9a-f]{2}-([0-9a-f]{32})-/.exec(traceparent) : null;
  if (m) return m[1] as string;
  return span.isRecording() ? span.spanContext().traceId : null;
}

export function startSpanNamed(prefix: string, name: string): Span {
  return enabled ? trace.getTracer('tiergate').startSpan(`${prefix} ${name}`) : NOOP_SPAN;
}

export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED === 'true') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || (env.OTEL_TRACES_EXPORTER && env.OTEL_TRACES_EXPORTER !== 'none'));
}

/** Starts the SDK when requested; returns its shutdown (flushes spans) or undefined. */
export async function startTracing(env: NodeJS.ProcessEnv): Promise<(() => Promise<void>) | undefined> {
  if (!tracingRequested(env)) return undefined;
  // Loaded lazily: the SDK is heavy and most installs never enable it.
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const sdk = new NodeSDK({ serviceName: env.OTEL_SERVICE_NAME ?? 'tiergate' });
  sdk.start();
  enabled = true;
  return async () => {
    enabled = false;
    await sdk.shutdown();
  };
}

/** For tests that register their own tracer provider. */
export function setTracingEnabled(on: boolean): void {
  enabled = on;
}
