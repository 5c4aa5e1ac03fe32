// What counting a prompt's tokens holds the event loop for, on text without word breaks. BPE is quadratic in the
// length of one pre-token, and o200k's split pattern leaves runs of letters, punctuation and whitespace
// unbounded; tiergate counts a prompt under a token limit (the reservation) and when a response reported no
// usage (the estimate). The baseline is the way it counted before, in the same process on the same texts: slices
// of 16k characters cut after a space, the loop yielded between them. Prints the longest time the loop was held
// (perf_hooks' event-loop delay, max) and the CPU of the whole count, for each shape and the new counting.
// Never asserts on time.   npm run bench:token-count-runs
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { countTokens as countPrompt, loadTokenizer } from '../src/llm/tokenizer.js';

const count = await loadTokenizer();
const N = 16_384;
const lcg = (seed: number) => () => (seed = (seed * 48271) % 2147483647);
const fromRange = (seed: number, lo: number, size: number) => {
  const next = lcg(seed);
  return Array.from({ length: N }, () => String.fromCodePoint(lo + (next() % size))).join('').slice(0, N);
};
const words = ['please', 'refactor', 'the', 'payment', 'module', 'explain', 'each', 'change', 'and', 'keep', 'tests', 'green'];
/**
 * Each shape for a seed: a text never counted before (the tokenizer keeps a cache of pre-tokens it has merged, so
 * counting the same text again would measure the cache). Same-character runs have no second text: their cache
 * entry is the run itself, so they are measured once, first.
 */
const shapes: Record<string, (seed: number) => string> = {
  'English prose (the usual case)': (seed) => {
    const next = lcg(seed);
    let s = '';
    while (s.length < N) s += `${words[next() % words.length]}${next() % 9 === 0 ? '. ' : ' '}`;
    return s.slice(0, N);
  },
  'Korean syllables, no space': (seed) => fromRange(seed, 0xac00, 11_172),
  'CJK ideographs, no punctuation': (seed) => fromRange(seed, 0x4e00, 20_000),
  'lower-case letters': (seed) => fromRange(seed, 0x61, 26),
  'emoji, no space': (seed) => fromRange(seed, 0x1f600, 80),
  'spaces': (seed) => ' '.repeat(N - (seed % 7)),
  'underscores': (seed) => '_'.repeat(N - (seed % 7)),
};

/** How the count was done before: 16k-character slices cut after a space, each one call, the loop yielded between. */
async function before(text: string): Promise<number> {
  let tokens = 0;
  for (let at = 0; at < text.length; ) {
    let end = Math.min(at + 16 * 1024, text.length);
    if (end < text.length) {
      const ws = text.lastIndexOf(' ', end);
      if (ws > at) end = ws + 1;
    }
    tokens += count(text.slice(at, end));
    at = end;
    await yieldToLoop();
  }
  return tokens;
}

async function measure(f: () => Promise<number>): Promise<{ heldMs: number; cpuMs: number; tokens: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  // The histogram records from its second sample on: let a few pass before the count starts.
  await new Promise((r) => setTimeout(r, 5));
  const cpu = process.cpuUsage();
  const tokens = await f();
  const used = process.cpuUsage(cpu);
  await new Promise((r) => setTimeout(r, 5));
  h.disable();
  return { heldMs: h.max / 1e6, cpuMs: (used.user + used.system) / 1000, tokens };
}

console.log(`node ${process.version}; ${N.toLocaleString('en')} characters each, a new text per count; median of 3: the longest the loop was held, the count's CPU (ms), its tokens`);
console.log(`${'text'.padEnd(32)} ${'before: held'.padStart(13)} ${'cpu'.padStart(8)} ${'tokens'.padStart(7)}   ${'now: held'.padStart(10)} ${'cpu'.padStart(8)} ${'tokens'.padStart(7)}`);
let seed = 1;
for (const [name, shape] of Object.entries(shapes)) {
  // A new text for every count, the two ways alternating; the median of three of each.
  const b: Array<Awaited<ReturnType<typeof measure>>> = [];
  const n: Array<Awaited<ReturnType<typeof measure>>> = [];
  for (let r = 0; r < 3; r++) {
    const [one, two] = [shape(seed++), shape(seed++)];
    b.push(await measure(() => before(one)));
    n.push(await measure(() => countPrompt(two)));
  }
  const mid = (rs: typeof b) => [...rs].sort((x, y) => x.heldMs - y.heldMs)[1] as (typeof b)[number];
  const row = (r: (typeof b)[number]) => `${r.heldMs.toFixed(1).padStart(10)} ms ${r.cpuMs.toFixed(1).padStart(8)} ${String(r.tokens).padStart(7)}`;
  console.log(`${name.padEnd(32)} ${row(mid(b))}   ${row(mid(n))}`);
}
