// `tiergate ledger rollup` on a generated day: rows per second and peak heap, against two baselines in the same
// process: only reading and parsing the file (the floor: nothing kept), and keeping every parsed row by
// request_id (what the rollup did before it kept a compact record per request). Heap is sampled every 5 ms from
// a forced GC at the start; run it with --expose-gc (the npm script does).
//   npm run bench:rollup [-- ROWS]
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ledgerFilesFor, rowsFromFiles } from '../src/ledger/read.js';
import { rollup } from '../src/ledger/rollup.js';
import { sampleRow } from '../test/helpers/ledger-rows.js';

const ROWS = Number(process.argv[2] ?? 200_000);
const DAY = '2026-11-22';
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run bench:rollup does)');

const dir = mkdtempSync(join(tmpdir(), 'tiergate-rollup-bench-'));
const lines: string[] = [];
for (let i = 0; i < ROWS; i++) {
  const row = sampleRow({ request_id: `req-${i}-${(i * 2654435761) % 1e9}`, tenant_id: `tenant-${i % 50}`, feature_id: i % 3 ? 'chat' : null, tier: i % 4 ? 'weak' : 'strong', timestamp: `${DAY}T${String(i % 24).padStart(2, '0')}:00:00.000Z` });
  lines.push(JSON.stringify(row));
}
writeFileSync(join(dir, `ledger-${DAY}.jsonl`), `${lines.join('\n')}\n`);
lines.length = 0;

/** Peak heap above the starting point while `run` runs. */
async function measure(name: string, run: () => Promise<unknown>): Promise<number> {
  gc?.();
  const base = process.memoryUsage().heapUsed;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed)), 5);
  const started = performance.now();
  const result = await run();
  const ms = performance.now() - started;
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().heapUsed);
  void result;
  console.log(`${name.padEnd(34)} ${Math.round(ROWS / (ms / 1000)).toLocaleString('en-US').padStart(9)} rows/s   peak heap +${((peak - base) / 1e6).toFixed(0).padStart(5)} MB (${((peak - base) / ROWS).toFixed(0)} B/row)`);
  return peak - base;
}

console.log(`node ${process.version}; ${ROWS.toLocaleString('en-US')} generated rows of one day`);
const files = (day: string | undefined) => rowsFromFiles(ledgerFilesFor(dir, day));
// The floor under the reader: lines and JSON.parse, without the check that each is a ledger row (row-check.ts).
await measure('read and parse, no row check', async () => {
  let n = 0;
  for (const f of ledgerFilesFor(dir, DAY)) {
    for await (const line of createInterface({ input: createReadStream(f, 'utf8'), crlfDelay: Infinity })) if (line !== '' && JSON.parse(line)) n++;
  }
  return n;
});
await measure('read and parse only', async () => {
  let n = 0;
  for await (const _ of files(DAY)) n++;
  return n;
});
const everyRow = await measure('keep every parsed row (before)', async () => {
  const byRequest = new Map<string, unknown>();
  for await (const r of files(DAY)) byRequest.set(r.request_id, r);
  return byRequest.size;
});
const compact = await measure('rollup --day', () => rollup(files, { period: { from: DAY, to: DAY } }));
console.log(`peak heap, rollup / keeping every row: ${(compact / everyRow).toFixed(2)}x`);
rmSync(dir, { recursive: true, force: true });
