// The request pipeline's runner (src/pipeline/runner.ts): a catalogue error ends the request as its reply; any
// other error in a required stage goes to the transport's failure rule; an optional stage that throws is
// counted and skipped, with one warning per interval however often it throws. Sync and async stages alike.
import { ROOT_CONTEXT, SpanStatusCode, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/config/runtime.js';
import { TiergateError } from '../../src/errors.js';
import { StreamRequestState } from '../../src/pipeline/request-state.js';
import { runStages } from '../../src/pipeline/runner.js';
import { requestStages } from '../../src/app.js';
import type { Stage } from '../../src/pipeline/stage.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import type { Logger } from '../../src/telemetry/logger.js';
import { setTracingEnabled } from '../../src/telemetry/tracing.js';

function harness() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) }) as unknown as Logger;
  const state = new StreamRequestState('req-runner', {} as Runtime, '/v1/chat/completions', 'POST', { get: () => undefined, has: () => false }, log);
  const metrics = createMetrics();
  const ran: string[] = [];
  const stage = (name: string, onError: Stage['onError'], run: () => void | Promise<void> = () => undefined): Stage => ({
    name,
    onError,
    run: () => {
      ran.push(name);
      return run();
    },
  });
  const skipped = async (name: string) => (await metrics.stageSkipped.get()).values.find((v) => v.labels.stage === name)?.value ?? 0;
  return { lines, state, metrics, ran, stage, skipped };
}

const boom = () => {
  throw new Error('boom');
};
const later = (f: () => void) => async () => {
  await Promise.resolve();
  f();
};

describe('request pipeline runner', () => {
  it('a catalogue error ends the request with it as the reply; the stages after it do not run', async () => {
    for (const asynchronous of [false, true]) {
      const h = harness();
      const refuse = () => {
        throw new TiergateError('invalid_request', 'no');
      };
      const out = await runStages([h.stage('a', 'fail'), h.stage('b', 'skip', asynchronous ? later(refuse) : refuse), h.stage('c', 'fail')], h.state, h.metrics);
      expect(out).toMatchObject({ kind: 'error', error: { entry: { code: 'invalid_request' } } });
      expect(h.ran).toEqual(['a', 'b']);
      expect(await h.skipped('b')).toBe(0); // a catalogue error is an answer, never a skipped stage
    }
  });

  it("an unexpected error in a required stage goes to the transport's failure rule: the run throws it", async () => {
    const h = harness();
    expect(() => runStages([h.stage('parse', 'fail', boom), h.stage('route', 'fail')], h.state, h.metrics)).toThrow('boom');
    await expect(runStages([h.stage('budget', 'fail', later(boom)), h.stage('route', 'fail')], h.state, h.metrics)).rejects.toThrow('boom');
    expect(h.ran).toEqual(['parse', 'budget']);
  });

  it('stages that succeed, sync and async mixed, all run in order: continue, and one timing each, in seconds', async () => {
    const h = harness();
    const wait = () => new Promise<void>((r) => setTimeout(r, 30));
    const began = performance.now();
    const out = await runStages([h.stage('parse', 'fail'), h.stage('cache', 'skip', wait), h.stage('budget', 'fail', async () => undefined), h.stage('route', 'fail')], h.state, h.metrics);
    const elapsed = (performance.now() - began) / 1000;
    expect(out).toEqual({ kind: 'continue' });
    expect(h.ran).toEqual(['parse', 'cache', 'budget', 'route']);
    const series = (suffix: string) => Object.fromEntries(h.metrics.stageSeconds.get().values.filter((v) => v.metricName === `tiergate_stage_seconds${suffix}`).map((v) => [v.labels.stage, v.value]));
    expect(series('_count')).toEqual({ parse: 1, cache: 1, budget: 1, route: 1 });
    // The 30 ms the cache stage waited, as seconds: not milliseconds, and within the run around it.
    expect(series('_sum').cache).toBeGreaterThanOrEqual(0.025);
    expect(series('_sum').cache).toBeLessThanOrEqual(elapsed);
  });

  it('an optional stage that throws is counted and skipped, and the rest runs', async () => {
    for (const asynchronous of [false, true]) {
      const h = harness();
      const out = await runStages([h.stage('cache_lookup', 'skip', asynchronous ? later(boom) : boom), h.stage('route', 'fail')], h.state, h.metrics);
      expect(out).toEqual({ kind: 'continue' });
      expect(h.ran).toEqual(['cache_lookup', 'route']);
      expect(await h.skipped('cache_lookup')).toBe(1);
      expect(h.lines.map((l) => [l.event, l.stage, l.err, l.request_id, l.suppressed])).toEqual([['stage.skipped', 'cache_lookup', 'boom', 'req-runner', 0]]);
    }
  });

  it('an optional stage that throws on every request is one warning per interval, and every one is counted', async () => {
    const h = harness();
    const stages = [h.stage('cache_lookup', 'skip', boom), h.stage('route', 'fail')];
    for (let i = 0; i < 50; i++) expect(await runStages(stages, h.state, h.metrics)).toEqual({ kind: 'continue' });
    expect(await h.skipped('cache_lookup')).toBe(50);
    expect(h.lines.filter((l) => l.event === 'stage.skipped')).toHaveLength(1);
  });

  it("the pipeline's stages in order; only the cache lookup may be skipped (a request is never sent without its tier, ACL or limits)", () => {
    const stages = requestStages(createMetrics(), ...([{}, {}, {}, {}] as unknown as [never, never, never, never]));
    expect(stages.map((s) => [s.name, s.onError])).toEqual([
      ['parse', 'fail'],
      ['classify', 'fail'],
      ['policy', 'fail'],
      ['cache', 'skip'],
      ['budget', 'fail'],
      ['route', 'fail'],
    ]);
  });
});

describe('stage spans', () => {
  const exporter = new InMemorySpanExporter();
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  afterAll(() => {
    setTracingEnabled(false);
    trace.disable();
  });

  it('a refusing stage names its catalogue code; one that fails unexpectedly is marked an error, with the exception', async () => {
    setTracingEnabled(true);
    for (const asynchronous of [false, true]) {
      exporter.reset();
      const h = harness();
      h.state.traceContext = ROOT_CONTEXT;
      const refuse = () => {
        throw new TiergateError('model_not_allowed', 'no');
      };
      await runStages([h.stage('cache', 'skip', asynchronous ? later(boom) : boom), h.stage('policy', 'fail', asynchronous ? later(refuse) : refuse)], h.state, h.metrics);
      const [cache, policy] = exporter.getFinishedSpans();
      expect(cache?.name).toBe('stage cache');
      expect(cache?.status).toEqual({ code: SpanStatusCode.ERROR });
      expect(cache?.events.map((e) => [e.name, e.attributes?.['exception.message']])).toEqual([['exception', 'boom']]);
      expect(policy?.name).toBe('stage policy');
      expect(policy?.attributes).toEqual({ 'tiergate.error_code': 'model_not_allowed' });
      // A refusal is the request's answer, not a failure of tiergate's.
      expect(policy?.status.code).toBe(SpanStatusCode.UNSET);
    }
  });
});
