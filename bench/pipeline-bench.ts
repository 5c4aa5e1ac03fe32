// tiergate's per-request CPU without gRPC and HTTP/2: the transport loop (src/extproc/process-stream.ts) fed the
// same four-phase request as bench/extproc-bench.ts, with messages decoded and answers encoded by the real
// protobuf (de)serialisers, but handed over in memory. Runs tiergate, the 'echo' handler (answers of tiergate's
// shape, no logic) and a bare no-op in the same process, rounds alternating, and prints CPU per request and
// the ratios. It isolates what tiergate's own code costs from what grpc-js costs, so a change to the pipeline
// can be measured in seconds instead of minutes. Never asserts on time.
// TIERGATE_BENCH_PACED=1 sends one request per millisecond instead of 100 back to back: the CPU's caches go
// cold between requests, as they do in a real server at 1,000 requests/s, which is where batching pays.
//   npm run bench:pipeline [-- ROUNDS [REQUESTS]]   (TIERGATE_BENCH_STAGES, TIERGATE_BENCH_SINK as in server-child.ts)
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { createApp } from '../src/app.js';
import { defaultConfig } from '../src/config/load.js';
import { compileRuntime } from '../src/config/runtime.js';
import { FileSink } from '../src/ledger/file-sink.js';
import { tempLedgerDir } from './temp-ledger.js';
import { MemorySink } from '../src/ledger/memory-sink.js';
import { loadTokenizer } from '../src/llm/tokenizer.js';
import { createProcessHandler, type TransportOptions } from '../src/extproc/process-stream.js';
import { extProcServiceDefinition } from '../src/extproc/protos.js';
import { extProcServerDefinition } from '../src/extproc/response-encoder.js';
import { CONTINUE, type StreamHandlerFactory } from '../src/extproc/types.js';
import { echoHandlers } from './echo-handler.js';
import type { WireProcessingRequest } from '../src/extproc/wire.js';
import { BODY, HEADERS, JSON_RESPONSE } from './extproc-driver.js';
import { median } from './stats.js';

const ROUNDS = Number(process.argv[2] ?? 7);
const REQUESTS = Number(process.argv[3] ?? 20_000);
const PACED = process.env.TIERGATE_BENCH_PACED === '1';
const def = extProcServiceDefinition().Process as grpc.MethodDefinition<WireProcessingRequest, object>;

const raw = (h: ReadonlyArray<readonly [string, string]>) => h.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') }));
// The four messages of one request, serialised once as Envoy would send them; decoded afresh per request.
const MESSAGES: Buffer[] = [
  {
    request_headers: { headers: { headers: raw(HEADERS) } },
    protocol_config: { request_body_mode: 'BUFFERED', response_body_mode: 'STREAMED' },
  },
  { request_body: { body: BODY, end_of_stream: true } },
  { response_headers: { headers: { headers: raw([[':status', '200'], ['content-type', 'application/json']]) } } },
  { response_body: { body: JSON_RESPONSE, end_of_stream: true } },
].map((m) => def.requestSerialize(m as WireProcessingRequest));

/** The parts of a grpc-js server call the transport uses; answers are serialised as grpc-js would. */
class MemoryCall extends EventEmitter {
  cancelled = false;
  destroyed = false;
  bytes = 0;
  constructor(private readonly serialize: (answer: object) => Buffer) {
    super();
  }
  write(answer: object): boolean {
    this.bytes += this.serialize(answer).length;
    return true;
  }
  end(): void {}
}

const transport = (): TransportOptions => ({
  allowModeOverride: () => false,
  failureRule: () => 'reply',
  internalErrorReply: () => CONTINUE,
  hooks: { streamStarted() {}, streamEnded() {}, answered() {}, processingError: (_k, err) => console.error(err) },
});

async function tiergateFactory(): Promise<StreamHandlerFactory> {
  const rt = compileRuntime(defaultConfig(), {});
  if (!rt.ok) throw new Error('default config does not compile');
  await loadTokenizer();
  // The same knobs as bench/server-child.ts: a subset of the stages, and the ledger kept in memory.
  const onlyStages = process.env.TIERGATE_BENCH_STAGES?.split(',');
  const ledgerSinks = process.env.TIERGATE_BENCH_SINK === 'memory' ? [new MemorySink()] : [new FileSink({ dir: tempLedgerDir() })];
  const app = createApp(rt.runtime, pino({ level: 'warn' }), { ...(onlyStages ? { onlyStages } : {}), ledgerSinks });
  return app.streamHandlers;
}

const pass = () => CONTINUE;
const noop: StreamHandlerFactory = () => ({ requestHeaders: pass, requestBody: pass, requestTrailers: pass, responseHeaders: pass, responseBody: pass, responseTrailers: pass, end() {} });

const tick = () => new Promise<void>((r) => setImmediate(r));

/** CPU microseconds per request for `n` requests, 100 streams at a time (each stream's end waits a turn). */
// Answers go through the server's serializer, which passes through the ones the transport wrote as bytes.
const serialize = (extProcServerDefinition().Process as grpc.MethodDefinition<WireProcessingRequest, object>).responseSerialize;
async function run(factory: StreamHandlerFactory, n: number): Promise<number> {
  const handle = createProcessHandler(factory, transport());
  const before = process.cpuUsage();
  const batch = PACED ? 1 : 100;
  for (let done = 0; done < n; done += batch) {
    if (PACED) await new Promise((r) => setTimeout(r, 1));
    for (let i = 0; i < batch; i++) {
      const call = new MemoryCall(serialize);
      handle(call as unknown as Parameters<typeof handle>[0]);
      for (const m of MESSAGES) call.emit('data', def.requestDeserialize(m));
      call.emit('end');
    }
    await tick();
    await tick();
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / n;
}

const kinds = { tiergate: await tiergateFactory(), echo: echoHandlers, noop };
if (process.env.TIERGATE_BENCH_PROF) {
  // Only tiergate, for a profiler: TIERGATE_BENCH_PROF=1 npx tsx --cpu-prof bench/pipeline-bench.ts
  for (let r = 0; r < ROUNDS; r++) await run(kinds.tiergate, REQUESTS);
  process.exit(0);
}
const names = Object.keys(kinds) as Array<keyof typeof kinds>;
for (const k of names) await run(kinds[k], 5000); // warm-up (JIT)
const us: Record<string, number[]> = { tiergate: [], echo: [], noop: [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const k of names.map((_, i) => names[(i + r) % names.length] as keyof typeof kinds)) us[k]?.push(await run(kinds[k], REQUESTS));
}
const paired = (a: number[], b: number[]) => median(a.map((x, i) => x - (b[i] as number)));
console.log(`node ${process.version}; ${ROUNDS} rounds x ${REQUESTS} four-phase requests, in memory (protobuf decode/encode, no gRPC/HTTP2); medians`);
for (const k of names) console.log(`${k.padEnd(10)} ${median(us[k] as number[]).toFixed(1).padStart(7)} us CPU per request`);
console.log(`tiergate - echo: ${paired(us.tiergate as number[], us.echo as number[]).toFixed(1)} us per request (paired per round)`);
console.log(`tiergate - noop: ${paired(us.tiergate as number[], us.noop as number[]).toFixed(1)} us per request (paired per round)`);
