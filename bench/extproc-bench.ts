// tiergate vs a no-op ext_proc server on the same grpc-js, in the same run, driven by the Envoy-faithful
// client from another process. Prints server CPU time per request and per streamed chunk, request-body answer
// latency p50/p99, and each ratio to the no-op. Rounds alternate between the two servers; medians are
// reported. Never asserts on time.   npm run bench [-- ROUNDS]
import { ExtProcPool, RECOMMENDED_FILTER } from '../src/dev/envoy-client.js';
import { startChild, type Child } from './children.js';

const ROUNDS = Number(process.argv[2] ?? 5);
const PLAIN = { requests: 4000, rate: 1000 };
const STREAM = { requests: 400, rate: 100, chunks: 100 };

const HEADERS: Array<[string, string]> = [
  [':method', 'POST'],
  [':path', '/v1/chat/completions'],
  [':authority', 'gw'],
  [':scheme', 'http'],
  ['content-type', 'application/json'],
  ['x-request-id', 'bench'],
];
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
const CHUNK = Buffer.from(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'token ' } }] })}\n\n`);

interface RunResult {
  cpuPerRequestUs: number;
  bodyAnswerMs: number[];
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
  const before = await child.cpuMicros();
  await paced(n, rate, async () => {
    const s = pool.open({ ...RECOMMENDED_FILTER, messageTimeoutMs: 5000 });
    await s.sendRequestHeaders(HEADERS, false);
    const t = performance.now();
    await s.sendRequestBody(BODY, true);
    lat.push(performance.now() - t);
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await s.sendResponseBody(Buffer.from('{"choices":[]}'), true);
    s.close();
  });
  const cpu = (await child.cpuMicros()) - before;
  return { cpuPerRequestUs: cpu / n, bodyAnswerMs: lat };
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
    answers.push(s.sendResponseBody(Buffer.alloc(0), true));
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

const children = { tiergate: await startChild('tiergate'), noop: await startChild('noop') };
const pools = { tiergate: new ExtProcPool(children.tiergate.target, 500), noop: new ExtProcPool(children.noop.target, 500) };
const results: Record<'tiergate' | 'noop', { cpuReq: number[]; cpuChunk: number[]; p50: number[]; p99: number[] }> = {
  tiergate: { cpuReq: [], cpuChunk: [], p50: [], p99: [] },
  noop: { cpuReq: [], cpuChunk: [], p50: [], p99: [] },
};
for (const kind of ['tiergate', 'noop'] as const) await runPlain(children[kind], pools[kind], 1500, 1000); // warm-up (JIT)
for (let r = 0; r < ROUNDS; r++) {
  for (const kind of (r % 2 ? ['noop', 'tiergate'] : ['tiergate', 'noop']) as Array<'tiergate' | 'noop'>) {
    const plain = await runPlain(children[kind], pools[kind], PLAIN.requests, PLAIN.rate);
    results[kind].cpuReq.push(plain.cpuPerRequestUs);
    results[kind].p50.push(pct(plain.bodyAnswerMs, 50));
    results[kind].p99.push(pct(plain.bodyAnswerMs, 99));
    results[kind].cpuChunk.push(await runStreaming(children[kind], pools[kind]));
  }
}
for (const p of Object.values(pools)) p.close();
for (const c of Object.values(children)) c.stop();

const t = results.tiergate;
const n = results.noop;
const row = (name: string, a: number, b: number, unit: string) =>
  console.log(`${name.padEnd(34)} ${a.toFixed(3).padStart(9)} ${b.toFixed(3).padStart(9)} ${unit.padEnd(4)} ${(a / b).toFixed(2).padStart(6)}x`);
console.log(`node ${process.version}; ${ROUNDS} rounds; medians. plain: ${PLAIN.requests} four-phase requests at ${PLAIN.rate}/s; streaming: ${STREAM.requests} requests x ${STREAM.chunks + 1} chunks at ${STREAM.rate}/s`);
console.log(`${''.padEnd(34)} ${'tiergate'.padStart(9)} ${'no-op'.padStart(9)}      ${'ratio'.padStart(7)}`);
row('server CPU per request', median(t.cpuReq), median(n.cpuReq), 'us');
row('server CPU per streamed chunk', median(t.cpuChunk), median(n.cpuChunk), 'us');
row('request-body answer p50', median(t.p50), median(n.p50), 'ms');
row('request-body answer p99', median(t.p99), median(n.p99), 'ms');
