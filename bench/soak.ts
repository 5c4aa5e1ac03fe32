// Memory over a long run: does a tiergate that has served N requests hold more than one that has served N/2?
// A sidecar that grows a little with every request is OOM-killed in the end, however fast it is.
//
// One tiergate with keys, limits, the exact cache and the ledger on, and in the same run the bare grpc-js
// no-op (bench/server-child.ts), are sent the same mix of traffic in turn: cache misses with new prompts, cache
// hits, SSE streams, the Responses API with and without previous_response_id, a platform key acting for
// thousands of tenants, bad JSON, bad keys, and streams that Envoy resets mid-request. Every `block` requests
// the load pauses and each server reports its heap after full collections. The stores are sized small (2,000
// cache entries, 1,000 response ids) so that they fill in the first blocks: after that a server that keeps
// nothing per request stays flat. Prints the readings and the growth per request over the second half;
// asserts nothing.
//
// Budgets' per-minute windows are kept three minutes (late reconciles still land in them), so per-tenant state
// grows for the first three minutes of traffic; the default run takes eight, its second half after that.
//
//   npm run bench:soak -- [requests per server, default 240000] [requests/s per server, default 500]
//   BENCH_MEMORY_LIMIT_MIB=N runs each server in a memory cgroup limited to N MiB, as in a pod (root only).
//   SOAK_SNAPSHOTS=DIR also writes a heap snapshot of tiergate at every reading (each holds the loop for
//   seconds, which shows up as ledger write timeouts and in RSS).
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { ExtProcPool, RECOMMENDED_FILTER, postHeaders, type Headers } from '../src/dev/envoy-client.js';
import { rowsFromFiles } from '../src/ledger/read.js';
import { startChild, type Child } from './children.js';
import type { CgroupReading } from './memory-cgroup.js';
import { CHUNK, JSON_RESPONSE, LAST_CHUNK, paced } from './extproc-driver.js';

const total = Number(process.argv[2] ?? 240_000);
const rate = Number(process.argv[3] ?? 500);
const BLOCK = Math.max(1000, Math.round(total / 10));
// Every name comes back every 20,000 requests: past that, new per-tenant state is new tenants, not a leak.
const TENANT_NAMES = 1000;

const APP_KEY = 'soak-app-key';
const PLATFORM_KEY = 'soak-platform-key';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

function soakConfig(dir: string): string {
  const huge = 1e12;
  const config = {
    logging: { level: 'warn' },
    auth: {
      mode: 'api_key',
      keys: [
        { id: 'app', sha256: sha(APP_KEY), tenant: 'acme' },
        { id: 'platform', sha256: sha(PLATFORM_KEY), tenants: ['*'] },
      ],
    },
    plans: { big: { models: ['*'], requestsPerMinute: huge, dailyTokenBudget: huge, tokensPerMinute: huge, cache: { mode: 'exact' } } },
    tenants: { '*': { plan: 'big' } },
    cache: { store: 'memory', maxEntries: 2000 },
    routing: { affinity: { store: 'memory', maxEntries: 1000 } },
    ledger: { sinks: [{ type: 'file', name: 'file', dir: join(dir, 'ledger') }], spoolDir: join(dir, 'spool') },
  };
  const file = join(dir, 'soak-config.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

const chatBody = (text: string, extra: Record<string, unknown> = {}) =>
  Buffer.from(JSON.stringify({ model: 'auto', messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: text }], ...extra }));
const auth = (key: string, extra: Headers = []): Headers => [['authorization', `Bearer ${key}`], ...extra];

/** One request of the mix; `i` picks its kind and makes its prompt, request id and tenant. */
async function oneRequest(pool: ExtProcPool, i: number): Promise<void> {
  const s = pool.open({ ...RECOMMENDED_FILTER, messageTimeoutMs: 5000 });
  const id: Headers = [['x-request-id', `soak-${i}`]];
  const kind = i % 20;
  try {
    if (kind === 0) {
      // Bad JSON: answered 400 by tiergate at the body.
      await s.sendRequestHeaders(postHeaders('/v1/chat/completions', auth(APP_KEY, id)), false);
      await s.sendRequestBody(Buffer.from('{"model": "auto", "messages": ['), true);
      return;
    }
    if (kind === 1) {
      // An unknown key: 401 at the headers.
      await s.sendRequestHeaders(postHeaders('/v1/chat/completions', auth(`nope-${i}`, id)), false);
      await s.sendRequestBody(chatBody('hello'), true);
      return;
    }
    if (kind === 2) {
      // Envoy resets the stream mid-request (the client went away before the upstream answered).
      await s.sendRequestHeaders(postHeaders('/v1/chat/completions', auth(APP_KEY, id)), false);
      await s.sendRequestBody(chatBody(`question number ${i} that nobody waits for`), true);
      s.cancel();
      return;
    }
    if (kind === 3 || kind === 4) {
      // The Responses API; every other turn continues an earlier response by its id.
      const extra = kind === 4 ? { previous_response_id: `resp_${i - 1}` } : {};
      await s.sendRequestHeaders(postHeaders('/v1/responses', auth(APP_KEY, id)), false);
      await s.sendRequestBody(Buffer.from(JSON.stringify({ model: 'auto', input: `turn ${i}`, ...extra })), true);
      await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      const usage = { input_tokens: 20, output_tokens: 5, total_tokens: 25 };
      await s.sendResponseBody(Buffer.from(JSON.stringify({ id: `resp_${i}`, object: 'response', status: 'completed', model: 'weak-model', output: [], usage })), true);
      return;
    }
    if (kind === 5 || kind === 6) {
      // An SSE stream of 20 chunks and the usage chunk.
      await s.sendRequestHeaders(postHeaders('/v1/chat/completions', auth(APP_KEY, id)), false);
      await s.sendRequestBody(chatBody(`stream ${i}`, { stream: true }), true);
      await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
      const answers = [];
      for (let c = 0; c < 20; c++) answers.push(s.sendResponseBody(CHUNK, false));
      answers.push(s.sendResponseBody(LAST_CHUNK, true));
      await Promise.all(answers);
      return;
    }
    // The rest are plain requests: a platform key acting for one of many tenants, a prompt asked before
    // (cache hits once stored), or a new prompt (a miss that stores one more entry).
    const headers =
      kind < 10 ? auth(PLATFORM_KEY, [...id, ['x-tenant-id', `tenant-${Math.floor(i / 20) % TENANT_NAMES}`]]) : auth(APP_KEY, id);
    const text = kind < 13 ? `a question asked before, number ${i % 50}` : `a new question, number ${i}`;
    const answered = await s.sendRequestHeaders(postHeaders('/v1/chat/completions', headers), false);
    if (answered.kind === 'immediate') return;
    const body = await s.sendRequestBody(chatBody(text), true);
    if (body.kind === 'immediate') return; // a cache hit
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await s.sendResponseBody(JSON_RESPONSE, true);
  } finally {
    s.close();
  }
}

const mb = (n: number) => (n / 1024 / 1024).toFixed(1);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tiergate-soak-'));
  const children: Child[] = [
    await startChild('tiergate', ['--expose-gc'], { TIERGATE_BENCH_CONFIG: soakConfig(dir) }),
    await startChild('noop', ['--expose-gc']),
  ];
  const pools = children.map((c) => new ExtProcPool(c.target, 500));
  const readings: Array<{ served: number; heaps: NodeJS.MemoryUsage[] }> = [];
  try {
    readings.push({ served: 0, heaps: await Promise.all(children.map((c) => c.heap())) });
    console.log(`${total} requests per server at ${rate}/s each, heap read every ${BLOCK}`);
    for (const c of children) {
      const l = await c.limits();
      const seen = l.constrainedBytes < totalmem() ? `${mb(l.constrainedBytes)} MB` : 'none';
      console.log(`${c.kind}: node ${process.version}, memory limit seen ${seen}, V8 heap limit ${mb(l.heapLimitBytes)} MB, young generation now ${mb(l.youngBytes)} MB`);
    }
    if (children.some((c) => c.cgroup())) console.log('each server in its own memory cgroup; cgroup columns are the kernel\'s, read before the collections: anonymous / page cache (MB)');
    console.log('served   | tiergate heap / buffers / rss (MB) | no-op heap / buffers / rss (MB)');
    for (let served = 0; served < total; ) {
      const n = Math.min(BLOCK, total - served);
      let k = 0;
      await paced(n * pools.length, rate * pools.length, () => {
        const i = served + Math.floor(k / pools.length);
        return oneRequest(pools[k++ % pools.length] as ExtProcPool, i);
      });
      served += n;
      const held = children.map((c) => c.cgroup());
      const heaps = await Promise.all(children.map((c) => c.heap()));
      readings.push({ served, heaps });
      // SOAK_SNAPSHOTS=DIR: a heap snapshot of tiergate at every reading, to compare what a long run kept.
      const snapshots = process.env.SOAK_SNAPSHOTS;
      if (snapshots) await (children[0] as Child).snapshot(join(snapshots, `tiergate-${served}.heapsnapshot`));
      const [t, o] = heaps as [NodeJS.MemoryUsage, NodeJS.MemoryUsage];
      const cols = (u: NodeJS.MemoryUsage) => `${mb(u.heapUsed).padStart(6)} / ${mb(u.arrayBuffers).padStart(7)} / ${mb(u.rss).padStart(6)}`;
      const kernel = (r: CgroupReading | undefined) => (r ? ` | ${mb(r.anonBytes).padStart(6)} / ${mb(r.fileBytes).padStart(6)}` : '');
      console.log(`${String(served).padStart(8)} | ${cols(t).padStart(34)} | ${cols(o).padStart(30)}${kernel(held[0])}${kernel(held[1])}`);
    }
    // The last rows reach the file within the ledger's linger and sweep (100 ms at the defaults).
    await new Promise((r) => setTimeout(r, 1000));
    await printMix(join(dir, 'ledger'));
  } finally {
    for (const p of pools) p.close();
    await Promise.all(children.map((c) => c.stop()));
  }
  for (const c of children) {
    const r = c.cgroup();
    if (r) console.log(`${c.kind}: cgroup peak ${mb(r.peakBytes)} MB (cache included), limit met ${r.limitHits} times, OOM kills ${r.oomKills}`);
  }
  // Growth per request over the second half, by a least-squares line through its readings (the first half is
  // where the bounded stores fill up).
  const half = readings.filter((r) => r.served >= total / 2);
  children.forEach((c, j) => {
    const xs = half.map((r) => r.served);
    const per = (f: (u: NodeJS.MemoryUsage) => number) => slope(xs, half.map((r) => f(r.heaps[j] as NodeJS.MemoryUsage))).toFixed(2);
    console.log(`${c.kind}: growth over the second half (${half.length} readings): heap ${per((u) => u.heapUsed)}, buffers ${per((u) => u.arrayBuffers)} bytes per request`);
  });
}

/** What tiergate's ledger says it served, so the mix is seen, not assumed: rows by status, path and cache. */
async function printMix(ledgerDir: string): Promise<void> {
  const files = readdirSync(ledgerDir).filter((f) => f.endsWith('.jsonl')).map((f) => join(ledgerDir, f));
  const counts = new Map<string, number>();
  let rows = 0;
  const tenants = new Set<string>();
  for await (const row of rowsFromFiles(files)) {
    rows++;
    tenants.add(row.tenant_id);
    const k = `${row.path} ${row.status}${row.cache_hit ? ' (cache hit)' : ''}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  console.log(`tiergate's ledger: ${rows} rows, ${tenants.size} tenants`);
  for (const [k, n] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(8)}  ${k}`);
}

function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += ((xs[i] as number) - mx) * ((ys[i] as number) - my);
    den += ((xs[i] as number) - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

await main();
