// What a long outage's spool costs at the edges of a process's life: opening it at start (counting its rows),
// and, with ledger.logSpoolAtExit, logging all of it at shutdown, which must end within the pod's
// terminationGracePeriodSeconds. Builds a spool of ledger rows of the usual size, then times, in the same run:
//   open      new Spool(): the windowed count and torn-tail check
//   log       forEachLeft + the app's ledger.rows_left_in_spool lines through pino, into a file (sync writes)
//   baseline  the same bytes read a window at a time and written to a file as they are (a copy)
// Prints MB/s and the log's ratio to the copy. Never asserts on time.
//   npm run bench:spool-exit [-- MIB]   (default 256: the kgateway config's ledger.spoolMaxBytes)
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { logLineRows } from '../src/ledger/import.js';
import { Spool } from '../src/ledger/spool.js';
import type { LedgerEntry } from '../src/ledger/sink.js';
import { createLogger } from '../src/telemetry/logger.js';
import { sampleRow } from '../test/helpers/ledger-rows.js';

const MIB = Number(process.argv[2] ?? 256);
const dir = mkdtempSync(join(tmpdir(), 'tiergate-spool-exit-'));

// The spool: rows as a process appends them (writer, seq, event id, day, row JSON), ~1 KB each.
const spoolFile = join(dir, 'redis.spool.jsonl');
{
  const fd = openSync(spoolFile, 'w');
  let bytes = 0;
  let seq = 0;
  while (bytes < MIB * 1024 * 1024) {
    let chunk = '';
    for (let i = 0; i < 1000; i++) {
      const row = sampleRow({ request_id: `req-${++seq}`, timestamp: '2026-12-02T12:00:00.000Z' });
      chunk += `writer-1\t${seq}\t${row.event_id}\t2026-12-02\t${JSON.stringify(row)}\n`;
    }
    bytes += writeSync(fd, chunk);
  }
  closeSync(fd);
}
const size = statSync(spoolFile).size;
const mb = size / 1e6;

const t0 = performance.now();
const spool = new Spool(dir, 'redis');
const openMs = performance.now() - t0;

// The log: what app.ts's leftInSpool hook does, into a file through pino's synchronous destination.
const logFile = join(dir, 'tiergate.log');
const dest = pino.destination({ dest: logFile, sync: true });
const log = createLogger('info', dest);
const t1 = performance.now();
const rows = await spool.forEachLeft((entries: LedgerEntry[]) => {
  for (const batch of logLineRows(entries)) log.warn({ event: 'ledger.rows_left_in_spool', sink: 'redis', count: batch.length, rows: batch });
});
dest.flushSync();
const logMs = performance.now() - t1;
const logged = statSync(logFile).size;

// The baseline: the same bytes copied a window at a time.
const copyFile = join(dir, 'copy.jsonl');
const t2 = performance.now();
{
  const from = openSync(spoolFile, 'r');
  const to = openSync(copyFile, 'w');
  const window = Buffer.allocUnsafe(4 * 1024 * 1024);
  for (let n = readSync(from, window); n > 0; n = readSync(from, window)) writeSync(to, window, 0, n);
  closeSync(from);
  closeSync(to);
}
const copyMs = performance.now() - t2;

console.log(`node ${process.version}; a spool of ${rows} rows, ${mb.toFixed(0)} MB (${(size / rows).toFixed(0)} bytes a row)`);
console.log(`open (count the rows):  ${openMs.toFixed(0).padStart(6)} ms  ${(mb / (openMs / 1000)).toFixed(0).padStart(5)} MB/s`);
console.log(`log it at exit:         ${logMs.toFixed(0).padStart(6)} ms  ${(mb / (logMs / 1000)).toFixed(0).padStart(5)} MB/s of spool; ${(logged / 1e6).toFixed(0)} MB of log lines`);
console.log(`baseline (file copy):   ${copyMs.toFixed(0).padStart(6)} ms  ${(mb / (copyMs / 1000)).toFixed(0).padStart(5)} MB/s`);
console.log(`log / copy: ${(logMs / copyMs).toFixed(1)}x`);
rmSync(dir, { recursive: true, force: true });
