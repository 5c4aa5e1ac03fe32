// Runs stages in order, stopping at the first reply. One span and one timing per stage.
import { SpanStatusCode } from '@opentelemetry/api';
import { TiergateError } from '../errors.js';
import type { Metrics } from '../telemetry/metrics.js';
import { tracer } from '../telemetry/tracing.js';
import type { RequestState } from './request-state.js';
import type { Stage } from './stage.js';

export type PipelineResult = { kind: 'continue' } | { kind: 'error'; error: TiergateError };

export async function runStages(stages: readonly Stage[], state: RequestState, metrics: Metrics): Promise<PipelineResult> {
  for (const stage of stages) {
    const started = performance.now();
    const span = tracer().startSpan(`stage ${stage.name}`);
    try {
      const out = stage.run(state);
      if (out instanceof Promise) await out;
    } catch (err) {
      if (err instanceof TiergateError) {
        span.setAttribute('tiergate.error_code', err.entry.code);
        return { kind: 'error', error: err };
      }
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR });
      if (stage.onError === 'fail') throw err;
      state.log.warn({ event: 'stage.skipped', stage: stage.name, err: (err as Error).message });
    } finally {
      span.end();
      metrics.stageSeconds.observe({ stage: stage.name }, (performance.now() - started) / 1000);
    }
  }
  return { kind: 'continue' };
}
