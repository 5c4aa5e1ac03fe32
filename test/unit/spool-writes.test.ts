// The spool appends through a FileHandle; a disk that fills up mid-append leaves part of the rows on disk. The
// spool must cut them off, or its retry would append after half a line and the replay would lose that row.
// fs/promises' open is wrapped here so that a handle's writeFile can write half its text and then fail.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { LedgerEntry } from '../../src/ledger/sink.js';

const io = vi.hoisted(() => ({ failHalfway: false, failRemove: false }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const fsp = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof fsp.open = async (...args: Parameters<typeof fsp.open>) => {
    const fh = await fsp.open(...args);
    const writeFile = fh.writeFile.bind(fh);
    fh.writeFile = async (data: Parameters<typeof fh.writeFile>[0]) => {
      if (!io.failHalfway) return writeFile(data);
      const text = String(data);
      await writeFile(text.slice(0, Math.floor(text.length / 2)));
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    };
    return fh;
  };
  // A disk that fails the removal of the spool file itself (the offset file goes first, and does go).
  const rm: typeof fsp.rm = async (path, opts) => {
    if (io.failRemove && String(path).endsWith('.spool.jsonl')) throw Object.assign(new Error('EIO: i/o error, unlink'), { code: 'EIO' });
    return fsp.rm(path, opts);
  };
  return { ...fsp, default: { ...fsp, open, rm }, open, rm };
});

const { Spool } = await import('../../src/ledger/spool.js');

const entry = (seq: number): LedgerEntry => ({ eventId: `e${seq}`, day: '2026-12-02', line: JSON.stringify({ seq }), writer: 'w', seq });

describe('spool appends', () => {
  it('an append that fails part way leaves nothing of itself, and the retry writes whole rows', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-spool-partial-'));
    const spool = new Spool(dir, 's');
    spool.append([entry(1)]);
    await spool.flush();
    io.failHalfway = true;
    spool.append([entry(2), entry(3)]);
    await expect(spool.flush()).rejects.toThrow('ENOSPC');
    expect(readFileSync(join(dir, 's.spool.jsonl'), 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
    io.failHalfway = false;
    await spool.flush(); // the rows stayed pending
    expect((await spool.read(10)).entries.map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('a delivered spool whose file could not be removed: rows spooled after it are all delivered, none deleted unsent', async () => {
    // Found by the generated sink-fault histories (ledger-writer-faults): the count went to zero on the delivered
    // rows still in the file, so the next reset removed the file with the new rows in it, unsent and unreported.
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-spool-reset-'));
    const spool = new Spool(dir, 's');
    spool.append([entry(1), entry(2)]);
    await spool.flush();
    const first = await spool.read(10);
    io.failRemove = true;
    await expect(spool.advance(first.entries.length, first.bytes)).rejects.toThrow('EIO');
    io.failRemove = false;
    spool.append([entry(3), entry(4), entry(5)]);
    await spool.flush();
    const delivered: number[] = [];
    for (let i = 0; i < 20 && spool.hasWork; i++) {
      const { entries, bytes } = await spool.read(1);
      delivered.push(...entries.map((e) => e.seq));
      await spool.advance(entries.length, bytes);
    }
    // The delivered rows may come again (sinks skip them by sequence number); the new ones must all come, in order.
    expect(delivered.filter((s) => s >= 3)).toEqual([3, 4, 5]);
    expect(spool.size).toBe(0);
  });
});
