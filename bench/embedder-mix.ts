// The local embedder on questions of mixed length: batches of like length (the default, batch-plan.ts) against
// batches in arrival order (the baseline, what it did before), in the same process, rounds alternating.
//
// The model costs a batch about its size times its longest question, so in arrival order one long question made
// every short one beside it as slow as itself. First the model's time per question by length and batch size,
// and for 31 short questions batched with one long one. Then each round runs both planners on the same questions, 9 short
// (~85 characters) to 1 long (1,024): kept waiting at MAX_WAITING (the rate the embedder sustains), then paced at
// a rate below it (the latency a lookup sees, and how many short questions are embedded within the semantic
// cache's default 60 ms lookup deadline). Prints, asserts nothing.
//
//   npm run bench:embedder-mix -- [rounds, default 2] [questions per saturated run, default 640] [paced rate/s, default 30]
import { EmbedderBusyError } from '../src/cache/embedders/embedder.js';
import type { BatchPlanner } from '../src/cache/embedders/fair-queue.js';
import { LocalEmbedder, MAX_WAITING } from '../src/cache/embedders/local-embedder.js';
import { paced } from './pace.js';
import { median } from './stats.js';

const ROUNDS = Number(process.argv[2] ?? 2);
const SATURATED = Number(process.argv[3] ?? 640);
const RATE = Number(process.argv[4] ?? 30);
const PACED_SECONDS = 15;
const DEADLINE_MS = 60;

let serial = 0;
const short = () => `how do I configure widget number ${serial++} for the north region of our deployment?`;
const long = () => {
  let s = `question ${serial++}:`;
  for (let k = 0; s.length < 1024; k++) s += ` word${(serial * 31 + k) % 997}`;
  return s.slice(0, 1024);
};
const questionAt = (i: number) => (i % 10 === 9 ? long() : short());

const inArrivalOrder: BatchPlanner = (queue, max) => queue.splice(0, max);
const planners = { 'arrival order (baseline)': inArrivalOrder, 'by length (default)': undefined } as const;
type Name = keyof typeof planners;

/** Questions per second with MAX_WAITING kept waiting; refused ones are re-sent. */
async function saturated(e: LocalEmbedder, n: number): Promise<number> {
  const t = performance.now();
  let next = 0;
  let done = 0;
  await new Promise<void>((resolve) => {
    const send = (i: number): void => {
      e.embed([questionAt(i)]).then(
        () => {
          if (++done === n) resolve();
          else if (next < n) send(next++);
        },
        (err: unknown) => {
          if (!(err instanceof EmbedderBusyError)) throw err;
          setTimeout(() => send(i), 5);
        },
      );
    };
    for (; next < Math.min(n, MAX_WAITING); next++) send(next);
  });
  return n / ((performance.now() - t) / 1000);
}

/** Latency of each question sent at `rate` a second for PACED_SECONDS, short and long apart. */
async function pacedLatency(e: LocalEmbedder, rate: number): Promise<{ short: number[]; long: number[] }> {
  const out = { short: [] as number[], long: [] as number[] };
  await paced(rate * PACED_SECONDS, rate, async (i) => {
    const sent = performance.now();
    const kind = i % 10 === 9 ? 'long' : 'short';
    await e.embed([questionAt(i)]).then(() => void out[kind].push(performance.now() - sent));
  });
  return out;
}

/** Milliseconds per question for batches of `k` questions of `chars` characters (median of `reps`), and 31 + 1 mixed. */
async function batchCosts(e: LocalEmbedder): Promise<void> {
  const text = (chars: number) => {
    let s = `question ${serial++}:`;
    for (let k = 0; s.length < chars; k++) s += ` word${(serial * 31 + k) % 997}`;
    return s.slice(0, chars);
  };
  const ms = async (texts: () => string[], reps: number) => {
    const ts: number[] = [];
    for (let r = 0; r < reps; r++) {
      const batch = texts();
      const t = performance.now();
      await e.embed(batch);
      ts.push(performance.now() - t);
    }
    return median(ts);
  };
  for (const chars of [64, 256, 1024]) {
    const one = await ms(() => [text(chars)], 5);
    const of32 = (await ms(() => Array.from({ length: 32 }, () => text(chars)), 3)) / 32;
    console.log(`  ${String(chars).padStart(4)} characters: ${one.toFixed(1)} ms a question alone, ${of32.toFixed(1)} ms each in a batch of 32`);
  }
  const mixed = await ms(() => [...Array.from({ length: 31 }, () => text(64)), text(1024)], 3);
  const plain = await ms(() => Array.from({ length: 32 }, () => text(64)), 3);
  console.log(`  a batch of 32 of 64 characters: ${plain.toFixed(0)} ms; 31 of them and one of 1,024: ${mixed.toFixed(0)} ms (${(mixed / plain).toFixed(1)}x)`);
}

const p = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] as number;
const embedders = new Map<Name, LocalEmbedder>();
for (const name of Object.keys(planners) as Name[]) {
  const e = new LocalEmbedder(planners[name]);
  await e.whenReady();
  for (let i = 0; i < 20; i++) await e.embed([questionAt(i)]); // warm-up
  embedders.set(name, e);
}
// In arrival order, so that a batch posted whole reaches the model whole.
console.log(`node ${process.version}; the model's time by question length (batches posted whole, one at a time):`);
await batchCosts(embedders.get('arrival order (baseline)') as LocalEmbedder);
const rates = new Map<Name, number[]>();
const latencies = new Map<Name, { short: number[]; long: number[] }>();
for (let r = 0; r < ROUNDS; r++) {
  const order = (Object.keys(planners) as Name[]).slice();
  if (r % 2 === 1) order.reverse();
  for (const name of order) {
    const e = embedders.get(name) as LocalEmbedder;
    rates.set(name, [...(rates.get(name) ?? []), await saturated(e, SATURATED)]);
    const l = await pacedLatency(e, RATE);
    const acc = latencies.get(name) ?? { short: [], long: [] };
    latencies.set(name, { short: [...acc.short, ...l.short], long: [...acc.long, ...l.long] });
  }
}
for (const e of embedders.values()) await e.close();

console.log(`local embedder (USE-lite), 9 short questions (~85 chars) to 1 long (1,024); ${ROUNDS} rounds, planners alternating`);
const base = median(rates.get('arrival order (baseline)') as number[]);
for (const name of Object.keys(planners) as Name[]) {
  const rate = median(rates.get(name) as number[]);
  const l = latencies.get(name) as { short: number[]; long: number[] };
  const within = l.short.filter((ms) => ms <= DEADLINE_MS).length / l.short.length;
  console.log(`${name}`);
  console.log(`  ${MAX_WAITING} waiting: ${rate.toFixed(1)} questions/s (${(rate / base).toFixed(2)}x the baseline), per round ${(rates.get(name) as number[]).map((x) => x.toFixed(1)).join(', ')}`);
  console.log(
    `  paced at ${RATE}/s: short p50 ${p(l.short, 0.5).toFixed(0)} ms, p95 ${p(l.short, 0.95).toFixed(0)} ms, ${(within * 100).toFixed(0)}% within ${DEADLINE_MS} ms; long p50 ${p(l.long, 0.5).toFixed(0)} ms, p95 ${p(l.long, 0.95).toFixed(0)} ms`,
  );
}
