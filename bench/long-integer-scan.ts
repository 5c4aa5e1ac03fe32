// What keeping integers beyond 2^53 exact costs a request body that has none (src/llm/exact-numbers.ts): the
// every-16th-character scan, against the regular expression it replaces and against the JSON.parse every
// request pays anyway, on the bench's chat body and on a 48 KB agent-sized one, in the same process; and the
// second parse a body with such an integer pays. Prints ratios, never asserts on time.
//   npm run bench:long-integers
import { BODY } from './extproc-driver.js';
import { exactView, mayHoldLongInteger } from '../src/llm/exact-numbers.js';
import { median } from './stats.js';

const REGEX = /[:[,][ \t\n\r]*-?[0-9]{16}/;
const small = BODY.toString('utf8');
const parsed = JSON.parse(small) as { messages: Array<{ content: string }> };
// An agent's request: the same conversation with a long system prompt of prose and code.
const prose = 'Refactor the parser so that each stage returns a value; keep the tests green. function f(a, b) { return a + b; }\n';
const big = JSON.stringify({ ...parsed, messages: [{ role: 'system', content: prose.repeat(430) }, ...parsed.messages] });
const withSeed = JSON.stringify({ ...parsed, seed: 0 }).replace('"seed":0', '"seed":9223372036854775807');

/** Nanoseconds per call, the median of 7 rounds. */
function ns(f: () => unknown, calls: number): number {
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) f();
    rounds.push(Number(process.hrtime.bigint() - t) / calls);
  }
  return median(rounds);
}

console.log(`node ${process.version}; nanoseconds per call, median of 7 rounds`);
for (const [name, text, calls] of [['bench chat body', small, 200_000], ['48 KB agent body', big, 2_000]] as const) {
  const bytes = Buffer.from(text);
  if (mayHoldLongInteger(bytes) || REGEX.test(text)) throw new Error('the test bodies must not hold long integers');
  const scan = ns(() => mayHoldLongInteger(bytes), calls);
  const regex = ns(() => REGEX.test(text), calls);
  const parse = ns(() => JSON.parse(text), calls);
  console.log(`${name} (${text.length} chars): scan ${scan.toFixed(0)}, regular expression ${regex.toFixed(0)} (${(regex / scan).toFixed(1)}x the scan), JSON.parse ${parse.toFixed(0)} (scan = ${((100 * scan) / parse).toFixed(1)}% of it)`);
}
const seedBytes = Buffer.from(withSeed);
const second = ns(() => exactView(seedBytes, withSeed), 20_000);
const parse = ns(() => JSON.parse(withSeed), 20_000);
console.log(`a body with a 64-bit seed (${withSeed.length} chars): second parse ${second.toFixed(0)} (${(second / parse).toFixed(1)}x its JSON.parse)`);
