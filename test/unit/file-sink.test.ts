// The file sink's day files: fsync on its timer only for files written since the last one, no more than two
// days open at once, a file an earlier process left with a torn or newline-less last line mended at open, and a
// file deleted or moved away while open replaced by a new one at its path.
import { appendFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CLOSE_WAIT_MS, FileSink, PLACE_CHECK_MS, ledgerFileName } from '../../src/ledger/file-sink.js';
import { RedisStreamSink } from '../../src/ledger/redis-stream-sink.js';
import type { LedgerEntry } from '../../src/ledger/sink.js';
import { fileHandlePrototype, hangSyncs, openIn } from '../helpers/file-handles.js';
import { captureLogger, logEvents } from '../helpers/tiergate.js';
import { createSinks } from '../../src/ledger/sinks.js';

const entry = (seq: number, day = '2026-12-01'): LedgerEntry => ({ eventId: `e${seq}`, day, line: JSON.stringify({ event_id: `e${seq}`, seq }), writer: 'w', seq });
const dirOf = () => mkdtempSync(join(tmpdir(), 'tiergate-file-sink-'));
const seqs = (dir: string, day = '2026-12-01') =>
  readFileSync(join(dir, ledgerFileName(day)), 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => (JSON.parse(l) as { seq: number }).seq);

afterEach(() => vi.restoreAllMocks());

describe('file sink', () => {
  it('is named "file" unless named, as the Redis sink is "redis"', async () => {
    const sinks = [new FileSink({ dir: dirOf() }), new FileSink({ dir: dirOf(), name: 'audit' }), new RedisStreamSink({ url: 'redis://127.0.0.1:1', stream: 's', maxLen: 10 }), new RedisStreamSink({ url: 'redis://127.0.0.1:1', stream: 's', maxLen: 10, name: 'r2' })];
    expect(sinks.map((s) => s.name)).toEqual(['file', 'audit', 'redis', 'r2']);
    for (const s of sinks) await s.close();
  });

  it('fsyncs on its timer a file written since the last fsync, and no file that was not', async () => {
    const sync = vi.spyOn(await fileHandlePrototype(), 'sync');
    const sink = new FileSink({ dir: dirOf(), fsyncIntervalMs: 20 });
    await sink.write([entry(1)]);
    await vi.waitFor(() => expect(sync).toHaveBeenCalledTimes(1));
    await new Promise((r) => setTimeout(r, 100)); // five more ticks, nothing written
    expect(sync).toHaveBeenCalledTimes(1);
    await sink.write([entry(2)]);
    await vi.waitFor(() => expect(sync).toHaveBeenCalledTimes(2));
    await sink.close();
  });

  it('keeps two days open (yesterday takes late rows), closing the oldest when a third opens; a late row reopens its file', async () => {
    const dir = dirOf();
    const sink = new FileSink({ dir });
    await sink.write([entry(1, '2026-12-01'), entry(2, '2026-12-02')]);
    expect(openIn(dir)).toEqual([ledgerFileName('2026-12-01'), ledgerFileName('2026-12-02')]);
    await sink.write([entry(3, '2026-12-03')]);
    expect(openIn(dir)).toEqual([ledgerFileName('2026-12-02'), ledgerFileName('2026-12-03')]);
    // A row of the closed day, late: its file opens again and takes it, and the oldest open one closes.
    await sink.write([entry(4, '2026-12-01')]);
    expect(openIn(dir)).toEqual([ledgerFileName('2026-12-01'), ledgerFileName('2026-12-03')]);
    await sink.close();
    expect(openIn(dir)).toEqual([]);
    expect([seqs(dir, '2026-12-01'), seqs(dir, '2026-12-02'), seqs(dir, '2026-12-03')]).toEqual([[1, 4], [2], [3]]);
  });

  it('a batch over three days, newest first, is written whole (before, the oldest day\'s file was closed as it opened, and the batch failed on every replay)', async () => {
    const dir = dirOf();
    const sink = new FileSink({ dir });
    await sink.write([entry(1, '2026-12-03'), entry(2, '2026-12-02'), entry(3, '2026-12-01')]);
    await sink.write([entry(4, '2026-12-03')]);
    await sink.close();
    expect([seqs(dir, '2026-12-01'), seqs(dir, '2026-12-02'), seqs(dir, '2026-12-03')]).toEqual([[3], [2], [1, 4]]);
  });

  it('a file whose only line is torn is emptied at open; the next row starts the file', async () => {
    const dir = dirOf();
    writeFileSync(join(dir, ledgerFileName('2026-12-01')), '{"event_id":"e9","se');
    const sink = new FileSink({ dir });
    await sink.write([entry(1)]);
    await sink.close();
    expect(seqs(dir)).toEqual([1]);
  });

  it('a last row cut short only of its newline is kept, its newline added, and a replay of it is recognised', async () => {
    const dir = dirOf();
    const path = join(dir, ledgerFileName('2026-12-01'));
    const earlier = { ...entry(2), writer: 'old' }; // the earlier process's
    writeFileSync(path, `${entry(1).line}\n`);
    appendFileSync(path, earlier.line); // written whole, the crash came before its newline
    const sink = new FileSink({ dir });
    await sink.write([entry(3)]);
    expect(seqs(dir)).toEqual([1, 2, 3]);
    await sink.write([earlier]); // its replay, by the next process: recognised by its event id
    await sink.close();
    expect(seqs(dir)).toEqual([1, 2, 3]);
  });

  /** A sink on a fresh directory whose first day file is written, and the paths it says were replaced. */
  const watchedSink = async () => {
    const dir = dirOf();
    const replaced: string[] = [];
    const sink = new FileSink({ dir, fsyncIntervalMs: 20, onReplaced: (p) => replaced.push(p) });
    await sink.write([entry(1)]);
    return { dir, path: join(dir, ledgerFileName('2026-12-01')), replaced, sink };
  };

  it('a day file deleted while open: the rows after it go to a new file at its path, once the timer has seen it, and it is told', async () => {
    const { dir, path, replaced, sink } = await watchedSink();
    rmSync(path); // a cleanup that ships and removes every day file, today's too
    await vi.waitFor(() => expect(replaced).toEqual([path]), { timeout: 3 * PLACE_CHECK_MS });
    await sink.write([entry(2)]);
    await sink.write([entry(3)]);
    // Before, both went on into the deleted file, as did every row until the day ended.
    expect(seqs(dir)).toEqual([2, 3]);
    await sink.close();
    expect(openIn(dir)).toEqual([]);
  });

  it('the sinks made from config log it as ledger.file_replaced, naming the sink and the path', async () => {
    const dir = dirOf();
    const { log, logs } = captureLogger('info');
    const [sink] = createSinks([{ type: 'file', name: 'audit', dir, fsyncIntervalMs: 20 }], log);
    await sink?.write([entry(1)]);
    rmSync(join(dir, ledgerFileName('2026-12-01')));
    await vi.waitFor(() => expect(logEvents(logs, 'ledger.file_replaced')).toMatchObject([{ level: 'warn', sink: 'audit', path: join(dir, ledgerFileName('2026-12-01')) }]), {
      timeout: 3 * PLACE_CHECK_MS,
    });
    await sink?.close();
  });

  it('a day file moved away while open keeps what was written before it is seen; the rows after, a new file at its path', async () => {
    const { dir, path, replaced, sink } = await watchedSink();
    renameSync(path, join(dir, 'shipping.jsonl'));
    await vi.waitFor(() => expect(replaced).toEqual([path]), { timeout: 3 * PLACE_CHECK_MS });
    await sink.write([entry(2)]);
    await sink.close();
    expect(readFileSync(join(dir, 'shipping.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([1]);
    expect(seqs(dir)).toEqual([2]);
  });

  it('checks where its files are once a second at most, however short the fsync interval', async () => {
    const stat = vi.spyOn(await fileHandlePrototype(), 'stat');
    const sink = new FileSink({ dir: dirOf(), fsyncIntervalMs: 1 });
    await sink.write([entry(1)]);
    const opened = stat.mock.calls.length; // the open's own size read
    await new Promise((r) => setTimeout(r, 300)); // some hundred ticks
    expect(stat.mock.calls.length - opened).toBeLessThanOrEqual(1);
    await sink.close();
  });

  it('a day file left where it is is never taken for replaced, across many ticks', async () => {
    const dir = dirOf();
    const replaced: string[] = [];
    const sink = new FileSink({ dir, fsyncIntervalMs: 10, onReplaced: (p) => replaced.push(p) });
    await sink.write([entry(1), entry(2, '2026-12-02')]);
    await new Promise((r) => setTimeout(r, 100));
    await sink.write([entry(3)]);
    await sink.close();
    expect(replaced).toEqual([]);
    expect([seqs(dir), seqs(dir, '2026-12-02')]).toEqual([[1, 3], [2]]);
  });

  it('a disk failing as a day file opens (EIO at its size read): the write fails with nothing left open, and the next one opens it again', async () => {
    const dir = dirOf();
    const sink = new FileSink({ dir });
    vi.spyOn(await fileHandlePrototype(), 'stat').mockRejectedValueOnce(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }));
    await expect(sink.write([entry(1)])).rejects.toThrow('EIO');
    // Before, the handle stayed open until the garbage collector closed it (DEP0137, to become an error).
    expect(openIn(dir)).toEqual([]);
    await sink.write([entry(1)]); // the ledger's replay
    expect(openIn(dir)).toEqual([ledgerFileName('2026-12-01')]);
    await sink.close();
    expect(seqs(dir)).toEqual([1]);
  });

  it('close gives up on a disk that never finishes (an fsync on a hung mount) after CLOSE_WAIT_MS, saying so: the shutdown waited for ever', async () => {
    const dir = dirOf();
    const sink = new FileSink({ dir, fsyncIntervalMs: 60_000 });
    await sink.write([entry(1)]);
    const { hung, closeHung } = await hangSyncs();
    await expect(sink.close()).rejects.toThrow(`ledger sink file: its disk did not finish a write or fsync within ${CLOSE_WAIT_MS} ms of the shutdown; left to the exit`);
    // The row was written before the disk stalled.
    expect(seqs(dir)).toEqual([1]);
    // Closed here rather than by the garbage collector (DEP0137), which a real hung fsync's handle never meets.
    expect(hung).toHaveLength(1);
    await closeHung();
  });

  it('the Redis sink closes when Redis is unreachable: QUIT cannot be sent, so it disconnects, and no reconnect is left running', async () => {
    const sink = new RedisStreamSink({ url: 'redis://127.0.0.1:1', stream: 's', maxLen: 10 });
    await expect(sink.close()).resolves.toBeUndefined();
    await vi.waitFor(() => expect(sink.redis.status).toBe('end'));
  });

  it('a Redis Cluster stream\'s writer marks share its slot: its hash tag, or its whole name as the tag', async () => {
    const mark = (stream: string, cluster: boolean) => {
      const sink = new RedisStreamSink({ url: 'redis://127.0.0.1:1', stream, maxLen: 10, cluster });
      const key = (sink as unknown as { markKey(writer: string): string }).markKey('w-1');
      void sink.close();
      return key;
    };
    expect(mark('tiergate:ledger', true)).toBe('{tiergate:ledger}:mark:w-1');
    expect(mark('{tg}:ledger', true)).toBe('{tg}:ledger:mark:w-1');
    expect(mark('tiergate:ledger', false)).toBe('tiergate:ledger:mark:w-1');
  });
});
