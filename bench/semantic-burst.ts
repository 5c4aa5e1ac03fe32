// How long the semantic cache's lookups take when the local embedder is behind, with the lookup giving up at once
// on a vector the embedder's backlog puts past the deadline (the default: LocalEmbedder.soonestMs) against the
// baseline of waiting out the whole deadline (the same embedder with soonestMs hidden, what it did before). Both in
// the same process, each with its own model thread, rounds alternating.
//
// Two loads per round: a burst (BURST distinct questions at once, as a client's parallel requests) and a steady
// rate above what the model embeds (RATE questions a second for SECONDS). For each: lookups whose vector came in
// time, waited out to the deadline, given up at once, or refused (queue full); and the lookup's time, p50 and p99.
// Prints, asserts nothing.
//
//   npm run bench:semantic-burst -- [rounds, default 3] [burst, default 60] [rate/s, default 120] [seconds, default 5]
import { pino } from 'pino';
import type { Embedder } from '../src/cache/embedders/embedder.js';
import { LocalEmbedder } from '../src/cache/embedders/local-embedder.js';
import { SemanticCache, type SemanticLookup } from '../src/cache/semantic-cache.js';
import { configSchema } from '../src/config/schema.js';
import { MemoryCacheStore } from '../src/stores/memory/cache-store.js';
import { MemoryVectorIndex } from '../src/stores/memory/vector-index.js';
import { createMetrics } from '../src/telemetry/metrics.js';
import { paced } from './pace.js';
import { quantile } from './stats.js';

const ROUNDS = Number(process.argv[2] ?? 3);
const BURST = Number(process.argv[3] ?? 60);
const RATE = Number(process.argv[4] ?? 120);
const SECONDS = Number(process.argv[5] ?? 5);
const cfg = configSchema.parse({}).cache;

interface Variant {
  name: string;
  embedder: LocalEmbedder;
  cache: SemanticCache;
}

function variant(name: string, foresees: boolean): Variant {
  const embedder = new LocalEmbedder();
  // The baseline: the same embedder without soonestMs, so every lookup waits for its vector or the deadline.
  const seen: Embedder = foresees ? embedder : { id: embedder.id, embed: (t, o) => embedder.embed(t, o), close: () => embedder.close() };
  const cache = new SemanticCache(seen, new MemoryVectorIndex(), new MemoryCacheStore(10_000, 1 << 26), createMetrics(), pino({ level: 'silent' }));
  return { name, embedder, cache };
}

let serial = 0;
const question = () => `how do I configure widget ${serial++} for the north region of our deployment?`;

interface Tally {
  outcomes: Map<string, number>;
  ms: number[];
  /** Vectors still coming (late and given-up lookups): awaited before the next load, so each starts idle. */
  pending: Promise<unknown>[];
}

async function lookup(v: Variant, t: Tally): Promise<void> {
  const started = performance.now();
  const r: SemanticLookup = await v.cache.lookup({ tenant: 'acme', partition: 'p', question: question(), threshold: cfg.semantic.threshold }, cfg);
  t.ms.push(performance.now() - started);
  const key = r.result === 'miss' && (r.reason === 'not_found' || r.reason === 'guard') ? 'in time' : r.result === 'hit' ? 'in time' : r.reason;
  t.outcomes.set(key, (t.outcomes.get(key) ?? 0) + 1);
  if (r.result === 'miss' && (r.reason === 'deadline' || r.reason === 'embedder_behind')) {
    // A lookup given up on a vector that then came within the deadline anyway: the foresight was wrong.
    const behind = r.reason === 'embedder_behind';
    t.pending.push(r.seed.then(() => behind && performance.now() - started <= cfg.semantic.lookupDeadlineMs && t.outcomes.set('wrongly', (t.outcomes.get('wrongly') ?? 0) + 1)));
  }
}

async function load(v: Variant, kind: 'burst' | 'rate'): Promise<Tally> {
  const t: Tally = { outcomes: new Map(), ms: [], pending: [] };
  if (kind === 'burst') await Promise.all(Array.from({ length: BURST }, () => lookup(v, t)));
  else await paced(RATE * SECONDS, RATE, () => lookup(v, t));
  await Promise.all(t.pending);
  return t;
}

const variants = [variant('gives up at once (default)', true), variant('waits to the deadline (baseline)', false)];
await Promise.all(variants.map((v) => v.embedder.whenReady()));
// Warm-up: each model's first calls are slower, and the default needs answered calls to know its pace.
for (const v of variants) for (let i = 0; i < 20; i++) await v.embedder.embed([question()]);

const totals = new Map<string, Tally>();
for (let r = 0; r < ROUNDS; r++) {
  for (const kind of ['burst', 'rate'] as const) {
    for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
      const t = await load(v, kind);
      const key = `${kind}\u0000${v.name}`;
      const sum: Tally = totals.get(key) ?? { outcomes: new Map(), ms: [], pending: [] };
      for (const [k, n] of t.outcomes) sum.outcomes.set(k, (sum.outcomes.get(k) ?? 0) + n);
      sum.ms.push(...t.ms);
      totals.set(key, sum);
    }
  }
}

console.log(`node ${process.version}; local embedder (USE-lite), lookup deadline ${cfg.semantic.lookupDeadlineMs} ms; ${ROUNDS} rounds, each: a burst of ${BURST} questions at once, then ${RATE} questions/s for ${SECONDS} s`);
for (const [key, t] of totals) {
  const [kind, name] = key.split('\u0000');
  const o = (k: string) => t.outcomes.get(k) ?? 0;
  console.log(
    `${kind === 'burst' ? 'burst' : `${RATE}/s`.padEnd(5)} ${(name as string).padEnd(34)} ${t.ms.length} lookups: ${o('in time')} in time, ${o('deadline')} waited to the deadline, ${o('embedder_behind')} given up at once (${o('wrongly')} of them had their vector in time after all), ${o('embedder_busy')} refused; lookup p50 ${quantile(t.ms, 0.5).toFixed(1)} ms, p99 ${quantile(t.ms, 0.99).toFixed(1)} ms`,
  );
}
await Promise.all(variants.map((v) => v.cache.close()));
