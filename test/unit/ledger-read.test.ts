// Reading the ledger back (src/ledger/read.ts), in process: JSON Lines files, container logs and the Redis
// stream. The CLI suite (test/integration/ledger-rollup.test.ts) reads them through `tiergate ledger rollup` in
// a child process; this one holds each reader's rules where a change to one fails by name.
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dayScanStart, ledgerFilesFor, rowsFromFiles, rowsFromLogs, rowsFromRedis, STREAM_CLOCK_MARGIN_MS, streamLostBefore } from '../../src/ledger/read.js';
import type { LedgerRow } from '../../src/ledger/row.js';
import { collectRows, sampleRow } from '../helpers/ledger-rows.js';
import { RedisServer } from '../helpers/redis-server.js';

const dir = () => mkdtempSync(join(tmpdir(), 'tiergate-read-'));
const line = (r: LedgerRow) => JSON.stringify(r);
const ids = (rows: LedgerRow[]) => rows.map((r) => r.request_id);

function file(text: string): string {
  const f = join(dir(), 'ledger.jsonl');
  writeFileSync(f, text);
  return f;
}

describe('rowsFromFiles', () => {
  it('every row in order across files; blank lines (and lines of spaces) are passed over', async () => {
    const a = file(`${line(sampleRow({ request_id: 'a1' }))}\n\n   \n${line(sampleRow({ request_id: 'a2' }))}\n`);
    const b = file(`${line(sampleRow({ request_id: 'b1' }))}\n`);
    expect(ids(await collectRows(rowsFromFiles([a, b])))).toEqual(['a1', 'a2', 'b1']);
  });

  it('a torn last line (no newline after it) is skipped and reported with its file and line; the rows before it count', async () => {
    const f = file(`${line(sampleRow({ request_id: 'a1' }))}\n${line(sampleRow({ request_id: 'a2' }))}\n{"schema_version":1,"ev`);
    const torn: Array<[string, number]> = [];
    expect(ids(await collectRows(rowsFromFiles([f], (file, n) => torn.push([file, n]))))).toEqual(['a1', 'a2']);
    expect(torn).toEqual([[f, 3]]);
  });

  it('a garbled last line with a newline after it is no torn append: an error naming its line', async () => {
    const f = file(`${line(sampleRow())}\nnot json\n`);
    const torn: number[] = [];
    await expect(collectRows(rowsFromFiles([f], (_f, n) => torn.push(n)))).rejects.toThrow(`${f}:2: not JSON`);
    expect(torn).toEqual([]);
  });

  it('a garbled line in the middle is an error naming it, even when blank lines follow it', async () => {
    const f = file(`${line(sampleRow())}\nnot json\n\n${line(sampleRow())}\n`);
    await expect(collectRows(rowsFromFiles([f]))).rejects.toThrow(`${f}:2: not JSON`);
  });

  it('with onInvalid: garbled lines and JSON that is not a row are reported and skipped, each by its line', async () => {
    const f = file(`not json\n${line(sampleRow({ request_id: 'ok' }))}\n{"schema_version":1}\nmore junk\n`);
    const problems: string[] = [];
    expect(ids(await collectRows(rowsFromFiles([f], undefined, (p) => problems.push(p))))).toEqual(['ok']);
    expect(problems.map((p) => p.split(': ')[0])).toEqual([`${f}:1`, `${f}:3`, `${f}:4`]);
    expect(problems[0]).toBe(`${f}:1: not JSON`);
  });

  it('an empty file holds no rows and nothing torn', async () => {
    const torn: number[] = [];
    expect(await collectRows(rowsFromFiles([file('')], (_f, n) => torn.push(n)))).toEqual([]);
    expect(torn).toEqual([]);
  });
});

describe('ledgerFilesFor', () => {
  it('a file is itself; a directory gives the day\'s ledger file, or none; a directory without a day is an error', () => {
    const d = dir();
    writeFileSync(join(d, 'ledger-2026-11-22.jsonl'), '');
    const f = join(d, 'ledger-2026-11-22.jsonl');
    expect(ledgerFilesFor(f, undefined)).toEqual([f]);
    expect(ledgerFilesFor(f, '2026-11-23')).toEqual([f]);
    expect(ledgerFilesFor(d, '2026-11-22')).toEqual([f]);
    expect(ledgerFilesFor(d, '2026-11-23')).toEqual([]);
    expect(() => ledgerFilesFor(d, undefined)).toThrow(`${d} is a directory`);
  });
});

describe('rowsFromLogs', () => {
  const day = '2026-11-22';
  const row = (id: string, date = day) => sampleRow({ request_id: id, timestamp: `${date}T10:00:00.000Z` });

  it('rows among log lines, with any prefix, and inside a record for import; other records and lines passed over; only the day asked', async () => {
    const record = { level: 'error', event: 'ledger.rows_unsaved', sink: 'stdout', rows: [line(row('r1')), line(row('r-other', '2026-11-21'))] };
    const f = file(
      [
        `${day}T10:00:00.1Z stdout F ${line(row('cri'))}`,
        line(row('plain')),
        '{"level":"info","event":"server.started","message":"schema_version is 1"}',
        JSON.stringify(record),
        'npm warn something',
        line(row('yesterday', '2026-11-21')),
        '{"level":"info","rows":["x"],"event":"not.an.import"}',
        // No JSON object at all, though the word and the day are there.
        `${day} schema_version 5`,
        // The day's date inside the line, but the row is of another day.
        line(sampleRow({ request_id: `asked-on-${day}`, timestamp: '2026-11-21T10:00:00.000Z' })),
      ].join('\n'),
    );
    expect(ids(await collectRows(rowsFromLogs([f], day)))).toEqual(['cri', 'plain', 'r1']);
    expect(ids(await collectRows(rowsFromLogs([f])))).toEqual(['cri', 'plain', 'r1', 'r-other', 'yesterday', `asked-on-${day}`]);
  });

  it('a damaged row is an error naming its line (or reported with onInvalid); a record that only mentions the word is not', async () => {
    const f = file([`{"schema_version":1,"event_id":"x"`, '{"msg":"about schema_version"', line(row('ok')), '{"schema_version":1}'].join('\n'));
    await expect(collectRows(rowsFromLogs([f]))).rejects.toThrow(`${f}:1: not JSON`);
    const problems: string[] = [];
    // Nothing but rows comes out: the invalid one is reported, never yielded as a hole.
    expect(ids(await collectRows(rowsFromLogs([f], undefined, (p) => problems.push(p))))).toEqual(['ok']);
    expect(problems.map((p) => p.split(': ')[0])).toEqual([`${f}:1`, `${f}:4`]);
    expect(problems[0]).toBe(`${f}:1: not JSON`);
  });

  it('a record\'s rows that are not rows are named by their place in it', async () => {
    const record = { event: 'ledger.rows_left_in_spool', rows: ['{not json', line(row('ok')), '{"schema_version":1}'] };
    const f = file(`${JSON.stringify(record)}\n`);
    const problems: string[] = [];
    expect(ids(await collectRows(rowsFromLogs([f], undefined, (p) => problems.push(p))))).toEqual(['ok']);
    expect(problems.map((p) => p.split(': ').slice(0, 2).join(': '))).toEqual([`${f}:1: row 1`, `${f}:1: row 3`]);
    expect(problems[0]).toBe(`${f}:1: row 1: not JSON`);
  });
});

describe('the Redis stream', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(async () => redis.down());

  it('rows oldest first, across pages of 1,000; entries without a row field passed over; only the day asked, from its scan start', async () => {
    const c = redis.client();
    const stream = `read-${Date.now()}`;
    const day = '2026-11-22';
    const base = Date.parse(`${day}T00:00:00Z`);
    // Before the scan start (more than the clock margin before the day): never read, even with a day's timestamp.
    await c.xadd(stream, `${base - STREAM_CLOCK_MARGIN_MS - 1}-0`, 'row', line(sampleRow({ request_id: 'too-early', timestamp: `${day}T00:00:00.000Z` })));
    // Inside the margin: read, and kept for its timestamp.
    await c.xadd(stream, `${base - 1000}-0`, 'row', line(sampleRow({ request_id: 'margin', timestamp: `${day}T00:00:00.000Z` })));
    await c.xadd(stream, `${base}-0`, 'other', 'x');
    for (let i = 0; i < 1200; i++) await c.xadd(stream, `${base + 1 + i}-0`, 'row', line(sampleRow({ request_id: `r${i}`, timestamp: `${day}T00:00:01.000Z` })));
    await c.xadd(stream, `${base + 5000}-0`, 'row', line(sampleRow({ request_id: 'next-day', timestamp: '2026-11-23T00:00:00.000Z' })));
    c.disconnect();
    const rows = ids(await collectRows(rowsFromRedis(redis.url, stream, day)));
    expect(rows).toHaveLength(1201);
    expect(rows.slice(0, 3)).toEqual(['margin', 'r0', 'r1']);
    expect(rows.at(-1)).toBe('r1199');
    const all = ids(await collectRows(rowsFromRedis(redis.url, stream)));
    expect([all.length, all[0], all.at(-1)]).toEqual([1203, 'too-early', 'next-day']);
    expect(dayScanStart(day)).toBe(base - STREAM_CLOCK_MARGIN_MS);
  });

  it('an entry that is not a row is named by its id, or reported with onInvalid', async () => {
    const c = redis.client();
    const stream = `bad-${Date.now()}`;
    await c.xadd(stream, '1-0', 'row', '{nope');
    await c.xadd(stream, '2-0', 'row', line(sampleRow({ request_id: 'ok' })));
    c.disconnect();
    await expect(collectRows(rowsFromRedis(redis.url, stream))).rejects.toThrow(`${stream} entry 1-0: not JSON`);
    const problems: string[] = [];
    expect(ids(await collectRows(rowsFromRedis(redis.url, stream, undefined, false, (p) => problems.push(p))))).toEqual(['ok']);
    expect(problems).toEqual([`${stream} entry 1-0: not JSON`]);
  });

  it('what a trimmed stream has lost: nothing, everything before its first entry, or every entry; no stream is an error', async () => {
    const c = redis.client();
    const s = `trim-${Date.now()}`;
    for (let i = 1; i <= 5; i++) await c.xadd(s, `${i * 1000}-0`, 'row', 'x');
    expect(await streamLostBefore(redis.url, s)).toBe(0);
    await c.xtrim(s, 'MAXLEN', 2);
    // Entries 1000–3000 are gone: everything before the first left (4000) may have been lost.
    expect(await streamLostBefore(redis.url, s)).toBe(4000);
    await c.xtrim(s, 'MAXLEN', 0);
    // None left: everything up to the last one added (5000) is gone.
    expect(await streamLostBefore(redis.url, s)).toBe(5001);
    // An entry deleted by hand after the first one left counts too.
    const d = `del-${Date.now()}`;
    for (let i = 1; i <= 5; i++) await c.xadd(d, `${i * 1000}-0`, 'row', 'x');
    await c.xdel(d, '3000-0');
    expect(await streamLostBefore(redis.url, d)).toBe(3001);
    // No such stream: not "nothing lost" (a misspelt name read as an empty ledger), but an error naming it.
    const none = `none-${Date.now()}`;
    await expect(streamLostBefore(redis.url, none)).rejects.toThrow(`holds no stream "${none}", so nothing was summed`);
    // A key that is not a stream is not "no stream": its error is passed on.
    const plain = `plain-${Date.now()}`;
    await c.set(plain, 'x');
    await expect(streamLostBefore(redis.url, plain)).rejects.toThrow(/WRONGTYPE/);
    c.disconnect();
  });

  it('a Redis it cannot reach: an error naming where, with the password hidden', async () => {
    // Nothing listens on port 1. Each call tries for its five reconnects (3.75 s) first: they run side by side.
    await Promise.all([
      expect(collectRows(rowsFromRedis('redis://:s3cret@127.0.0.1:1/0', 's'))).rejects.toThrow(/could not read the ledger from Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0: /),
      expect(streamLostBefore('redis://:s3cret@127.0.0.1:1/0', 's')).rejects.not.toThrow(/s3cret/),
      // A URL without a password is named as it is.
      expect(streamLostBefore('redis://127.0.0.1:1/0', 's')).rejects.toThrow('could not read the ledger from Redis at redis://127.0.0.1:1/0: '),
    ]);
  }, 20_000);

  it('a server that takes the connection and never answers: an error once the wait to connect (15 s) is over', async () => {
    const held: Socket[] = [];
    const silent = createServer((c) => held.push(c)).listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const url = `redis://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      // Without the bound, ioredis waits on its ready check for ever.
      await expect(streamLostBefore(url, 's')).rejects.toThrow(`could not read the ledger from Redis at ${url}: no ready connection within 15 s`);
    } finally {
      for (const c of held) c.destroy();
      silent.close();
    }
  }, 30_000);

  it('a Redis that is restarting when the read begins is waited for (its reconnects), not an error at the first refusal', async () => {
    const own = await RedisServer.start();
    try {
      const c = own.client();
      const stream = `restart-${Date.now()}`;
      await c.xadd(stream, '1-0', 'row', line(sampleRow({ request_id: 'kept' })));
      c.disconnect();
      await own.down();
      const reading = collectRows(rowsFromRedis(own.url, stream));
      const losing = streamLostBefore(own.url, stream);
      // Both have been refused once (the first attempt is at once) before the server is back.
      await new Promise((r) => setTimeout(r, 100));
      await own.up();
      expect(ids(await reading)).toEqual(['kept']);
      expect(await losing).toBe(0);
    } finally {
      await own.down();
    }
  }, 20_000);
});
