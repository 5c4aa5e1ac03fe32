// One contract for every ledger sink (memory, file, Redis stream): rows stored in order, once each, even when a
// batch is sent again (a replay after an ambiguous failure) and after the sink is reopened.
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FileSink } from '../../src/ledger/file-sink.js';
import { rowsFromFiles } from '../../src/ledger/read.js';
import { RedisStreamSink } from '../../src/ledger/redis-stream-sink.js';
import type { LedgerEntry } from '../../src/ledger/sink.js';
import { collectRows, sampleRow } from '../helpers/ledger-rows.js';
import { sinkHarnesses } from '../helpers/ledger-sinks.js';
import { redisAndClusterForFile } from '../helpers/redis-server.js';

const servers = redisAndClusterForFile();
const harnesses = sinkHarnesses(
  () => servers.redis.url,
  () => servers.cluster.url,
);

let seq = 0;
const WRITER = 'writer-a';
function entries(n: number, day = '2026-11-22'): LedgerEntry[] {
  return Array.from({ length: n }, () => {
    const row = sampleRow({ request_id: `r${seq}`, timestamp: `${day}T12:00:00.000Z` });
    return { eventId: row.event_id, day, line: JSON.stringify(row), writer: WRITER, seq: ++seq };
  });
}

for (const [name, make] of Object.entries(harnesses)) {
  describe(`${name} sink`, () => {
    it('stores rows in order, skips a batch sent again, also after a reopen', async () => {
      const h = make();
      const sink = h.open();
      const a = entries(50);
      const b = entries(50);
      await sink.write(a);
      await sink.write(a.slice(10)); // a replay overlapping what is stored
      await sink.write(b);
      await sink.close();
      const again = h.open();
      await again.write(b.slice(25)); // replayed by the next process
      await again.close();
      const ids = (await h.stored()).map((r) => r.request_id);
      expect(ids).toEqual([...a, ...b].map((e) => JSON.parse(e.line).request_id));
    });

    // The ledger gives up on a write after writeTimeoutMs and replays its rows from the spool, while the write it
    // gave up on may still be running (a stalled disk, a slow round trip). The sink gets the replay before the
    // first write has finished, and must still store each row once, in order.
    it('stores each row once when a write arrives while an earlier one is still running', async () => {
      const h = make();
      const sink = h.open();
      const a = entries(30);
      const b = entries(20);
      await sink.write(a.slice(0, 5)); // an open sink, as in a running tiergate
      await Promise.all([sink.write(a), sink.write([...a.slice(10), ...b]), sink.write(a.slice(20)), sink.write(b.slice(5))]);
      await sink.close();
      const ids = (await h.stored()).map((r) => r.request_id);
      expect(ids).toEqual([...a, ...b].map((e) => JSON.parse(e.line).request_id));
    });

    it('keeps rows from several writers apart', async () => {
      const h = make();
      const sink = h.open();
      const mine = entries(5);
      const theirs = mine.map((e, i) => ({ ...e, writer: 'writer-b', seq: i + 1, eventId: `${e.eventId}-b`, line: e.line.replace(e.eventId, `${e.eventId}-b`) }));
      await sink.write(mine);
      await sink.write(theirs);
      await sink.close();
      expect(await h.stored()).toHaveLength(10);
    });
  });
}

describe('Redis Cluster stream', () => {
  it('tiergate ledger rollup --cluster reads the rows back from the stream\'s node', async () => {
    const stream = `rollup:ledger:${Math.random().toString(36).slice(2)}`;
    const sink = new RedisStreamSink({ url: servers.cluster.url, cluster: true, stream, maxLen: 1000 });
    await sink.write(entries(3, '2026-11-22'));
    await sink.close();
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const args = ['--import', 'tsx', join(root, 'src/cli.ts'), 'ledger', 'rollup', '--day', '2026-11-22', '--redis', servers.cluster.url, '--cluster', '--stream', stream, '--json'];
    const cli = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: 30_000 });
    expect([cli.status, cli.stderr]).toEqual([0, '']);
    expect(JSON.parse(cli.stdout).requests).toBe(3);
  });
});

describe('file sink after a crash mid-append', () => {
  it('cuts the torn last line off when it opens the day file: the replayed row is written whole, and the file stays JSON Lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-torn-'));
    const a = entries(3);
    const b = entries(2);
    const sink = new FileSink({ dir });
    await sink.write(a);
    await sink.close();
    // The crash: b's first row only partly written, cut after its event id.
    const file = join(dir, readdirSync(dir)[0] as string);
    const torn = (b[0] as LedgerEntry).line;
    appendFileSync(file, torn.slice(0, torn.indexOf('"timestamp"')));
    // The next process replays b from its spool. Before: b's first row was taken for stored (its id is in the
    // torn line) and b's second ran on from the torn line into one line the rollup refuses.
    const next = new FileSink({ dir });
    await next.write(b);
    await next.close();
    const ids = (await collectRows(rowsFromFiles([file]))).map((r) => r.request_id);
    expect(ids).toEqual([...a, ...b].map((e) => JSON.parse(e.line).request_id));
  });
});

describe('file sink after a crash between a row and its newline', () => {
  it('keeps the whole row and adds the newline', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-torn-'));
    const [a, b] = entries(2) as [LedgerEntry, LedgerEntry];
    const sink = new FileSink({ dir });
    await sink.write([a]);
    await sink.close();
    const file = join(dir, readdirSync(dir)[0] as string);
    appendFileSync(file, b.line); // the row written, its newline not
    const next = new FileSink({ dir });
    await next.write([b, ...entries(1)]); // the replay of b is recognised by its id
    await next.close();
    const ids = (await collectRows(rowsFromFiles([file]))).map((r) => r.request_id);
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(3);
  });
});

describe('file sink rotation', () => {
  it('writes each row into the file of its own UTC day', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-rotate-'));
    const sink = new FileSink({ dir });
    await sink.write([...entries(2, '2026-11-21'), ...entries(3, '2026-11-22'), ...entries(1, '2026-11-23')]);
    await sink.close();
    expect(readdirSync(dir).sort()).toEqual(['ledger-2026-11-21.jsonl', 'ledger-2026-11-22.jsonl', 'ledger-2026-11-23.jsonl']);
    expect(await collectRows(rowsFromFiles([join(dir, 'ledger-2026-11-22.jsonl')]))).toHaveLength(3);
  });
});
