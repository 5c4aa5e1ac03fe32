// `tiergate ledger import` reading `ledger.rows_unsaved` log lines (src/ledger/import.ts): which lines it takes,
// what it refuses, and that a file sink given the same log twice holds each row once, in its own day's file.
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileSink } from '../../src/ledger/file-sink.js';
import { readUnsaved } from '../../src/ledger/import.js';
import { rowsFromFiles } from '../../src/ledger/read.js';
import { collectRows, sampleRow } from '../helpers/ledger-rows.js';

const logLine = (o: Record<string, unknown>) => JSON.stringify({ level: 'error', time: 1, component: 'ledger', ...o });

function logFile(lines: string[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'tiergate-import-')), 'tiergate.log');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

const rowsOn = (day: string, ids: string[]) => ids.map((id) => JSON.stringify(sampleRow({ request_id: id, timestamp: `${day}T23:59:59.000Z` })));

describe('ledger import', () => {
  it('takes the ledger.rows_unsaved lines of a log, per sink, and passes over everything else', async () => {
    const a = rowsOn('2026-11-22', ['a1', 'a2']);
    const b = rowsOn('2026-11-23', ['b1']);
    const file = logFile([
      logLine({ level: 'info', event: 'server.started' }),
      logLine({ event: 'ledger.rows_unsaved', sink: 'redis', count: 2, rows: a }),
      'a line that is not JSON but mentions "ledger.rows_unsaved"',
      logLine({ event: 'ledger.sink_failed', sink: 'redis', note: 'ledger.rows_unsaved' }),
      logLine({ event: 'ledger.rows_unsaved', sink: 'file', count: 1, rows: b }),
    ]);
    const batches = await readUnsaved([file]);
    expect(batches.map((x) => [x.sink, x.line, x.entries.map((e) => e.line)])).toEqual([
      ['redis', 2, a],
      ['file', 5, b],
    ]);
    const [first] = batches;
    expect(first?.entries.map((e) => [e.day, e.seq])).toEqual([
      ['2026-11-22', 1],
      ['2026-11-22', 2],
    ]);
    // The writer is named by the batch's rows: the same log read again gives the same writer, so a sink skips it.
    expect((await readUnsaved([file]))[0]?.entries[0]?.writer).toBe(first?.entries[0]?.writer);
    expect(first?.entries[0]?.writer).not.toBe(batches[1]?.entries[0]?.writer);
  });

  it.each([
    ['a row that is not JSON', ['{"event_id":'], /:1: row 1 is not JSON/],
    ['a row without an event id', [JSON.stringify({ ...sampleRow(), event_id: undefined })], /:1: row 1 is not a ledger row/],
    ['a row without a timestamp', [JSON.stringify({ ...sampleRow(), timestamp: 'yesterday' })], /:1: row 1 is not a ledger row/],
    ['a row the rollup could not read', [JSON.stringify(sampleRow()), JSON.stringify({ ...sampleRow(), usage: null })], /:1: row 2: not a ledger row \(usage: /],
  ])('refuses %s, naming the file and line, before anything is imported', async (_name, rows, message) => {
    await expect(readUnsaved([logFile([logLine({ event: 'ledger.rows_unsaved', sink: 'file', count: 1, rows })])])).rejects.toThrow(message);
  });

  it('refuses a ledger.rows_unsaved line without its rows', async () => {
    await expect(readUnsaved([logFile([logLine({ event: 'ledger.rows_unsaved', sink: 'file', count: 1 })])])).rejects.toThrow(/:1: a ledger.rows_unsaved line without its sink or rows/);
  });

  it('into a file sink: each row in its own day’s file, and once however often the log is imported', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-import-sink-'));
    const file = logFile([
      logLine({ event: 'ledger.rows_unsaved', sink: 'file', count: 2, rows: rowsOn('2026-11-22', ['x1', 'x2']) }),
      logLine({ event: 'ledger.rows_unsaved', sink: 'file', count: 2, rows: rowsOn('2026-11-23', ['y1', 'y2']) }),
    ]);
    for (let run = 0; run < 2; run++) {
      // A new sink each time, as each run of the command is a new process.
      const sink = new FileSink({ dir });
      for (const b of await readUnsaved([file])) await sink.write(b.entries);
      await sink.close();
    }
    expect(readdirSync(dir).sort()).toEqual(['ledger-2026-11-22.jsonl', 'ledger-2026-11-23.jsonl']);
    const ids = async (f: string) => (await collectRows(rowsFromFiles([join(dir, f)]))).map((r) => r.request_id);
    expect(await ids('ledger-2026-11-22.jsonl')).toEqual(['x1', 'x2']);
    expect(await ids('ledger-2026-11-23.jsonl')).toEqual(['y1', 'y2']);
  });
});
