// The file sink appends each batch through fs.write, which may write fewer bytes than asked (a signal, a full
// pipe, some filesystems): every byte must still land once, in order, and a failed write must reject so the
// ledger spools the batch. fs.write is replaced here by one that writes at most a few bytes per call.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { LedgerEntry } from '../../src/ledger/sink.js';

const io = vi.hoisted(() => ({ maxBytes: Infinity, fail: false, failCall: 0, calls: 0 }));

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  type Done = (err: NodeJS.ErrnoException | null, written: number, buffer: Buffer) => void;
  const write = (fd: number, buffer: Buffer, offset: number, length: number, position: number | null, done: Done): void => {
    io.calls++;
    if (io.fail || io.calls === io.failCall) return void setImmediate(() => done(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }), 0, buffer));
    fs.write(fd, buffer, offset, Math.min(length, io.maxBytes), position, done);
  };
  return { ...fs, default: { ...fs, write }, write };
});

const { FileSink, ledgerFileName } = await import('../../src/ledger/file-sink.js');

const entry = (seq: number, day = '2026-12-01'): LedgerEntry => ({ eventId: `e${seq}`, day, line: JSON.stringify({ seq, text: 'é…'.repeat(seq) }), writer: 'w', seq });

describe('file sink writes', () => {
  it('short writes: the loop writes the rest, and the file holds every line once, in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-short-'));
    const sink = new FileSink({ dir });
    io.maxBytes = 7;
    io.calls = 0;
    await sink.write([1, 2, 3].map((n) => entry(n)));
    await sink.write([4, 5].map((n) => entry(n)));
    await sink.close();
    const lines = readFileSync(join(dir, ledgerFileName('2026-12-01')), 'utf8').trimEnd().split('\n');
    expect(lines.map((l) => JSON.parse(l))).toEqual([1, 2, 3, 4, 5].map((seq) => JSON.parse(entry(seq).line)));
    expect(io.calls).toBeGreaterThan(10); // the writes were short, so the loop did run
  });

  it('a failed write rejects (so the ledger keeps the batch), and the sink writes again once the disk is back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-enospc-'));
    const sink = new FileSink({ dir });
    io.maxBytes = Infinity;
    io.fail = true;
    await expect(sink.write([entry(1)])).rejects.toThrow('ENOSPC');
    io.fail = false;
    await sink.write([entry(1), entry(2)]);
    await sink.close();
    expect(readFileSync(join(dir, ledgerFileName('2026-12-01')), 'utf8').trimEnd().split('\n')).toHaveLength(2);
  });
});

describe('a write that fails part way', () => {
  it('what the failed batch wrote is cut off, so its replay leaves whole lines only', async () => {
    // Before: the half line the failed write left ran on into the replay's first line, which no longer parsed.
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-partial-'));
    const sink = new FileSink({ dir });
    await sink.write([entry(1)]);
    io.maxBytes = 7;
    io.calls = 0;
    io.failCall = 3; // two short writes land, then the disk is full
    await expect(sink.write([entry(2), entry(3)])).rejects.toThrow('ENOSPC');
    io.failCall = 0;
    io.maxBytes = Infinity;
    await sink.write([entry(2), entry(3)]);
    await sink.close();
    const lines = readFileSync(join(dir, ledgerFileName('2026-12-01')), 'utf8').trimEnd().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([1, 2, 3]);
  });
});

describe('rows sent again', () => {
  it('a batch over two days whose second file failed is replayed whole: the first file skips its rows, the second takes all of its own', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-twodays-'));
    const sink = new FileSink({ dir });
    io.maxBytes = Infinity;
    io.calls = 0;
    io.failCall = 2; // the second append of the batch: the file of 2026-12-02
    const batch = [entry(1, '2026-12-01'), entry(2, '2026-12-02'), entry(3, '2026-12-01'), entry(4, '2026-12-02')];
    await expect(sink.write(batch)).rejects.toThrow('ENOSPC');
    io.failCall = 0;
    await sink.write(batch); // the ledger's replay of the same batch
    await sink.write([entry(3, '2026-12-01'), entry(5, '2026-12-01')]); // a replay overlapping it once more
    await sink.close();
    const seqs = (day: string) => readFileSync(join(dir, ledgerFileName(day)), 'utf8').trimEnd().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq);
    expect(seqs('2026-12-01')).toEqual([1, 3, 5]);
    expect(seqs('2026-12-02')).toEqual([2, 4]);
  });
});

describe('event ids read back from a day file', () => {
  it('finds every row id, and not a client value that spells the key inside a string', async () => {
    const { eventIdsIn } = await import('../../src/ledger/file-sink.js');
    const rows = [
      { event_id: 'a1', request_id: '"event_id":"forged"' },
      { request_id: 'x', event_id: 'b2', note: 'é' },
      { event_id: 'c3' },
    ];
    const text = rows.map((r) => JSON.stringify(r)).join('\n');
    expect(eventIdsIn(Buffer.from(text))).toEqual(['a1', 'b2', 'c3']);
    // A tail read from the middle of a file starts mid-line: a cut-off id at the end is not a row id.
    expect(eventIdsIn(Buffer.from(`${text}\n{"event_id":"d4`))).toEqual(['a1', 'b2', 'c3']);
  });
});
