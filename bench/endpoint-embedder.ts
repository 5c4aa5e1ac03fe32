// The openai embedder in front of an embeddings endpoint that one tenant asks faster than it embeds, against the
// embedder at REF (a temporary git worktree; by default the commit before the bound: every question POSTed at
// once), in the same process, rounds alternating.
//
// The endpoint is a stand-in in a child process that behaves as TEI and vLLM do under load: WORKERS requests
// embedded at a time, SERVICE ms each, the rest queued in arrival order (a request whose client has gone by its
// turn is dropped, which flatters the baseline). acme sends FLOOD questions a second, globex QUIET; each question
// is sent as the semantic lookup sends it: through the semantic cache's circuit breaker (3 failures in a row open
// it for 2 s, every lookup a bypass meanwhile, then one trial), with the embedder's 40 ms timeout, and judged
// against the lookup's 60 ms deadline. Printed per variant: globex's questions embedded within the deadline,
// bypassed while the breaker was open, refused as busy (a bypass, not a failure) and failed (a timeout: what the
// breaker counts); acme's questions embedded, failed and refused a second; the time the breaker was open.
// Prints, asserts nothing.
//
//   npm run bench:endpoint-embedder -- [REF [ROUNDS [SECONDS [FLOOD/s [QUIET/s [WORKERS [SERVICE ms [MAX_CONCURRENCY]]]]]]]]
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CircuitBreaker } from '../src/budget/circuit-breaker.js';
import { EmbedderBusyError, type Embedder } from '../src/cache/embedders/embedder.js';
import { OpenAiEmbedder } from '../src/cache/embedders/openai-embedder.js';
import { paced } from './pace.js';
import { quantile } from './stats.js';

const [refArg, roundsArg, secondsArg, floodArg, quietArg, workersArg, serviceArg, concurrencyArg] = process.argv.slice(2);
const REF = refArg ?? '03fd0cf';
const ROUNDS = Number(roundsArg ?? 2);
const SECONDS = Number(secondsArg ?? 8);
const FLOOD = Number(floodArg ?? 600);
const QUIET = Number(quietArg ?? 10);
const WORKERS = Number(workersArg ?? 4);
const SERVICE_MS = Number(serviceArg ?? 10);
const MAX_CONCURRENCY = Number(concurrencyArg ?? 32);
const TIMEOUT_MS = 40;
const DEADLINE_MS = 60;

/** The stand-in endpoint: `workers` at a time, `serviceMs` each, a FIFO queue beyond them. */
function serve(workers: number, serviceMs: number): void {
  const queue: Array<{ req: IncomingMessage; res: ServerResponse; inputs: number }> = [];
  let busy = 0;
  let served = 0;
  const next = () => {
    while (busy < workers && queue.length > 0) {
      const job = queue.shift() as (typeof queue)[number];
      if (job.res.destroyed || job.req.destroyed) continue; // its client gave up: not embedded
      busy++;
      setTimeout(() => {
        busy--;
        served++;
        const data = Array.from({ length: job.inputs }, (_, index) => ({ index, embedding: [1, 0, 0, 0, 0, 0, 0, 0] }));
        if (!job.res.destroyed) job.res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data }));
        next();
      }, serviceMs);
    }
  };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      queue.push({ req, res, inputs: (JSON.parse(body) as { input: string[] }).input.length });
      next();
    });
  });
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as { port: number }).port }));
  process.on('message', (m) => {
    if (m === 'served') process.send?.({ served });
  });
}

interface Tally {
  sent: number;
  within: number;
  ms: number[];
  /** Not sent: the breaker was open. */
  down: number;
  busy: number;
  failed: number;
}

const BREAKER = { failures: 3, cooldownMs: 2000 };

let serial = 0;
/** `rate` questions a second from `tenant` for SECONDS, each timed from sending to its vector. */
async function send(e: Embedder, breaker: CircuitBreaker, tenant: string, rate: number): Promise<Tally> {
  const t: Tally = { sent: 0, within: 0, ms: [], down: 0, busy: 0, failed: 0 };
  await paced(rate * SECONDS, rate, async () => {
    const sent = performance.now();
    t.sent++;
    if (!breaker.allows()) {
      t.down++;
      return;
    }
    await e.embed([`${tenant} asks about widget ${serial++}`], tenant).then(
      () => {
        breaker.succeeded();
        const ms = performance.now() - sent;
        t.ms.push(ms);
        if (ms <= DEADLINE_MS) t.within++;
      },
      (err: unknown) => {
        if (err instanceof EmbedderBusyError) return void t.busy++; // load, not counted (semantic-cache.ts)
        breaker.failed(BREAKER);
        t.failed++;
      },
    );
  });
  return t;
}

async function main(): Promise<void> {
  const ROOT = fileURLToPath(new URL('..', import.meta.url));
  const base = mkdtempSync(join(tmpdir(), 'tiergate-ref-'));
  execFileSync('git', ['-C', ROOT, 'worktree', 'add', '--detach', '--quiet', join(base, 'tree'), REF]);
  symlinkSync(join(ROOT, 'node_modules'), join(base, 'tree', 'node_modules'));
  const before = (await import(join(base, 'tree', 'src/cache/embedders/openai-embedder.ts'))) as { OpenAiEmbedder: new (o: object) => Embedder };
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--serve', String(WORKERS), String(SERVICE_MS)], { execArgv: ['--import', 'tsx'] });
  const port = await new Promise<number>((r) => child.once('message', (m: { port: number }) => r(m.port)));
  const url = `http://127.0.0.1:${port}/v1`;
  const served = () => new Promise<number>((r) => (child.once('message', (m: { served: number }) => r(m.served)), child.send('served')));
  const variants = [
    { name: `${REF} (all at once)`, make: () => new before.OpenAiEmbedder({ url, model: 'm', apiKey: undefined, timeoutMs: TIMEOUT_MS }) },
    { name: `now (≤ ${MAX_CONCURRENCY} at a time, fair)`, make: () => new OpenAiEmbedder({ url, model: 'm', apiKey: undefined, timeoutMs: TIMEOUT_MS, maxConcurrency: MAX_CONCURRENCY }) },
  ];
  console.log(`endpoint: ${WORKERS} at a time, ${SERVICE_MS} ms each (${((WORKERS * 1000) / SERVICE_MS).toFixed(0)} questions/s); acme ${FLOOD}/s, globex ${QUIET}/s, ${SECONDS} s per run; timeout ${TIMEOUT_MS} ms, deadline ${DEADLINE_MS} ms`);
  console.log('variant                      | globex ≤ 60 ms | down | busy | failed | p50    | acme embedded/s | failed/s | busy/s | breaker open | endpoint served/s | limit at end');
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
        const e = v.make();
        let openMs = 0;
        let openedAt = 0;
        const breaker = new CircuitBreaker(
          () => performance.now(),
          (open) => (open ? (openedAt = performance.now()) : (openMs += performance.now() - openedAt)),
        );
        const s0 = await served();
        const t0 = performance.now();
        const [acme, globex] = await Promise.all([send(e, breaker, 'acme', FLOOD), send(e, breaker, 'globex', QUIET)]);
        const seconds = (performance.now() - t0) / 1000;
        const s1 = await served();
        if (!breaker.allows()) openMs += performance.now() - openedAt; // still open at the end
        const limit = (e as { limit?: { current: number } }).limit?.current;
        await e.close();
        const p50 = globex.ms.length ? `${quantile(globex.ms, 0.5).toFixed(0)} ms` : '-';
        console.log(
          `${v.name.padEnd(28)} | ${`${globex.within}/${globex.sent}`.padStart(14)} | ${String(globex.down).padStart(4)} | ${String(globex.busy).padStart(4)} | ${String(globex.failed).padStart(6)} | ${p50.padStart(6)} | ${(acme.ms.length / seconds).toFixed(0).padStart(15)} | ${(acme.failed / seconds).toFixed(0).padStart(8)} | ${(acme.busy / seconds).toFixed(0).padStart(6)} | ${`${((100 * openMs) / (seconds * 1000)).toFixed(0)}%`.padStart(12)} | ${((s1 - s0) / seconds).toFixed(0).padStart(17)} | ${String(limit ?? '-').padStart(12)}`,
        );
        await new Promise((res) => setTimeout(res, 1000)); // the endpoint's queue drains between runs
      }
    }
  } finally {
    child.kill();
    execFileSync('git', ['-C', ROOT, 'worktree', 'remove', '--force', join(base, 'tree')]);
    rmSync(base, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--serve') serve(Number(process.argv[3]), Number(process.argv[4]));
else await main();
