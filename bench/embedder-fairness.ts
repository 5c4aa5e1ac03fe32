// The local embedder shared by two tenants, one asking far faster than the model embeds: each question named with
// its tenant (the default, fair-queue.ts) against every question in one queue (the baseline, what it did before:
// the same embedder called without tenants), in the same process, rounds alternating.
//
// acme sends FLOOD questions a second, past what the model embeds (~80/s on 2 cores, `npm run bench:embedder`);
// globex sends QUIET a second. For globex: how many of its questions were refused (a bypass, never embedded, so
// never indexed for later hits), and how long the embedded ones took (the semantic lookup's deadline is 60 ms by
// default; a question embedded after it is still indexed). For acme: questions embedded a second. Prints,
// asserts nothing.
//
//   npm run bench:embedder-fairness -- [rounds, default 2] [seconds per run, default 10] [acme/s, default 200] [globex/s, default 5]
import { EmbedderBusyError } from '../src/cache/embedders/embedder.js';
import { LocalEmbedder } from '../src/cache/embedders/local-embedder.js';
import { paced } from './pace.js';
import { quantile } from './stats.js';

const ROUNDS = Number(process.argv[2] ?? 2);
const SECONDS = Number(process.argv[3] ?? 10);
const FLOOD = Number(process.argv[4] ?? 200);
const QUIET = Number(process.argv[5] ?? 5);

interface Tally {
  sent: number;
  refused: number;
  ms: number[];
}
let serial = 0;

/** `rate` questions a second from `tenant` for SECONDS, each timed from sending to its vector. */
async function send(e: LocalEmbedder, tenant: string | undefined, rate: number, who: string): Promise<Tally> {
  const t: Tally = { sent: 0, refused: 0, ms: [] };
  await paced(rate * SECONDS, rate, async () => {
    const sent = performance.now();
    t.sent++;
    await e.embed([`${who} asks how to configure widget ${serial++} in the north region`], tenant).then(
      () => void t.ms.push(performance.now() - sent),
      (err: unknown) => {
        if (!(err instanceof EmbedderBusyError)) throw err;
        t.refused++;
      },
    );
  });
  return t;
}

async function run(fair: boolean): Promise<{ acme: Tally; globex: Tally; seconds: number }> {
  const e = new LocalEmbedder();
  await e.whenReady();
  await e.embed(['warm up the model']);
  const t0 = performance.now();
  const [acme, globex] = await Promise.all([send(e, fair ? 'acme' : undefined, FLOOD, 'acme'), send(e, fair ? 'globex' : undefined, QUIET, 'globex')]);
  const seconds = (performance.now() - t0) / 1000;
  await e.close();
  return { acme, globex, seconds };
}

const fmt = (ms: number[], q: number) => (ms.length ? `${quantile(ms, q).toFixed(0)} ms` : '-');
console.log(`acme ${FLOOD}/s and globex ${QUIET}/s for ${SECONDS} s, ${ROUNDS} round(s) of each variant`);
console.log('variant                      | globex refused | globex p50 | globex p95 | globex ≤ 60 ms | acme embedded/s');
for (let r = 0; r < ROUNDS; r++) {
  for (const fair of r % 2 === 0 ? [false, true] : [true, false]) {
    const { acme, globex, seconds } = await run(fair);
    const within = globex.ms.filter((m) => m <= 60).length;
    const name = fair ? 'per tenant (default)' : 'one queue (baseline)';
    console.log(
      `${name.padEnd(28)} | ${`${globex.refused}/${globex.sent}`.padStart(14)} | ${fmt(globex.ms, 0.5).padStart(10)} | ${fmt(globex.ms, 0.95).padStart(10)} | ${`${within}/${globex.sent}`.padStart(14)} | ${(acme.ms.length / seconds).toFixed(1).padStart(15)}`,
    );
  }
}
