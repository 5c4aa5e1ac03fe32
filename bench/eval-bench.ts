// `tiergate eval` speed: 100,000 labelled rows (real prompts from ../shared/data/prompts, cycled; arena-hard
// labelled strong, GSM8K weak, MT-Bench by category) written to a JSONL and a CSV file, then evaluated with two
// versions. The baseline, run in the same process, only reads and validates the rows; the ratio is what the
// classifiers add. Prints, never asserts.   npm run bench:eval [-- ROWS]
import { createWriteStream, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { compileClassifier } from '../src/classify/engine.js';
import { V7 } from '../src/classify/v7.js';
import { DEFAULT_SLO, evaluate } from '../src/eval/evaluate.js';
import { readLabelledRows } from '../src/eval/labelled-rows.js';
import { SHARED_DATA } from '../test/helpers/shared-data.js';
import { median } from './stats.js';

const ROWS = Number(process.argv[2] ?? 100_000);
const ROUNDS = 3;

const lines = (f: string) => readFileSync(join(SHARED_DATA, 'prompts', f), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const hardCategories = new Set(['coding', 'math', 'reasoning', 'stem']);
const source: Array<{ messages: Array<{ role: string; content: string }>; tier: string }> = [
  ...lines('arena-hard-v0.1.jsonl').map((r) => ({ messages: [{ role: 'user', content: r.prompt as string }], tier: 'strong' })),
  ...lines('gsm8k-test.jsonl').map((r) => ({ messages: [{ role: 'user', content: r.question as string }], tier: 'weak' })),
  ...lines('mt-bench.jsonl').map((r) => ({
    messages: [{ role: 'user', content: r.turns[0] as string }, { role: 'assistant', content: 'First answer.' }, { role: 'user', content: r.turns[1] as string }],
    tier: hardCategories.has(r.category) ? 'strong' : 'weak',
  })),
];

async function write(file: string, row: (i: number) => string, header = ''): Promise<void> {
  const out = createWriteStream(file);
  if (header) out.write(header);
  for (let i = 0; i < ROWS; i++) if (!out.write(row(i))) await once(out, 'drain');
  out.end();
  await once(out, 'finish');
}
const dir = mkdtempSync(join(tmpdir(), 'tiergate-eval-bench-'));
const jsonl = join(dir, 'rows.jsonl');
const csv = join(dir, 'rows.csv');
const at = (i: number) => source[i % source.length] as (typeof source)[number];
await write(jsonl, (i) => `${JSON.stringify({ id: i, ...at(i) })}\n`);
await write(csv, (i) => `${i},"${JSON.stringify(at(i).messages).replaceAll('"', '""')}",${at(i).tier}\n`, 'id,messages,tier\n');

const v8 = compileClassifier('v8', {
  ...V7,
  rules: [...V7.rules, { name: 'code', tier: 'strong', when: [{ regex: '```|\\bdef |\\bfunction\\b' }] }],
  nearThreshold: [{ rule: 'long_prompt', from: 480, to: 520, tier: 'strong' }],
});
const versions = [
  { name: 'v7', classify: compileClassifier('v7', V7) },
  { name: 'v8', classify: v8 },
];

async function readOnly(file: string): Promise<number> {
  const t = performance.now();
  let n = 0;
  for await (const r of readLabelledRows(file)) if (r.ok) n++;
  if (n !== ROWS) throw new Error(`read ${n} rows of ${ROWS}`);
  return performance.now() - t;
}
async function evaluated(file: string): Promise<number> {
  const t = performance.now();
  const r = await evaluate(readLabelledRows(file), { file, versions, tiers: ['weak', 'strong'], strongTier: 'strong', weakTier: 'weak', slo: DEFAULT_SLO, listDisagreements: 20 });
  if (r.rows !== ROWS) throw new Error(`scored ${r.rows} rows of ${ROWS}`);
  return performance.now() - t;
}

console.log(`tiergate eval: ${ROWS.toLocaleString('en')} rows, 2 versions, median of ${ROUNDS} rounds`);
for (const [name, file] of [['JSONL', jsonl], ['CSV', csv]] as const) {
  const base: number[] = [];
  const full: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    base.push(await readOnly(file));
    full.push(await evaluated(file));
  }
  const b = median(base);
  const f = median(full);
  console.log(`  ${name.padEnd(5)} read only ${(b / 1000).toFixed(2)} s   evaluate ${(f / 1000).toFixed(2)} s (${Math.round(ROWS / (f / 1000)).toLocaleString('en')} rows/s)   ratio ${(f / b).toFixed(2)}×`);
}
const rss = process.memoryUsage().rss / 2 ** 20;
console.log(`  peak-ish RSS after the runs: ${rss.toFixed(0)} MiB (rows stream; the files are ${(ROWS / 1000).toFixed(0)}k rows)`);
