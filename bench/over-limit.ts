// What a tenant past its requests-per-minute limit costs the process, and the tenants beside it: this checkout
// against tiergate at REF (a temporary git worktree; by default the commit before refusals on the request
// headers, full-windows.ts), in the same run, on new server processes each round, the order alternating.
//
// "flood" (1 request a minute) sends FLOOD requests a second with bodies of MIB MiB (an agent's conversation),
// all refused but the first of each minute, which is answered like any request; "quiet" (no limit) sends the
// bench's plain four-phase requests at QUIET a second. Both send through the Envoy-faithful client, which sends
// no body after an answer on the headers, as Envoy does. Per server, in turn:
//   1. quiet alone: its body-answer latency, client seen (the baseline of 4);
//   2. nothing: the server's CPU when idle (timers, the ledger's sweeps), per second;
//   3. flood alone: the server's CPU per second, and per flood request over the idle figure;
//   4. the same flood with a key that matches none: refused on the headers by authentication, the least any
//      request costs the process at that rate (on this 2-core VM ~1.5 ms at 50/s: each request wakes it);
//   5. both at once: quiet's body-answer latency while the flood runs.
// Prints, asserts nothing.     npm run bench:over-limit -- [REF [ROUNDS [SECONDS [FLOOD/s [MIB]]]]]
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExtProcPool, RECOMMENDED_FILTER, chatRequestHeaders, type FilterConfig } from '../src/dev/envoy-client.js';
import { startChild, type Child } from './children.js';
import { BODY, JSON_RESPONSE, paced } from './extproc-driver.js';
import { quantile } from './stats.js';

const [refArg, roundsArg, secondsArg, floodArg, mibArg] = process.argv.slice(2);
/** The last commit that read every request's body before refusing it for requests per minute. */
const REF = refArg ?? '3055a32';
const ROUNDS = Number(roundsArg ?? 3);
const SECONDS = Number(secondsArg ?? 10);
const FLOOD = Number(floodArg ?? 50);
const MIB = Number(mibArg ?? 1);
const QUIET = 100;
const IDLE_SECONDS = 5;
const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

const dir = mkdtempSync(join(tmpdir(), 'tiergate-over-limit-'));
const sha = (key: string) => createHash('sha256').update(key).digest('hex');
const configFile = join(dir, 'config.json');
writeFileSync(
  configFile,
  JSON.stringify({
    auth: { mode: 'api_key', keys: [{ id: 'flood', sha256: sha('flood-key'), tenant: 'flood' }, { id: 'quiet', sha256: sha('quiet-key'), tenant: 'quiet' }] },
    tenants: { flood: { requestsPerMinute: 1 } },
    ledger: { sinks: [{ type: 'file', name: 'file', dir: join(dir, 'ledger') }], spoolDir: join(dir, 'spool') },
  }),
);

// An agent's history of about MIB MiB: tool calls and the files they read, as large requests mostly are.
const prose = (chars: number) => 'the function returns a value when the quick brown fox jumps over the lazy dog '.repeat(Math.ceil(chars / 78)).slice(0, chars);
const floodBody = (() => {
  const per = Math.floor((MIB * 1024 * 1024) / 100) - 200;
  const messages: object[] = [{ role: 'system', content: 'You are a coding agent.' }];
  for (let i = 0; i < 50; i++) {
    messages.push({ role: 'assistant', content: null, tool_calls: [{ id: `call_${i}`, type: 'function', function: { name: 'read_file', arguments: `{"path":"src/f${i}.ts"}` } }] });
    messages.push({ role: 'tool', tool_call_id: `call_${i}`, content: prose(per * 2) });
  }
  return Buffer.from(JSON.stringify({ model: 'auto', messages }));
})();

const FILTER: FilterConfig = { ...RECOMMENDED_FILTER, messageTimeoutMs: 10_000, bufferLimitBytes: 64 * 1024 * 1024 };
const headersOf = (key: string) => chatRequestHeaders([['authorization', `Bearer ${key}`], ['x-request-id', 'bench']]);
const FLOOD_HEADERS = headersOf('flood-key');
const NO_KEY_HEADERS = headersOf('no-such-key');
const QUIET_HEADERS = headersOf('quiet-key');

interface Tally {
  refusedOnHeaders: number;
  refusedOnBody: number;
  admitted: number;
}

/** One request, as Envoy sends it: the body only when the headers were let through, the response only when admitted. */
async function one(pool: ExtProcPool, headers: Array<[string, string]>, body: Buffer, tally?: Tally, bodyMs?: number[]): Promise<void> {
  const s = pool.open(FILTER);
  try {
    const head = await s.sendRequestHeaders(headers, false);
    if (head.kind !== 'continue') {
      if (tally) tally.refusedOnHeaders++;
      return;
    }
    const t = performance.now();
    const o = await s.sendRequestBody(body, true);
    bodyMs?.push(performance.now() - t);
    if (o.kind !== 'continue') {
      if (tally) tally.refusedOnBody++;
      return;
    }
    if (tally) tally.admitted++;
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await s.sendResponseBody(JSON_RESPONSE, true);
  } finally {
    s.close();
  }
}

const flood = (pool: ExtProcPool, tally: Tally, headers = FLOOD_HEADERS) => paced(FLOOD * SECONDS, FLOOD, () => one(pool, headers, floodBody, tally));
const quiet = (pool: ExtProcPool, ms: number[]) => paced(QUIET * SECONDS, QUIET, () => one(pool, QUIET_HEADERS, BODY, undefined, ms));

interface Result {
  /** Server CPU, ms per second: idle, and during the flood alone. */
  idleCpu: number;
  floodCpu: number;
  /** Server CPU per flood request, over the idle figure; the same for the flood with a wrong key. */
  floodCpuMs: number;
  noKeyCpuMs: number;
  tally: Tally;
  alone: number[];
  beside: number[];
}

async function measure(child: Child): Promise<Result> {
  const pool = new ExtProcPool(child.target, 500);
  try {
    await paced(3000, 500, () => one(pool, QUIET_HEADERS, BODY)); // JIT warm-up
    const alone: number[] = [];
    await quiet(pool, alone);
    const idleStart = await child.cpuMicros();
    const idleFrom = performance.now();
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    const idleCpu = ((await child.cpuMicros()) - idleStart) / (performance.now() - idleFrom);
    const tally: Tally = { refusedOnHeaders: 0, refusedOnBody: 0, admitted: 0 };
    /** Server CPU in ms per second while `run` runs. */
    const cpuWhile = async (run: () => Promise<void>) => {
      const before = await child.cpuMicros();
      const from = performance.now();
      await run();
      return ((await child.cpuMicros()) - before) / (performance.now() - from);
    };
    const floodCpu = await cpuWhile(() => flood(pool, tally));
    const perRequest = (cpu: number) => (cpu - idleCpu) / FLOOD;
    const noKeyCpu = await cpuWhile(() => flood(pool, { refusedOnHeaders: 0, refusedOnBody: 0, admitted: 0 }, NO_KEY_HEADERS));
    const beside: number[] = [];
    await Promise.all([flood(pool, tally), quiet(pool, beside)]);
    return { idleCpu, floodCpu, floodCpuMs: perRequest(floodCpu), noKeyCpuMs: perRequest(noKeyCpu), tally, alone, beside };
  } finally {
    pool.close();
    await child.stop();
  }
}

const base = join(dir, 'base');
execFileSync('git', ['-C', ROOT, 'worktree', 'add', '--detach', '--quiet', base, REF]);
symlinkSync(join(ROOT, 'node_modules'), join(base, 'node_modules'));
try {
  const env = { TIERGATE_BENCH_CONFIG: configFile };
  const variants = [
    { name: `${REF} (reads the body)`, start: () => startChild('tiergate', [], env, base) },
    { name: 'this checkout', start: () => startChild('tiergate', [], env) },
  ];
  console.log(`node ${process.version}; flood ${FLOOD}/s of ${(floodBody.length / 1024 / 1024).toFixed(2)} MiB past 1 request a minute, quiet ${QUIET}/s; ${SECONDS} s per phase, ${ROUNDS} rounds`);
  console.log('server CPU in ms per second (idle → flood alone); per flood request over idle (with a wrong key: refused by authentication);');
  console.log("the flood requests' outcomes; quiet's body answer, client seen, alone → beside the flood");
  console.log('variant                  | CPU ms/s idle → flood | per flood request (wrong key) | on headers / on body / admitted | quiet p50             | quiet p99');
  const ms = (xs: number[], q: number) => `${quantile(xs, q).toFixed(2)} ms`;
  for (let r = 0; r < ROUNDS; r++) {
    for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
      const x = await measure(await v.start());
      const t = x.tally;
      console.log(
        `${v.name.padEnd(24)} | ${`${x.idleCpu.toFixed(0)} → ${x.floodCpu.toFixed(0)}`.padStart(21)} | ${`${x.floodCpuMs.toFixed(2)} ms (${x.noKeyCpuMs.toFixed(2)} ms)`.padStart(29)} | ${`${t.refusedOnHeaders} / ${t.refusedOnBody} / ${t.admitted}`.padStart(31)} | ${`${ms(x.alone, 0.5)} → ${ms(x.beside, 0.5)}`.padStart(21)} | ${ms(x.alone, 0.99)} → ${ms(x.beside, 0.99)}`,
      );
    }
  }
} finally {
  execFileSync('git', ['-C', ROOT, 'worktree', 'remove', '--force', base]);
  rmSync(dir, { recursive: true, force: true });
}
