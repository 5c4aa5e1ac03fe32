// `tiergate ledger import` reading `ledger.rows_unsaved` log lines (src/ledger/import.ts): which lines it takes,
// what it refuses, and that a file sink given the same log twice holds each row once, in its own day's file.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { FileSink } from '../../src/ledger/file-sink.js';
import { logLineRows, loggedBatches, readLoggedRows } from '../../src/ledger/import.js';
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
    const skipped: number[] = [];
    const batches = await readLoggedRows([file], (_f, line) => skipped.push(line));
    expect(skipped).toEqual([3]); // named, so the operator can look at it
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
    expect((await readLoggedRows([file]))[0]?.entries[0]?.writer).toBe(first?.entries[0]?.writer);
    expect(first?.entries[0]?.writer).not.toBe(batches[1]?.entries[0]?.writer);
  });

  it('takes ledger.rows_left_in_spool lines too, and lines with a prefix before the record (kubectl logs --timestamps, CRI log files)', async () => {
    const a = rowsOn('2026-11-22', ['a1']);
    const b = rowsOn('2026-11-22', ['b1', 'b2']);
    const c = rowsOn('2026-11-22', ['c1']);
    const file = logFile([
      `2026-11-22T23:59:59.123456789Z ${logLine({ level: 'warn', event: 'ledger.rows_left_in_spool', sink: 'redis', count: 1, rows: a })}`,
      `2026-11-22T23:59:59.223456789Z stdout F ${logLine({ level: 'warn', event: 'ledger.rows_left_in_spool', sink: 'redis', count: 2, rows: b })}`,
      logLine({ event: 'ledger.rows_unsaved', sink: 'redis', count: 1, rows: c }),
    ]);
    expect((await readLoggedRows([file])).map((x) => x.entries.map((e) => e.line))).toEqual([a, b, c]);
  });

  it('reads a Docker json-file log (docker compose\'s default driver), where each record is the escaped "log" of an entry', async () => {
    const a = rowsOn('2026-11-22', ['a1', 'a2']);
    const entry = (line: string) => JSON.stringify({ log: `${line}\n`, stream: 'stderr', time: '2026-11-22T23:59:59.1Z' });
    const file = logFile([entry(logLine({ level: 'info', event: 'server.started' })), entry(logLine({ event: 'ledger.rows_left_in_spool', sink: 'redis', count: 2, rows: a }))]);
    const batches = await readLoggedRows([file]);
    expect(batches.map((b) => [b.sink, b.line, b.entries.map((e) => e.line)])).toEqual([['redis', 2, a]]);
  });

  it('reads a compressed log (gzip, as log rotation and archives keep them) as the plain one', async () => {
    const a = rowsOn('2026-11-22', ['a1', 'a2']);
    const plain = logFile([logLine({ level: 'info', event: 'server.started' }), logLine({ event: 'ledger.rows_unsaved', sink: 'redis', count: 2, rows: a })]);
    const gz = `${plain}.gz`;
    writeFileSync(gz, gzipSync(readFileSync(plain)));
    const [fromPlain, fromGz] = [await readLoggedRows([plain]), await readLoggedRows([gz])];
    expect(fromGz.map((b) => [b.sink, b.line, b.entries])).toEqual(fromPlain.map((b) => [b.sink, b.line, b.entries]));
    expect(fromGz[0]?.entries.map((e) => e.line)).toEqual(a);
  });

  it('a row logged twice for a sink (a spool logged at each of several exits) is taken once, from its first line; for another sink it is its own', async () => {
    const first = rowsOn('2026-11-22', ['p1', 'p2']);
    const again = [...first, ...rowsOn('2026-11-22', ['p3'])]; // the next exit: the same spool, one row more
    const file = logFile([
      logLine({ level: 'warn', event: 'ledger.rows_left_in_spool', sink: 'redis', count: 2, rows: first }),
      logLine({ level: 'warn', event: 'ledger.rows_left_in_spool', sink: 'redis', count: 3, rows: again }),
      logLine({ event: 'ledger.rows_unsaved', sink: 'file', count: 2, rows: first }),
    ]);
    const read = async () => (await readLoggedRows([file])).map((b) => [b.sink, b.entries.map((e) => [JSON.parse(e.line).request_id, e.seq]), b.repeated]);
    expect(await read()).toEqual([
      ['redis', [['p1', 1], ['p2', 2]], 0],
      ['redis', [['p3', 3]], 2], // its place in its line: the same sequence number on every run
      ['file', [['p1', 1], ['p2', 2]], 0],
    ]);
    expect(await read()).toEqual(await read());
  });

  it('event ids that are not lower-case UUIDs are told apart exactly, from each other and from UUIDs', async () => {
    const uuid = '0193a4b2-1111-7abc-8def-0123456789ab';
    const row = (event_id: string, request_id: string) => JSON.stringify(sampleRow({ event_id, request_id }));
    // The UUID's 16 bytes as characters: an id that the packed key of the UUID is made of must stay its own.
    const packed = Buffer.from(uuid.replaceAll('-', ''), 'hex').toString('latin1');
    const ids = [uuid, uuid.toUpperCase(), 'evt-1', 'EVT-1', packed, 'evt-1', uuid];
    const file = logFile([logLine({ event: 'ledger.rows_unsaved', sink: 'redis', count: ids.length, rows: ids.map((id, i) => row(id, `q${i}`)) })]);
    const [batch] = await readLoggedRows([file]);
    expect(batch?.entries.map((e) => JSON.parse(e.line).request_id)).toEqual(['q0', 'q1', 'q2', 'q3', 'q4']);
    expect(batch?.repeated).toBe(2);
  });

  it('loggedBatches yields one batch at a time: the first before a later line is even read', async () => {
    const file = logFile([
      logLine({ event: 'ledger.rows_unsaved', sink: 'file', count: 1, rows: rowsOn('2026-11-22', ['s1']) }),
      logLine({ event: 'ledger.rows_unsaved', sink: 'file', count: 1, rows: ['{"event_id":'] }),
    ]);
    const it = loggedBatches([file]);
    expect((await it.next()).value).toMatchObject({ line: 1, sink: 'file' });
    await expect(it.next()).rejects.toThrow(/:2: row 1 is not JSON/);
  });

  it('logLineRows: rows are logged a few at a time, each line well under the 16 KiB container runtimes cut at', () => {
    const lines = rowsOn('2026-11-22', Array.from({ length: 100 }, (_, i) => `id-${i}`)).map((line, i) => ({ eventId: `e${i}`, day: '2026-11-22', line, writer: 'w', seq: i + 1 }));
    const groups = [...logLineRows(lines)];
    expect(groups.length).toBeGreaterThan(1);
    expect(groups.flat()).toEqual(lines.map((e) => e.line)); // all of them, in order
    for (const rows of groups) expect(Buffer.byteLength(logLine({ event: 'ledger.rows_unsaved', sink: 'redis', count: rows.length, rows }))).toBeLessThan(16 * 1024);
    // A row larger than a line's share goes alone, whole.
    const big = { ...lines[0]!, line: JSON.stringify({ ...sampleRow(), pad: 'x'.repeat(20_000) }) };
    expect([...logLineRows([lines[1]!, big, lines[2]!])]).toEqual([[lines[1]!.line], [big.line], [lines[2]!.line]]);
  });

  it.each([
    ['a row that is not JSON', ['{"event_id":'], /:1: row 1 is not JSON/],
    ['a row without an event id', [JSON.stringify({ ...sampleRow(), event_id: undefined })], /:1: row 1 is not a ledger row/],
    ['a row without a timestamp', [JSON.stringify({ ...sampleRow(), timestamp: 'yesterday' })], /:1: row 1 is not a ledger row/],
    ['a row whose event id is empty', [JSON.stringify({ ...sampleRow(), event_id: '' })], /:1: row 1 is not a ledger row/],
    ['a row whose timestamp is a number', [JSON.stringify({ ...sampleRow(), timestamp: 1_764_000_000_000 })], /:1: row 1 is not a ledger row/],
    ['a row the rollup could not read', [JSON.stringify(sampleRow()), JSON.stringify({ ...sampleRow(), usage: null })], /:1: row 2: not a ledger row \(usage: /],
  ])('refuses %s, naming the file and line, before anything is imported', async (_name, rows, message) => {
    await expect(readLoggedRows([logFile([logLine({ event: 'ledger.rows_unsaved', sink: 'file', count: 1, rows })])])).rejects.toThrow(message);
  });

  it.each([
    ['without its rows', { sink: 'file' }],
    ['without its sink', { rows: rowsOn('2026-11-22', ['n1']) }],
    ['whose rows are objects, not the JSON text of each (a log pipeline that parsed them)', { sink: 'file', rows: [sampleRow()] }],
  ])('refuses a ledger.rows_unsaved line %s', async (_name, fields) => {
    await expect(readLoggedRows([logFile([logLine({ event: 'ledger.rows_unsaved', count: 1, ...fields })])])).rejects.toThrow(/:1: a ledger.rows_unsaved line without its sink or rows/);
  });

  it('logLineRows: a line holds rows up to 12 KiB as logged (each escaped, and a comma), not a byte more; no rows, no line', () => {
    const entry = (line: string) => ({ eventId: 'e', day: '2026-11-22', line, writer: 'w', seq: 1 });
    const logged = (line: string) => Buffer.byteLength(JSON.stringify(line)) + 1;
    const first = JSON.stringify({ ...sampleRow(), pad: 'a"b'.repeat(100) }); // escaped quotes count as logged
    const sized = (n: number) => {
      const base = JSON.stringify({ ...sampleRow(), pad: '' });
      return JSON.stringify({ ...sampleRow(), pad: 'x'.repeat(n - logged(base)) });
    };
    const fill = sized(12 * 1024 - logged(first));
    expect(logged(first) + logged(fill)).toBe(12 * 1024);
    expect([...logLineRows([entry(first), entry(fill)])]).toEqual([[first, fill]]);
    const over = sized(12 * 1024 - logged(first) + 1);
    expect([...logLineRows([entry(first), entry(over)])]).toEqual([[first], [over]]);
    // A row larger than a line's share, first: alone, and no empty line before it.
    const big = sized(20_000);
    expect([...logLineRows([entry(big), entry(first)])]).toEqual([[big], [first]]);
    expect([...logLineRows([])]).toEqual([]);
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
      for (const b of await readLoggedRows([file])) await sink.write(b.entries);
      await sink.close();
    }
    expect(readdirSync(dir).sort()).toEqual(['ledger-2026-11-22.jsonl', 'ledger-2026-11-23.jsonl']);
    const ids = async (f: string) => (await collectRows(rowsFromFiles([join(dir, f)]))).map((r) => r.request_id);
    expect(await ids('ledger-2026-11-22.jsonl')).toEqual(['x1', 'x2']);
    expect(await ids('ledger-2026-11-23.jsonl')).toEqual(['y1', 'y2']);
  });
});
