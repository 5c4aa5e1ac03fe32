// What keeping integers beyond 2^53 exact costs (src/llm/exact-numbers.ts), in one process, printing ratios
// and never asserting on time:
// - a body without such integers (nearly all of them) pays the scan of every 16th byte: against the regular
//   expression that would find the same runs and against the JSON.parse every request pays anyway, on the
//   bench's chat body and on a 48 KB agent-sized one;
// - a body with one pays a second JSON.parse of a marked copy, and the route stage a second serialisation and
//   a read-back: against the JSON.parse and JSON.stringify the request pays anyway, from 0.4 KB to 4 MB;
// - a body built of nothing but such integers (190,000 in 4 MB), as values and inside a string, which only a
//   client out to hold the event loop sends: the scan and the exact view against its JSON.parse.
//   npm run bench:long-integers
import { BODY } from './extproc-driver.js';
import { exactOr, exactView, longIntegers } from '../src/llm/exact-numbers.js';
import { nsPerCall } from './stats.js';

const REGEX = /[:[,][ \t\n\r]*-?[0-9]{16}/;
const small = BODY.toString('utf8');
const parsed = JSON.parse(small) as Record<string, unknown> & { messages: Array<{ content: string }> };
// An agent's request: the same conversation behind a long system prompt of prose and code.
const prose = 'Refactor the parser so that each stage returns a value; keep the tests green. function f(a, b) { return a + b; }\n';
const agent = (chars: number) => JSON.stringify({ ...parsed, messages: [{ role: 'system', content: prose.repeat(Math.ceil(chars / prose.length)) }, ...parsed.messages] });

const ns = nsPerCall;
const us = (n: number) => `${(n / 1000).toFixed(n < 10_000 ? 2 : 0)} us`;

console.log(`node ${process.version}; median of 7 rounds`);
console.log('A body without integers beyond 2^53:');
for (const [name, text, calls] of [['bench chat body', small, 200_000], ['48 KB agent body', agent(48_000), 2_000]] as const) {
  const bytes = Buffer.from(text);
  if (longIntegers(bytes).length > 0 || REGEX.test(text)) throw new Error('the test bodies must not hold long integers');
  const scan = ns(() => longIntegers(bytes), calls);
  const regex = ns(() => REGEX.test(text), calls);
  const parse = ns(() => JSON.parse(text), calls);
  console.log(`  ${name} (${bytes.length} bytes): scan ${us(scan)}; regular expression ${us(regex)} (${(regex / scan).toFixed(1)}x the scan); JSON.parse ${us(parse)} (the scan is ${((100 * scan) / parse).toFixed(1)}% of it)`);
}
console.log('A body with a 64-bit seed:');
for (const chars of [0, 48_000, 1_000_000, 4_000_000]) {
  const text = (chars === 0 ? small : agent(chars)).replace('{', '{"seed":9223372036854775807,');
  const bytes = Buffer.from(text);
  const calls = Math.max(5, Math.round(2_000_000 / bytes.length));
  // What every request pays: parse, and serialise the routed body.
  const base = ns(() => JSON.stringify({ ...(JSON.parse(text) as object), model: 'm' }), calls);
  const lossy = JSON.stringify({ ...(JSON.parse(text) as object), model: 'm' });
  const extra = ns(() => exactOr(lossy, { ...(exactView(bytes) as object), model: 'm' }), calls);
  if (!exactOr(lossy, { ...(exactView(bytes) as object), model: 'm' }).exact) throw new Error('the exact body was not kept');
  console.log(`  ${bytes.length} bytes: parse and serialise ${us(base)}; keeping the seed exact adds ${us(extra)} (${(extra / base).toFixed(1)}x)`);
}
console.log('A body of nothing but integers beyond 2^53 (190,000 in ~4 MB):');
for (const [name, text] of [
  ['as values', JSON.stringify({ ...parsed, metadata: { ids: Array.from({ length: 190_000 }, () => 0) } }).replace(/\b0\b/g, '92233720368547758070')],
  ['inside a string', JSON.stringify({ ...parsed, messages: [{ role: 'user', content: ': 92233720368547758070,'.repeat(190_000) }] })],
] as const) {
  const bytes = Buffer.from(text);
  const scan = ns(() => longIntegers(bytes), 5);
  const view = ns(() => exactView(bytes), 5);
  const parse = ns(() => JSON.parse(text), 5);
  console.log(`  ${name} (${bytes.length} bytes): scan ${us(scan)}, the exact view (scan included) ${us(view)}; JSON.parse ${us(parse)} (the view is ${(view / parse).toFixed(1)}x it)`);
}
