// A server in its own process, so its CPU time is measured apart from the load driver.
// argv[2]: 'tiergate' (embedded defaults) or 'noop' (answers CONTINUE to everything on the same grpc-js).
// Talks to the parent over IPC: sends {port} when listening, answers 'cpu' with process.cpuUsage().
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { REQUEST_STAGES, createApp } from '../src/app.js';
import { defaultConfig } from '../src/config/load.js';
import { compileRuntime } from '../src/config/runtime.js';
import { createExtProcServer } from '../src/extproc/server.js';
import { CONTINUE, type StreamHandler } from '../src/extproc/types.js';
import { FastHistogram } from '../src/telemetry/fast-histogram.js';
import { LATENCY_BUCKETS } from '../src/telemetry/metrics.js';

/** Server-side answer time per phase, the same histogram tiergate exports, for every kind of server. */
let phaseSeconds: FastHistogram;

async function start(kind: string): Promise<number> {
  if (kind === 'tiergate') {
    const rt = compileRuntime(defaultConfig(), {});
    if (!rt.ok) throw new Error('default config does not compile');
    // TIERGATE_BENCH_STAGES=parse,tenant picks a subset of the pipeline, to see what each stage costs.
    const only = process.env.TIERGATE_BENCH_STAGES?.split(',');
    const requestStages = only ? REQUEST_STAGES.filter((s) => only.includes(s.name)) : REQUEST_STAGES;
    const app = createApp(rt.runtime, pino({ level: 'warn' }), { requestStages });
    phaseSeconds = app.metrics.phaseSeconds;
    const port = await app.extproc.listen('127.0.0.1:0');
    app.markServing();
    return port;
  }
  const pass = () => CONTINUE;
  const handler: StreamHandler = { requestHeaders: pass, requestBody: pass, requestTrailers: pass, responseHeaders: pass, responseBody: pass, responseTrailers: pass, end() {} };
  if (kind === 'echo') {
    // No logic, but answers the size and shape of tiergate's: the body sent back, routing headers set.
    handler.requestBody = (chunk) => ({
      kind: 'continue',
      body: Buffer.from(chunk),
      clearRouteCache: true,
      headers: { set: [['x-llm-tier', 'weak'], ['x-llm-model', 'weak-model'], ['x-tenant-id', 'default'], ['x-llm-classifier', 'v7'], ['content-length', String(chunk.length)]] },
    });
    handler.responseHeaders = () => ({ kind: 'continue', headers: { set: [['x-llm-tier', 'weak'], ['x-gateway-model-resolved', 'weak-model']] } });
  }
  phaseSeconds = new FastHistogram('phase_seconds', 'bench', 'phase', LATENCY_BUCKETS, new Registry());
  const noop = createExtProcServer(() => handler, {
    allowModeOverride: () => false,
    failureRule: () => 'continue',
    internalErrorReply: () => CONTINUE,
    hooks: { streamStarted() {}, streamEnded() {}, answered: (phase, s) => phaseSeconds.labels(phase).observe(s), processingError() {} },
  });
  return noop.listen('127.0.0.1:0');
}

const port = await start(process.argv[2] ?? 'noop');
process.on('message', (m) => {
  if (m === 'cpu') process.send?.({ cpu: process.cpuUsage() });
  if (m === 'buckets') {
    const values = phaseSeconds.get().values.filter((v) => v.labels.phase === 'request_body' && v.metricName.endsWith('_bucket'));
    process.send?.({ buckets: values.map((v) => [String(v.labels.le), v.value]) });
  }
  if (m === 'exit') process.exit(0);
});
process.send?.({ port });
