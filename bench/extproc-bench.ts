// tiergate vs a no-op ext_proc server (and an 'echo' one) on the same grpc-js, in the same run, driven by the Envoy-faithful
// client from another process. Prints server CPU time per request and per streamed chunk, request-body answer
// latency p50/p99, and each ratio to the no-op. Every round starts new server processes (a process's GC regime
// moves its CPU per request by ~50 us for its whole life, see bench/server-child.ts) and runs the servers one
// after another, in an order that rotates; medians are reported. Never asserts on time.   npm run bench [-- ROUNDS]
import type { ExtProcPool } from '../src/dev/envoy-client.js';
import { startChild, type Child } from './children.js';
import { SAME_REGIME_US, STREAM, WARM_UP, runPlain, runStreaming, sameRegime, withNewServers } from './extproc-driver.js';
import { median, quantile } from './stats.js';

const ROUNDS = Number(process.argv[2] ?? 7);
const PLAIN = { requests: 4000, rate: 1000 };

/** The `p`th percentile. */
const pct = (xs: number[], p: number) => quantile(xs, p / 100);

type Kind = 'tiergate' | 'noop' | 'echo';
const KINDS: Kind[] = ['tiergate', 'noop', 'echo'];
type Series = { cpuReq: number[]; gcReq: number[]; cpuChunk: number[]; p50: number[]; p99: number[]; sp50: number[]; sp99: number[]; rate: number[] };
const results = Object.fromEntries(
  KINDS.map((k) => [k, { cpuReq: [], gcReq: [], cpuChunk: [], p50: [], p99: [], sp50: [], sp99: [], rate: [] } as Series]),
) as Record<Kind, Series>;
for (let r = 0; r < ROUNDS; r++) {
  await withNewServers(
    KINDS.map((k) => () => startChild(k)),
    async (children, pools) => {
      for (let i = 0; i < KINDS.length; i++) await runPlain(children[i] as Child, pools[i] as ExtProcPool, WARM_UP, 1000); // warm-up (JIT)
      // Rotate the order each round so no server always runs first or last.
      for (let i = 0; i < KINDS.length; i++) {
        const j = (i + r) % KINDS.length;
        const [kind, child, pool] = [KINDS[j] as Kind, children[j] as Child, pools[j] as ExtProcPool];
        const plain = await runPlain(child, pool, PLAIN.requests, PLAIN.rate);
        results[kind].cpuReq.push(plain.cpuPerRequestUs);
        results[kind].gcReq.push(plain.gcPerRequestUs);
        results[kind].p50.push(pct(plain.bodyAnswerMs, 50));
        results[kind].p99.push(pct(plain.bodyAnswerMs, 99));
        results[kind].sp50.push(plain.serverP50Ms);
        results[kind].sp99.push(plain.serverP99Ms);
        results[kind].rate.push(plain.achievedRate);
        results[kind].cpuChunk.push(await runStreaming(child, pool));
      }
    },
  );
}

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
row('... of which main-thread GC', (x) => x.gcReq, 'us');
console.log(
  `${'  per round, tiergate/no-op'.padEnd(30)} ${t.cpuReq.map((x, i) => `${x.toFixed(0)}/${(n.cpuReq[i] as number).toFixed(0)} us (GC ${(t.gcReq[i] as number).toFixed(0)}/${(n.gcReq[i] as number).toFixed(0)})`).join(', ')}`,
);
// The ratio over the rounds where tiergate and the no-op drew the same GC regime: a process in the costly one
// costs ~50 us more per request whatever its code, so this is the steadier estimate of what the code costs.
const alike = t.cpuReq.flatMap((x, i) => (sameRegime(t.gcReq[i] as number, n.gcReq[i] as number) ? [x / (n.cpuReq[i] as number)] : []));
console.log(
  `${'  same GC regime'.padEnd(30)} ${alike.length ? `tiergate/no-op ${median(alike).toFixed(2)}x, median of the ${alike.length} rounds whose GC pauses were within ${SAME_REGIME_US} us` : `no round had both within ${SAME_REGIME_US} us`}`,
);
row('server CPU per streamed chunk', (x) => x.cpuChunk, 'us');
console.log(
  `${'extra CPU per chunk vs no-op'.padEnd(30)} ${(median(t.cpuChunk.map((x, i) => x - (n.cpuChunk[i] as number)))).toFixed(3).padStart(9)} us  (target <= 40 us; paired per round)`,
);
row('body answer p50, server side', (x) => x.sp50, 'ms');
row('body answer p99, server side', (x) => x.sp99, 'ms');
row('body answer p50, client seen', (x) => x.p50, 'ms');
row('body answer p99, client seen', (x) => x.p99, 'ms');
// Requests that arrive in bunches cost a server less CPU each (fewer wake-ups per request): when the
// driver falls behind, the CPU figures describe another load than the one intended.
const slowest = Math.min(...KINDS.map((k) => median(results[k].rate)));
console.log(
  `driver pace (median plain rate reached, slowest server): ${slowest.toFixed(0)}/s of ${PLAIN.rate}/s` +
    (slowest < 0.95 * PLAIN.rate ? ' -- below 95%: the driver did not keep up; compare runs with care' : ''),
);
