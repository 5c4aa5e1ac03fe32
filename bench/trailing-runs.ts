// What a question built to make a regex backtrack costs, against a plain question of the same length, in the
// functions that read client text for the semantic cache (its guards and the text it embeds) and for `tiergate
// keywords`. Each once took a run off the end with /[…]+$/, which is quadratic on a long run followed by other
// text; src/trailing-run.ts does it in one pass. The old regexes run here too, on the same strings, as the
// baseline. Prints milliseconds (best of 5) and ratios; never asserts on time.   npm run bench:trailing-runs
import { questionFeatures } from '../src/cache/guards.js';
import { embeddingText } from '../src/cache/request-key.js';
import { termsOf } from '../src/eval/keywords.js';
import { withoutTrailing } from '../src/trailing-run.js';

const SIZES = [4096, 16_384, 65_536]; // 4,096: cache.semantic.maxQuestionChars' default
const bestOf = (f: () => unknown) => {
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    f();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
};
const plain = (n: number) => 'What is the capital of France and why? '.repeat(Math.ceil(n / 39)).slice(0, n);

const sites: Array<{ name: string; read: (s: string) => unknown; hostile: (n: number) => string; old: RegExp; one: RegExp; token: (n: number) => string }> = [
  { name: 'guards: a URL, then a punctuation run', read: questionFeatures, hostile: (n) => `see http://a.b/${','.repeat(n - 24)}x please`, old: /[.,;:!?)\]]+$/, one: /^[.,;:!?)\]]$/, token: (n) => `http://a.b/${','.repeat(n)}x` },
  { name: 'guards: a word with a run of non-letters inside', read: questionFeatures, hostile: (n) => `Hello there a${'1'.repeat(n - 19)}a end`, old: /\P{L}+$/u, one: /^\P{L}$/u, token: (n) => `a${'1'.repeat(n)}a` },
  { name: 'embedded text: ". . ." then a letter', read: embeddingText, hostile: (n) => `a${'. '.repeat((n - 2) / 2)}x`, old: /[\s.?!。？！]+$/u, one: /^[\s.?!。？！]$/u, token: (n) => `a${'. '.repeat(n / 2)}x` },
  { name: 'keywords: a term with a run of dashes inside', read: termsOf, hostile: (n) => `fix a${'-'.repeat(n - 8)}b now`, old: /[-_]+$/, one: /^[-_]$/, token: (n) => `a${'-'.repeat(n)}b` },
];

console.log(`node ${process.version}; best of 5, ms`);
console.log(`${'site'.padEnd(50)} ${'chars'.padStart(7)} ${'hostile'.padStart(9)} ${'plain'.padStart(9)} ${'ratio'.padStart(7)}   ${'old regex'.padStart(10)} ${'one pass, µs'.padStart(13)}`);
for (const s of sites) {
  for (const n of SIZES) {
    const hostile = s.hostile(n);
    const text = plain(hostile.length);
    const [h, p] = [bestOf(() => s.read(hostile)), bestOf(() => s.read(text))];
    const token = s.token(n);
    const [o, w] = [bestOf(() => token.replace(s.old, '')), bestOf(() => withoutTrailing(token, s.one))];
    console.log(`${s.name.padEnd(50)} ${String(n).padStart(7)} ${h.toFixed(2).padStart(9)} ${p.toFixed(2).padStart(9)} ${(h / p).toFixed(2).padStart(6)}x   ${o.toFixed(2).padStart(10)} ${(w * 1000).toFixed(1).padStart(13)}`);
  }
}
console.log('ratio: the hostile question against a plain one of the same length (1x: no amplification). old regex: the /[…]+$/ each site used before, on the same run; one pass: withoutTrailing.');
