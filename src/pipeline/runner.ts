// Runs stages in order, stopping at the first reply. One span and one timing per stage.
// Synchronous while the stages are: an answer computed without awaiting is written inside grpc-js' own
// 'data' callback, which measurably saves CPU per request (bench/extproc-bench.ts); only a stage that
// returns a promise switches the rest of the run to async.
import { SpanStatusCode, type Span } from '@opentelemetry/api';
import { TiergateError } from '../errors.js';
import { boundObserver, type Metrics } from '../telemetry/metrics.js';
import { startSpan } from '../telemetry/tracing.js';
import type { RequestState } from './request-state.js';
import type { Stage } from './stage.js';

export type PipelineResult = { kind: 'continue' } | { kind: 'error'; error: TiergateError };

const CONTINUE: PipelineResult = { kind: 'continue' };
const stageTimers = new WeakMap<Metrics, ReturnType<typeof boundObserver>>();

function timerFor(metrics: Metrics) {
  let timer = stageTimers.get(metrics);
  if (!timer) {
    timer = boundObserver(metrics.stageSeconds, 'stage');
    stageTimers.set(metrics, timer);
  }
  return timer;
}

export function runStages(stages: readonly Stage[], state: RequestState, metrics: Metrics, from = 0): PipelineResult | Promise<PipelineResult> {
  const timer = timerFor(metrics);
  for (let i = from; i < stages.length; i++) {
    const stage = stages[i] as Stage;
    const started = performance.now();
    const span = startSpan(`stage ${stage.name}`);
    let out: void | Promise<void>;
    try {
      out = stage.run(state);
    } catch (err) {
      const r = settle(stage, state, span, started, timer, err);
      if (r.kind === 'error') return r;
      continue;
    }
    if (out instanceof Promise) {
      return out.then(
        () => {
          done(stage, span, started, timer);
          return runStages(stages, state, metrics, i + 1);
        },
        (err: unknown) => {
          const r = settle(stage, state, span, started, timer, err);
          return r.kind === 'error' ? r : runStages(stages, state, metrics, i + 1);
        },
      );
    }
    done(stage, span, started, timer);
  }
  return CONTINUE;
}

function done(stage: Stage, span: Span, started: number, timer: ReturnType<typeof boundObserver>): void {
  span.end();
  timer(stage.name).observe((performance.now() - started) / 1000);
}

/** A stage threw: a catalogue error ends the request; anything else follows the stage's failure rule. */
function settle(stage: Stage, state: RequestState, span: Span, started: number, timer: ReturnType<typeof boundObserver>, err: unknown): PipelineResult {
  if (err instanceof TiergateError) {
    span.setAttribute('tiergate.error_code', err.entry.code);
    done(stage, span, started, timer);
    return { kind: 'error', error: err };
  }
  span.recordException(err as Error);
  span.setStatus({ code: SpanStatusCode.ERROR });
  done(stage, span, started, timer);
  if (stage.onError === 'fail') throw err;
  state.log.warn({ event: 'stage.skipped', stage: stage.name, err: (err as Error).message });
  return CONTINUE;
}
