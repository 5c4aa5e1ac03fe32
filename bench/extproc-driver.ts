// Drives a server child the way Envoy would, for the benchmarks: realistic requests and responses, paced
// four-phase requests (CPU per request, body-answer latency) and streamed responses (CPU per chunk).
import { ExtProcPool, RECOMMENDED_FILTER, chatRequestHeaders } from '../src/dev/envoy-client.js';
import type { Child, Usage } from './children.js';
import { paced } from './pace.js';

export { paced };

export const STREAM = { requests: 400, rate: 100, chunks: 100 };

export const HEADERS = chatRequestHeaders([['x-request-id', 'bench']]);
// A realistic small chat request: a system prompt and two turns.
export const BODY = Buffer.from(
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
export const CHUNK = Buffer.from(chunkJson({ choices: [{ index: 0, delta: { content: 'token ' }, logprobs: null, finish_reason: null }], usage: null }));
export const LAST_CHUNK = Buffer.from(chunkJson({ choices: [], usage: { prompt_tokens: 60, completion_tokens: 100, total_tokens: 160 } }) + 'data: [DONE]\n\n');

// What a backend answers (usage included, as OpenAI and vLLM always do for non-streamed requests).
export const JSON_RESPONSE = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-bench',
    object: 'chat.completion',
    created: 1_763_800_000,
    model: 'weak-model',
    choices: [{ index: 0, message: { role: 'assistant', content: 'Open the audit tab of the secrets console.' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 60, completion_tokens: 10, total_tokens: 70 },
  }),
);

export interface RunResult {
  cpuPerRequestUs: number;
  /** Main-thread GC pause per request, microseconds (part of cpuPerRequestUs). */
  gcPerRequestUs: number;
  /** Client-observed: sending request_body → its answer, through the driver's event loop and loopback. */
  bodyAnswerMs: number[];
  /** Server-side: message received → answer written (the tiergate_extproc_phase_seconds histogram). */
  serverP50Ms: number;
  serverP99Ms: number;
  /** Requests per second the driver really sent and finished: below the target when it could not keep up. */
  achievedRate: number;
}

/** Prometheus histogram_quantile: linear interpolation inside the bucket that holds the rank. */
export function bucketQuantile(before: Array<[string, number]>, after: Array<[string, number]>, q: number): number {
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

export interface CpuPerRequest {
  total: number;
  user: number;
  system: number;
  /** Main-thread GC pause per request, microseconds (part of user time). */
  gc: number;
}

/**
 * One round of the interleaved benches (bench:ab, bench:variants): `n` plain requests to each server, sent to
 * the servers in turn at 1,000/s in all, so machine drift hits every server alike. Returns each server's CPU
 * microseconds per request, in the order of `children`.
 */
export async function interleavedRound(children: readonly Child[], pools: readonly ExtProcPool[], n: number): Promise<CpuPerRequest[]> {
  const before = await Promise.all(children.map((c) => c.cpuUsage()));
  let i = 0;
  await paced(n * pools.length, 1000, () => plainRequest(pools[i++ % pools.length] as ExtProcPool));
  const after = await Promise.all(children.map((c) => c.cpuUsage()));
  return after.map((a, j) => perRequest(before[j] as Usage, a, n));
}

/** A server's CPU and main-thread GC between two readings, per request, in microseconds. */
function perRequest(before: Usage, after: Usage, n: number): CpuPerRequest {
  const user = (after.user - before.user) / n;
  const system = (after.system - before.system) / n;
  return { total: user + system, user, system, gc: ((after.gcMs - before.gcMs) * 1000) / n };
}

export type Starter = () => Promise<Child>;

/**
 * Two processes whose main-thread GC pauses per request are within this many microseconds of each other ran in
 * the same GC regime (bench/server-child.ts): a comparison of the two measures their code, not their luck.
 */
export const SAME_REGIME_US = 8;
export const sameRegime = (gcA: number, gcB: number): boolean => Math.abs(gcA - gcB) < SAME_REGIME_US;

/**
 * Requests per server before a new process is measured. A new tiergate measured 1,220, 924, then ~700 us per
 * request over its first three thousands of requests (the JIT still compiling), the no-op 918, 628, then
 * ~560, so the first 2,000 are not representative; 3,000 leaves a margin.
 */
export const WARM_UP = 3000;

/**
 * Runs `work` against new server processes, one per starter, each with its own client pool; closes the pools
 * and waits for the processes to exit afterwards, whatever happened.
 */
export async function withNewServers<T>(starters: readonly Starter[], work: (children: Child[], pools: ExtProcPool[]) => Promise<T>): Promise<T> {
  const children = await Promise.all(starters.map((start) => start()));
  const pools = children.map((c) => new ExtProcPool(c.target, 500));
  try {
    return await work(children, pools);
  } finally {
    for (const p of pools) p.close();
    await Promise.all(children.map((c) => c.stop()));
  }
}

/**
 * One round on server processes of its own: start them, warm each up (JIT), measure one interleaved round,
 * stop them. Two processes of the very same server differ by up to ~60 us per request for as long as they run
 * (the GC regime each lands in, see bench/server-child.ts), so a comparison within one set of processes
 * measures which process got lucky as much as the code; new processes every round sample that luck instead.
 */
export function freshRound(starters: readonly Starter[], n: number, warmUp = WARM_UP): Promise<CpuPerRequest[]> {
  return withNewServers(starters, async (children, pools) => {
    await interleavedRound(children, pools, warmUp);
    return interleavedRound(children, pools, n);
  });
}

/** One non-streaming request, all four phases; the request-body answer time is pushed to `bodyAnswerMs`. */
export async function plainRequest(pool: ExtProcPool, bodyAnswerMs?: number[]): Promise<void> {
  const s = pool.open({ ...RECOMMENDED_FILTER, messageTimeoutMs: 5000 });
  await s.sendRequestHeaders(HEADERS, false);
  const t = performance.now();
  await s.sendRequestBody(BODY, true);
  bodyAnswerMs?.push(performance.now() - t);
  await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
  await s.sendResponseBody(JSON_RESPONSE, true);
  s.close();
}

export async function runPlain(child: Child, pool: ExtProcPool, n: number, rate: number): Promise<RunResult> {
  const lat: number[] = [];
  const bucketsBefore = await child.bodyAnswerBuckets();
  const before = await child.cpuUsage();
  const started = performance.now();
  await paced(n, rate, () => plainRequest(pool, lat));
  const seconds = (performance.now() - started) / 1000;
  const cpu = perRequest(before, await child.cpuUsage(), n);
  const bucketsAfter = await child.bodyAnswerBuckets();
  return {
    cpuPerRequestUs: cpu.total,
    gcPerRequestUs: cpu.gc,
    bodyAnswerMs: lat,
    serverP50Ms: bucketQuantile(bucketsBefore, bucketsAfter, 0.5),
    serverP99Ms: bucketQuantile(bucketsBefore, bucketsAfter, 0.99),
    achievedRate: n / seconds,
  };
}

export async function runStreaming(child: Child, pool: ExtProcPool): Promise<number> {
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

