// A server in its own process, so its CPU time is measured apart from the load driver.
// argv[2]: 'tiergate' (embedded defaults), 'noop' (a bare grpc-js ext_proc server answering CONTINUE) or
// 'echo' (tiergate's transport sending tiergate-shaped answers with no logic).
// Talks to the parent over IPC: sends {port} when listening, answers 'cpu' with process.cpuUsage() and the
// main thread's GC pause time so far, and 'heap' with process.memoryUsage() after full collections.
import { readFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from 'node:v8';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createApp } from '../src/app.js';
import { defaultConfig } from '../src/config/load.js';
import { configSchema } from '../src/config/schema.js';
import { compileRuntime } from '../src/config/runtime.js';
import { FileSink } from '../src/ledger/file-sink.js';
import { tempLedgerDir } from './temp-ledger.js';
import { MemorySink } from '../src/ledger/memory-sink.js';
import { loadTokenizer } from '../src/llm/tokenizer.js';
import { extProcServiceDefinition } from '../src/extproc/protos.js';
import { createExtProcServer } from '../src/extproc/server.js';
import { CONTINUE } from '../src/extproc/types.js';
import { echoHandlers } from './echo-handler.js';
import { FastHistogram } from '../src/telemetry/fast-histogram.js';
import { LATENCY_BUCKETS } from '../src/telemetry/metrics.js';

/** Server-side answer time per phase, the same histogram tiergate exports, for every kind of server. */
let phaseSeconds: FastHistogram;
let stageSeconds: FastHistogram | undefined;

function benchBudgetConfig(store: string) {
  const huge = 1e12;
  // TIERGATE_BENCH_SLOTS=1: and a limit on requests in flight, so each request also holds and frees a slot.
  const slots = process.env.TIERGATE_BENCH_SLOTS === '1' ? { maxConcurrentRequests: huge } : {};
  return configSchema.parse({
    tenants: { '*': { requestsPerMinute: huge, dailyTokenBudget: huge, tokensPerMinute: huge, ...slots } },
    budgets: store === 'memory' ? {} : { store: 'redis', redis: { url: store } },
  });
}

async function start(kind: string): Promise<number> {
  if (kind === 'tiergate') {
    // TIERGATE_BENCH_BUDGETS=memory or a redis:// URL turns on limits for every request (set high enough never
    // to refuse), so the budget stage does its full work: count the prompt, admit and reserve, reconcile.
    const budgets = process.env.TIERGATE_BENCH_BUDGETS;
    // TIERGATE_BENCH_CONFIG: a JSON config file instead (bench/soak.ts turns on keys, limits and the cache).
    const configFile = process.env.TIERGATE_BENCH_CONFIG;
    const config = configFile ? configSchema.parse(JSON.parse(readFileSync(configFile, 'utf8'))) : budgets ? benchBudgetConfig(budgets) : defaultConfig();
    const rt = compileRuntime(config, {});
    if (!rt.ok) throw new Error('default config does not compile');
    // TIERGATE_BENCH_STAGES=parse,classify picks a subset of the pipeline, to see what each stage costs.
    const onlyStages = process.env.TIERGATE_BENCH_STAGES?.split(',');
    // The ledger writes to a file sink in a temp dir, as the embedded default does (to ./tiergate-ledger);
    // TIERGATE_BENCH_SINK=memory keeps rows in memory instead, to see what the file writes cost.
    // A config file's own sinks are used as they are.
    const ledgerSinks = configFile ? undefined : process.env.TIERGATE_BENCH_SINK === 'memory' ? [new MemorySink()] : [new FileSink({ dir: tempLedgerDir() })];
    await loadTokenizer();
    const app = createApp(rt.runtime, pino({ level: 'warn' }), { ...(onlyStages ? { onlyStages } : {}), ...(ledgerSinks ? { ledgerSinks } : {}) });
    phaseSeconds = app.metrics.phaseSeconds;
    // TIERGATE_BENCH_LEDGER=off drops every record at the stream's end (no row built, nothing written): what the
    // whole ledger costs per request, never a setting of tiergate itself.
    if (process.env.TIERGATE_BENCH_LEDGER === 'off') (app.ledger as unknown as { later: (job: () => void) => void }).later = () => undefined;
    stageSeconds = app.metrics.stageSeconds;
    const port = await app.extproc.listen('127.0.0.1:0');
    app.markServing();
    return port;
  }
  phaseSeconds = new FastHistogram('phase_seconds', 'bench', 'phase', LATENCY_BUCKETS, new Registry());
  if (kind === 'noop') return startBareNoop();
  // 'echo': tiergate's transport, no logic, but answers of tiergate's size and shape (the body sent back,
  // routing headers set), to separate the cost of the answers from the cost of deciding them.
  const echo = createExtProcServer(echoHandlers, {
    allowModeOverride: () => false,
    failureRule: () => 'continue',
    internalErrorReply: () => CONTINUE,
    hooks: { streamStarted() {}, streamEnded() {}, answered: (phase, s) => phaseSeconds.labels(phase).observe(s), processingError() {} },
  });
  return echo.listen('127.0.0.1:0');
}

/**
 * The baseline the issue names: a no-op ext_proc server on the same grpc-js, nothing of tiergate's. Each
 * message is answered at once with an empty response of its kind (CONTINUE, no mutation); half-close ends
 * the call. Answer time is measured the same way as in tiergate's transport.
 */
async function startBareNoop(): Promise<number> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': -1 });
  server.addService(extProcServiceDefinition(), {
    Process: (call: grpc.ServerDuplexStream<{ request?: string }, object>) => {
      call.on('data', (msg: { request?: string }) => {
        const started = performance.now();
        if (!msg.request) return;
        call.write({ response: msg.request, [msg.request]: {} });
        phaseSeconds.labels(msg.request).observe((performance.now() - started) / 1000);
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });
  return new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
}

/**
 * Milliseconds of main-thread GC pauses so far. A grpc-js server process runs in one of two garbage-collection
 * regimes, often for its whole life: either each finished stream's objects die young, or they outlive young
 * collections (kept until a full GC, most likely through the native HTTP/2 stream's handle) and every young
 * collection copies ~1.5 MB of them. The second costs ~50 us more CPU per request, for the no-op and tiergate
 * alike; the benches print this figure so the regime of each process is visible (docs/performance.md, "Reading
 * the numbers").
 */
let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

const port = await start(process.argv[2] ?? 'noop');
process.on('message', (m) => {
  if (m === 'cpu') process.send?.({ cpu: process.cpuUsage(), gcMs });
  if (m === 'buckets') {
    const values = phaseSeconds.get().values.filter((v) => v.labels.phase === 'request_body' && v.metricName.endsWith('_bucket'));
    process.send?.({ buckets: values.map((v) => [String(v.labels.le), v.value]) });
  }
  if (typeof m === 'object' && m !== null && 'stageBuckets' in m) {
    const stage = (m as { stageBuckets: string }).stageBuckets;
    const values = stageSeconds?.get().values.filter((v) => v.labels.stage === stage && v.metricName.endsWith('_bucket')) ?? [];
    process.send?.({ buckets: values.map((v) => [String(v.labels.le), v.value]) });
  }
  if (m === 'heap') {
    // Run with --expose-gc (bench/soak.ts): what is still reachable after full collections.
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) throw new Error('heap readings need --expose-gc');
    gc();
    gc();
    process.send?.({ heap: process.memoryUsage() });
  }
  if (typeof m === 'object' && m !== null && 'snapshot' in m) {
    // A heap snapshot to a file, to see what a long run keeps (bench/soak.ts with SOAK_SNAPSHOTS).
    process.send?.({ snapshot: writeHeapSnapshot((m as { snapshot: string }).snapshot) });
  }
  if (m === 'limits') {
    // What this process sized itself to: the memory limit Node found (a cgroup's, else the machine's), V8's heap
    // ceiling from it, and the young generation's current size.
    const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    process.send?.({ limits: { constrainedBytes: process.constrainedMemory?.() ?? NaN, heapLimitBytes: getHeapStatistics().heap_size_limit, youngBytes: young?.space_size ?? NaN } });
  }
  if (m === 'exit') process.exit(0);
});
process.send?.({ port });
