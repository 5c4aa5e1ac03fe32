// tiergate vs a no-op ext_proc server (and an 'echo' one) on the same grpc-js, in the same run, driven by the Envoy-faithful
// client from another process. Prints server CPU time per request and per streamed chunk, request-body answer
// latency p50/p99, and each ratio to the no-op. Rounds alternate between the two servers; medians are
// reported. Never asserts on time.   npm run bench [-- ROUNDS]
import { ExtProcPool, RECOMMENDED_FILTER, chatRequestHeaders } from '../src/dev/envoy-client.js';
import { startChild, type Child } from './children.js';

const ROUNDS = Number(process.argv[2] ?? 7);
const PLAIN = { requests: 4000, rate: 1000 };
const STREAM = { requests: 400, rate: 100, chunks: 100 };

const HEADERS = chatRequestHeaders([['x-request-id', 'bench']]);
// A realistic small chat request: a system prompt and two turns.
const BODY = Buffer.from(
  JSON.stringify({
    model: 'auto',
    temperature: 0.2,
    messages: [
      { role: 'system', content: 'You are a concise assistant for an internal developer portal.' },
      { role: 'user', content: 'How do I rotate the credentials for the staging database?' },
      { role: 'assistant', content: 'Open the secrets console, pick the staging entry and press rotate.' },
      { role: 'user', content: 'And where do I find the audit log afterwards?' },
    ],
  }),
);
// Chunks as OpenAI and vLLM send them (with include_usage, which tiergate forces): id, model, a delta and
// "usage":null; the stream ends with the usage chunk and [DONE], which tiergate parses for the ledger.
const chunkJson = (extra: Record<string, unknown>) =>
  `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1_763_800_000, model: 'weak-model', system_fingerprint: null, ...extra })}\n\n`;
const CHUNK = Buffer.from(chunkJson({ choices: [{ index: 0, delta: { content: 'token ' }, logprobs: null, finish_reason: null }], usage: null }));
const LAST_CHUNK = Buffer.from(chunkJson({ choices: [], usage: { prompt_tokens: 60, completion_tokens: 100, total_tokens: 160 } }) + 'data: [DONE]\n\n');

// What a backend answers (usage included, as OpenAI and vLLM always do for non-streamed requests).
const JSON_RESPONSE = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-bench',
    object: 'chat.completion',
    created: 1_763_800_000,
    model: 'weak-model',
    choices: [{ index: 0, message: { role: 'assistant', content: 'Open the audit tab of the secrets console.' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 60, completion_tokens: 10, total_tokens: 70 },
  }),
);

interface RunResult {
  cpuPerRequestUs: number;
  /** Client-observed: sending request_body → its answer, through the driver's event loop and loopback. */
  bodyAnswerMs: number[];
  /** Server-side: message received → answer written (the tiergate_extproc_phase_seconds histogram). */
  serverP50Ms: number;
  serverP99Ms: number;
}

/** Prometheus histogram_quantile: linear interpolation inside the bucket that holds the rank. */
function bucketQuantile(before: Array<[string, number]>, after: Array<[string, number]>, q: number): number {
  const counts = after.map(([le, c], i) => [le === '+Inf' ? Infinity : Number(le), c - (before[i]?.[1] ?? 0)] as const);
  const total = counts.at(-1)?.[1] ?? 0;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, c] of counts) {
    if (c >= rank) {
      if (le === Infinity) return prevLe * 1000;
      return (prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(1, c - prevCount)) * 1000;
    }
    prevLe = le;
    prevCount = c;
  }
  return NaN;
}

async function paced(n: number, rate: number, one: () => Promise<void>): Promise<void> {
  const started = performance.now();
  const all: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const wait = started + (i * 1000) / rate - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    all.push(one());
  }
  await Promise.all(all);
}

async function runPlain(child: Child, pool: ExtProcPool, n: number, rate: number): Promise<RunResult> {
  const lat: number[] = [];
  const bucketsBefore = await child.bodyAnswerBuckets();
  const before = await child.cpuMicros();
  await paced(n, rate, async () => {
    const s = pool.open({ ...RECOMMENDED_FILTER, messageTimeoutMs: 5000 });
    await s.sendRequestHeaders(HEADERS, false);
    const t = performance.now();
    await s.sendRequestBody(BODY, true);
    lat.push(performance.now() - t);
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await s.sendResponseBody(JSON_RESPONSE, true);
    s.close();
  });
  const cpu = (await child.cpuMicros()) - before;
  const bucketsAfter = await child.bodyAnswerBuckets();
  return {
    cpuPerRequestUs: cpu / n,
    bodyAnswerMs: lat,
    serverP50Ms: bucketQuantile(bucketsBefore, bucketsAfter, 0.5),
    serverP99Ms: bucketQuantile(bucketsBefore, bucketsAfter, 0.99),
  };
}

async function runStreaming(child: Child, pool: ExtProcPool): Promise<number> {
  const before = await child.cpuMicros();
  await paced(STREAM.requests, STREAM.rate, async () => {
    const s = pool.open({ ...RECOMMENDED_FILTER, messageTimeoutMs: 5000 });
    await s.sendRequestHeaders(HEADERS, false);
    await s.sendRequestBody(Buffer.from(JSON.stringify({ ...JSON.parse(BODY.toString()), stream: true })), true);
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    const answers = [];
    for (let i = 0; i < STREAM.chunks; i++) answers.push(s.sendResponseBody(CHUNK, false));
    answers.push(s.sendResponseBody(LAST_CHUNK, true));
    await Promise.all(answers);
    s.close();
  });
  return ((await child.cpuMicros()) - before) / (STREAM.requests * (STREAM.chunks + 1));
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
};
const median = (xs: number[]) => pct(xs, 50);

type Kind = 'tiergate' | 'noop' | 'echo';
const KINDS: Kind[] = ['tiergate', 'noop', 'echo'];
const children = { tiergate: await startChild('tiergate'), noop: await startChild('noop'), echo: await startChild('echo') };
const pools = Object.fromEntries(KINDS.map((k) => [k, new ExtProcPool(children[k].target, 500)])) as Record<Kind, ExtProcPool>;
type Series = { cpuReq: number[]; cpuChunk: number[]; p50: number[]; p99: number[]; sp50: number[]; sp99: number[] };
const results = Object.fromEntries(KINDS.map((k) => [k, { cpuReq: [], cpuChunk: [], p50: [], p99: [], sp50: [], sp99: [] } as Series])) as Record<Kind, Series>;
for (const kind of KINDS) await runPlain(children[kind], pools[kind], 1500, 1000); // warm-up (JIT)
for (let r = 0; r < ROUNDS; r++) {
  // Rotate the order each round so no server always runs first or last.
  for (const kind of KINDS.map((_, i) => KINDS[(i + r) % KINDS.length] as Kind)) {
    const plain = await runPlain(children[kind], pools[kind], PLAIN.requests, PLAIN.rate);
    results[kind].cpuReq.push(plain.cpuPerRequestUs);
    results[kind].p50.push(pct(plain.bodyAnswerMs, 50));
    results[kind].p99.push(pct(plain.bodyAnswerMs, 99));
    results[kind].sp50.push(plain.serverP50Ms);
    results[kind].sp99.push(plain.serverP99Ms);
    results[kind].cpuChunk.push(await runStreaming(children[kind], pools[kind]));
  }
}
for (const p of Object.values(pools)) p.close();
for (const c of Object.values(children)) c.stop();

const t = results.tiergate;
const n = results.noop;
const e = results.echo;
// Ratios are paired: tiergate against each baseline in the same round, then the median over rounds, so slow
// drift of the machine cancels out instead of landing on whichever server ran during it.
const pairedRatio = (a: number[], b: number[]) => median(a.map((x, i) => x / (b[i] as number)));
const row = (name: string, pick: (x: typeof t) => number[], unit: string) => {
  const [a, b, c] = [median(pick(t)), median(pick(n)), median(pick(e))];
  const [rn, re] = [pairedRatio(pick(t), pick(n)), pairedRatio(pick(t), pick(e))];
  console.log(
    `${name.padEnd(30)} ${a.toFixed(3).padStart(9)} ${b.toFixed(3).padStart(9)} ${c.toFixed(3).padStart(9)} ${unit.padEnd(3)} ${rn.toFixed(2).padStart(6)}x ${re.toFixed(2).padStart(9)}x`,
  );
};
console.log(`node ${process.version} ${process.env.BENCH_NODE_FLAGS ?? ''}; ${ROUNDS} rounds; medians, ratios paired per round. plain: ${PLAIN.requests} four-phase requests at ${PLAIN.rate}/s; streaming: ${STREAM.requests} requests x ${STREAM.chunks + 1} chunks at ${STREAM.rate}/s`);
console.log('no-op: a bare grpc-js ext_proc server answering CONTINUE. echo: tiergate\'s transport, no logic, answers of tiergate\'s size and shape (body sent back, 5+2 headers set).');
console.log(`${''.padEnd(30)} ${'tiergate'.padStart(9)} ${'no-op'.padStart(9)} ${'echo'.padStart(9)}     ${'vs no-op'.padStart(7)} ${'vs echo'.padStart(10)}`);
row('server CPU per request', (x) => x.cpuReq, 'us');
row('server CPU per streamed chunk', (x) => x.cpuChunk, 'us');
console.log(
  `${'extra CPU per chunk vs no-op'.padEnd(30)} ${(median(t.cpuChunk.map((x, i) => x - (n.cpuChunk[i] as number)))).toFixed(3).padStart(9)} us  (target <= 40 us; paired per round)`,
);
row('body answer p50, server side', (x) => x.sp50, 'ms');
row('body answer p99, server side', (x) => x.sp99, 'ms');
row('body answer p50, client seen', (x) => x.p50, 'ms');
row('body answer p99, client seen', (x) => x.p99, 'ms');
