// Ledger throughput: rows per second through the ledger writer into the file sink and into a Redis stream (a
// private redis-server on a free port), each against an in-memory sink run in the same process as the
// baseline. Prints rates and ratios; never asserts.   npm run bench:ledger [-- ROWS]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSink } from '../src/ledger/file-sink.js';
import { Ledger } from '../src/ledger/ledger.js';
import { MemorySink } from '../src/ledger/memory-sink.js';
import { RedisStreamSink } from '../src/ledger/redis-stream-sink.js';
import type { LedgerSink } from '../src/ledger/sink.js';
import { sampleRow } from '../test/helpers/ledger-rows.js';
import { RedisServer } from '../test/helpers/redis-server.js';
import { median } from './stats.js';

const ROWS = Number(process.argv[2] ?? 50_000);
const ROUNDS = 3;
const hooks = { rows: () => undefined, sinkError: (_s: string, e: unknown) => console.error(e), unsaved: () => undefined, leftInSpool: () => undefined };

async function rate(make: () => LedgerSink): Promise<number> {
  const ledger = new Ledger([make()], { spoolDir: mkdtempSync(join(tmpdir(), 'bench-spool-')), queueSize: 1_000_000, batchSize: 256, writeTimeoutMs: 10_000, retryMs: 100 }, hooks);
  const rows = Array.from({ length: ROWS }, (_, i) => sampleRow({ request_id: `bench-${i}` }));
  const t = performance.now();
  for (const r of rows) ledger.record(r);
  await ledger.flush();
  const seconds = (performance.now() - t) / 1000;
  await ledger.close();
  return ROWS / seconds;
}

const redis = await RedisServer.start();
const kinds: Record<string, () => LedgerSink> = {
  memory: () => new MemorySink(),
  file: () => new FileSink({ dir: mkdtempSync(join(tmpdir(), 'bench-ledger-')) }),
  redis: () => new RedisStreamSink({ url: redis.url, stream: `bench:${Math.random()}`, maxLen: 10_000_000 }),
};
const results: Record<string, number[]> = { memory: [], file: [], redis: [] };
await rate(kinds.memory as () => LedgerSink); // warm-up
for (let r = 0; r < ROUNDS; r++) for (const [k, make] of Object.entries(kinds)) results[k]?.push(await rate(make));
await redis.down();

console.log(`node ${process.version}; ${ROWS} rows per run, ${ROUNDS} rounds, medians; a row is ~${JSON.stringify(sampleRow()).length} bytes of JSON`);
const base = median(results.memory as number[]);
for (const k of Object.keys(kinds)) {
  const m = median(results[k] as number[]);
  console.log(`${k.padEnd(8)} ${Math.round(m).toString().padStart(9)} rows/s   ${(m / base).toFixed(2)}x the in-memory sink`);
}
