// Runs stages in order, stopping at the first reply. One span and one timing per stage.
// Synchronous while the stages are: an answer computed without awaiting is written inside grpc-js' own
// 'data' callback, which measurably saves CPU per request (bench/extproc-bench.ts); only a stage that
// returns a promise switches the rest of the run to async.
import { SpanStatusCode, type Span } from '@opentelemetry/api';
import { TiergateError } from '../errors.js';
import type { Metrics } from '../telemetry/metrics.js';
import { FAILURE_LOG_INTERVAL_MS, Throttle } from '../telemetry/throttled-log.js';
import { startSpanNamed } from '../telemetry/tracing.js';
import type { RequestState } from './request-state.js';
import type { Stage } from './stage.js';

export type PipelineResult = { kind: 'continue' } | { kind: 'error'; error: TiergateError };

const CONTINUE: PipelineResult = { kind: 'continue' };
export function runStages(stages: readonly Stage[], state: RequestState, metrics: Metrics, from = 0): PipelineResult | Promise<PipelineResult> {
  for (let i = from; i < stages.length; i++) {
    const stage = stages[i] as Stage;
    const started = performance.now();
    const span = startSpanNamed('stage', stage.name, state.traceContext);
    let out: void | Promise<void>;
    try {
      out = stage.run(state);
    } catch (err) {
      const r = settle(stage, state, span, started, metrics, err);
      if (r.kind === 'error') return r;
      continue;
    }
    if (out instanceof Promise) {
      return out.then(
        () => {
          done(stage, span, started, metrics);
          return runStages(stages, state, metrics, i + 1);
        },
        (err: unknown) => {
          const r = settle(stage, state, span, started, metrics, err);
          return r.kind === 'error' ? r : runStages(stages, state, metrics, i + 1);
        },
      );
    }
    done(stage, span, started, metrics);
  }
  return CONTINUE;
}

function done(stage: Stage, span: Span, started: number, metrics: Metrics): void {
  span.end();
  metrics.stageSeconds.labels(stage.name).observe((performance.now() - started) / 1000);
}

/** A stage threw: a catalogue error ends the request; anything else follows the stage's failure rule. */
function settle(stage: Stage, state: RequestState, span: Span, started: number, metrics: Metrics, err: unknown): PipelineResult {
  if (err instanceof TiergateError) {
    span.setAttribute('tiergate.error_code', err.entry.code);
    done(stage, span, started, metrics);
    return { kind: 'error', error: err };
  }
  span.recordException(err as Error);
  span.setStatus({ code: SpanStatusCode.ERROR });
  done(stage, span, started, metrics);
  if (stage.onError === 'fail') throw err;
  metrics.stageSkipped.inc({ stage: stage.name });
  const suppressed = skipWarning(stage).pass();
  if (suppressed !== undefined) state.log.warn({ event: 'stage.skipped', stage: stage.name, err: (err as Error).message, suppressed });
  return CONTINUE;
}

/**
 * One warning per stage per interval: an optional stage that throws on every request would otherwise write a
 * line per request. The counter has them all.
 */
const skipWarnings = new WeakMap<Stage, Throttle>();
function skipWarning(stage: Stage): Throttle {
  let t = skipWarnings.get(stage);
  if (!t) skipWarnings.set(stage, (t = new Throttle(FAILURE_LOG_INTERVAL_MS, () => performance.now())));
  return t;
}
