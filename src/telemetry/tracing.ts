// OpenTelemetry tracing, configured entirely by the standard OTEL_* variables and off when none is set.
// Only main.ts calls startTracing; everything else calls the start functions below, which hand out one shared
// non-recording span while tracing is off (the API would otherwise allocate a tracer and a span per call
// on the hot path for spans that go nowhere).
//
// Where a request's spans hang. Envoy with tracing on makes a client span for the ext_proc call and injects its
// context into the side stream's gRPC metadata (envoy PR #33665; the llm-d router's issue #2828 shows what
// reading only the request's headers gives: Envoy's trace and the processor's, disconnected). That span is
// tiergate's real caller, so it is the parent. Without it (Envoy not tracing), the request's own trace context
// (a client's `traceparent`) is, so tiergate's span still joins the application's trace, as the backend's will
// when Envoy forwards the header. Each stage's span is a child of the stream's.
import { withDeadline } from '../deadline-timer.js';
import { BUILD } from '../version.js';
import type { Logger } from './logger.js';
import { FAILURE_LOG_INTERVAL_MS, ThrottledWarning } from './throttled-log.js';
import {
  DiagLogLevel,
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  diag,
  isSpanContextValid,
  propagation,
  trace,
  type Context,
  type DiagLogger,
  type Span,
  type TextMapGetter,
} from '@opentelemetry/api';

const NOOP_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
let enabled = false;

/** Headers to read a trace context from: the ext_proc call's gRPC metadata, or the request's headers. */
export interface TraceCarrier {
  get(name: string): string | undefined;
}

// keys() is only for propagators that copy every header of a prefix (Jaeger's uberctx- baggage); tiergate
// reads the span context and no baggage, so none is listed.
const GETTER: TextMapGetter<TraceCarrier> = { keys: () => [], get: (c, name) => c.get(name) };

/** A stream's span, and the context its stages' spans start in (undefined while tracing is off). */
export interface StreamSpan {
  span: Span;
  context: Context | undefined;
}

const OFF: StreamSpan = Object.freeze({ span: NOOP_SPAN, context: undefined });

/**
 * Starts the span of one ext_proc stream: a server span under Envoy's ext_proc client span when the call carries
 * its context, else under the request's own trace context, else a new trace. The configured propagator
 * (OTEL_PROPAGATORS: W3C by default, b3 and others) reads both.
 */
export function startStreamSpan(name: string, call: TraceCarrier | undefined, request: TraceCarrier | undefined): StreamSpan {
  if (!enabled) return OFF;
  const parent = parentFrom(call) ?? parentFrom(request) ?? ROOT_CONTEXT;
  const span = trace.getTracer('tiergate').startSpan(name, { kind: SpanKind.SERVER }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

function parentFrom(carrier: TraceCarrier | undefined): Context | undefined {
  if (carrier === undefined) return undefined;
  const ctx = propagation.extract(ROOT_CONTEXT, carrier, GETTER);
  const sc = trace.getSpanContext(ctx);
  return sc !== undefined && isSpanContextValid(sc) ? ctx : undefined;
}

/** A child span of `parent` (a stream's context), with the name built only when a span is really recorded. */
export function startSpanNamed(prefix: string, name: string, parent: Context | undefined): Span {
  return enabled && parent !== undefined ? trace.getTracer('tiergate').startSpan(`${prefix} ${name}`, undefined, parent) : NOOP_SPAN;
}

/** A call out (the embeddings endpoint): its headers carry the span's context; end() records how it went. */
export interface ClientSpan {
  headers: Record<string, string>;
  end(err: unknown): void;
}

const NO_CLIENT_SPAN: ClientSpan = Object.freeze({ headers: Object.freeze({}) as Record<string, string>, end: () => undefined });

/** A client span under `parent` (a request's stream context), with its context ready to send; nothing when off. */
export function startClientSpan(name: string, parent: Context | undefined): ClientSpan {
  if (!enabled || parent === undefined) return NO_CLIENT_SPAN;
  const span = trace.getTracer('tiergate').startSpan(name, { kind: SpanKind.CLIENT }, parent);
  const headers: Record<string, string> = {};
  propagation.inject(trace.setSpan(parent, span), headers);
  return {
    headers,
    end(err) {
      if (err !== undefined) {
        span.recordException(err as Error);
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      span.end();
    },
  };
}

/**
 * The trace a request's ledger row names: the one tiergate's span is in when tracing is on (which is its
 * parent's, as above), else the W3C `traceparent` of the ext_proc call (Envoy's trace), else the request's.
 */
export function requestTraceId(call: TraceCarrier | undefined, request: TraceCarrier | undefined, span: Span): string | null {
  if (span.isRecording()) return span.spanContext().traceId;
  return w3cTraceId(call?.get('traceparent')) ?? w3cTraceId(request?.get('traceparent'));
}

/**
 * What a request's log lines carry to find its trace (the names OpenTelemetry's log correlation uses): the
 * stream span's trace and span ids when tracing is on (`context`, a stream's), else the trace its ledger row
 * names, else nothing.
 */
export function traceLogFields(context: Context | undefined, call: TraceCarrier | undefined, request: TraceCarrier | undefined): { trace_id?: string; span_id?: string } {
  const sc = context === undefined ? undefined : trace.getSpanContext(context);
  if (sc !== undefined && isSpanContextValid(sc)) return { trace_id: sc.traceId, span_id: sc.spanId };
  const id = requestTraceId(call, request, NOOP_SPAN);
  return id === null ? {} : { trace_id: id };
}

/** The trace id of a W3C traceparent (version-traceid-spanid-flags), or null when it is not a valid one. */
export function w3cTraceId(traceparent: string | undefined): string | null {
  if (traceparent === undefined) return null;
  const m = TRACEPARENT.exec(traceparent);
  if (m === null || m[1] === 'ff' || m[2] === ZERO_TRACE || m[3] === ZERO_SPAN) return null;
  return m[2] as string;
}
const TRACEPARENT = /^\s*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(?:$|-|\s)/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED === 'true') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || (env.OTEL_TRACES_EXPORTER && env.OTEL_TRACES_EXPORTER !== 'none'));
}

/** How long a shutdown waits for the spans still queued to reach the collector, after which they are dropped. */
export const TRACING_FLUSH_MS = 3_000;

/**
 * Starts the SDK when requested; returns its shutdown, which flushes the spans still queued within
 * TRACING_FLUSH_MS and never fails: a collector that is down costs those spans and a warning, not the shutdown.
 */
export async function startTracing(env: NodeJS.ProcessEnv, log: Logger): Promise<(() => Promise<void>) | undefined> {
  if (!tracingRequested(env)) return undefined;
  // The SDK's own warnings and errors (an export refused, an endpoint that is no URL and so replaced by
  // localhost:4318) went nowhere unless OTEL_LOG_LEVEL was set: tracing could be off in all but name. They reach
  // tiergate's log now, one line per 10 s at most; OTEL_LOG_LEVEL still gives the SDK's console logger instead.
  if (!env.OTEL_LOG_LEVEL) diag.setLogger(diagToLog(log, env), DiagLogLevel.WARN);
  // Loaded lazily: the SDK is heavy and most installs never enable it.
  const [{ NodeSDK }, { defaultResource, resourceFromAttributes }] = await Promise.all([import('@opentelemetry/sdk-node'), import('@opentelemetry/resources')]);
  // tiergate's name and version under what the SDK detects: it merges OTEL_RESOURCE_ATTRIBUTES (and the host and
  // process) over this resource, so an operator's `service.name=…` there wins. Passing `serviceName` instead put
  // "tiergate" over it; it is passed only for OTEL_SERVICE_NAME, which the spec ranks above both and which must
  // hold even with OTEL_NODE_RESOURCE_DETECTORS=none. A `resource` replaces the SDK's default one (telemetry.sdk.*),
  // so that is the base.
  const resource = defaultResource().merge(resourceFromAttributes({ 'service.name': 'tiergate', 'service.version': BUILD.version }));
  const sdk = new NodeSDK({ resource, ...(env.OTEL_SERVICE_NAME ? { serviceName: env.OTEL_SERVICE_NAME } : {}) });
  sdk.start();
  enabled = true;
  const scrub = scrubber(env);
  return async () => {
    enabled = false;
    // It rejected when the last export failed (the collector down at shutdown): an unhandled rejection that ended
    // the process with exit 1 and a stack trace, before `server.stopped`, after ~9 s of the exporter's retries on
    // top of the drain and the grace period. 3 s keeps drain, grace and flush within compose's 20 s stop timeout.
    const failed = await withDeadline(
      sdk.shutdown().then(
        () => undefined,
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      ),
      TRACING_FLUSH_MS,
      `spans not exported within ${TRACING_FLUSH_MS} ms`,
    );
    if (failed !== undefined) log.warn({ event: 'tracing.flush_failed', err: scrub(failed) });
  };
}

/** OTel's diagnostics at warn and error, as throttled `tracing.otel_warning` lines with the secrets taken out. */
function diagToLog(log: Logger, env: NodeJS.ProcessEnv): DiagLogger {
  const throttled = new ThrottledWarning(log, FAILURE_LOG_INTERVAL_MS, Date.now);
  const scrub = scrubber(env);
  const say = (message: string, ...args: unknown[]) => {
    const text = [errorMessage(message), ...args.map((a) => (a instanceof Error ? a.message : typeof a === 'string' ? a : JSON.stringify(a)))].join(' ');
    throttled.warn({ event: 'tracing.otel_warning', detail: scrub(text).slice(0, 500) });
  };
  const quiet = () => undefined;
  return { error: say, warn: say, info: quiet, debug: quiet, verbose: quiet };
}

/**
 * The message of an error OTel's global error handler passed as JSON of all its fields (a failed export's
 * `{"stack":"Error: connect ECONNREFUSED…","message":…,"code":…}`), else the text as it is.
 */
function errorMessage(text: string): string {
  if (!text.startsWith('{')) return text;
  try {
    const e = JSON.parse(text) as { message?: unknown };
    return typeof e.message === 'string' ? e.message : text;
  } catch {
    return text;
  }
}

/**
 * Takes out of a diagnostic what the OTel variables hold that is secret: the values of the exporter's headers (a
 * vendor's API key; OTel quotes one it finds invalid) and the credentials of a URL (`https://user:pass@…`).
 */
export function scrubber(env: NodeJS.ProcessEnv): (text: string) => string {
  const secrets = new Set<string>();
  for (const name of ['OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_TRACES_HEADERS']) {
    for (const pair of (env[name] ?? '').split(',')) {
      const value = pair.slice(pair.indexOf('=') + 1).trim();
      if (pair.includes('=') && value !== '') {
        secrets.add(value);
        secrets.add(safeDecode(value));
      }
    }
  }
  const longestFirst = [...secrets].sort((a, b) => b.length - a.length);
  return (text) => {
    let out = text.replace(/\/\/[^/@\s'"]*@/g, '//[redacted]@');
    for (const secret of longestFirst) out = out.split(secret).join('[redacted]');
    return out;
  };
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** For tests that register their own tracer provider. */
export function setTracingEnabled(on: boolean): void {
  enabled = on;
}
