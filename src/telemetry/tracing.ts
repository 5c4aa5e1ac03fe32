// OpenTelemetry tracing, configured entirely by the standard OTEL_* variables and off when none is set.
// Only main.ts calls startTracing; everything else uses the API, which is a no-op until the SDK starts.
import { trace, type Tracer } from '@opentelemetry/api';

export const tracer = (): Tracer => trace.getTracer('tiergate');

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
  return () => sdk.shutdown();
}
