// The spool file's format and its window-at-a-time helpers (spool-file.ts): what a line holds, which lines are
// rows, and the byte count the spool's bound is kept by.
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { appendSync, countRows, decode, encode, encodedBytes, isMissing, mendTornTail } from '../../src/ledger/spool-file.js';
import type { LedgerEntry } from '../../src/ledger/sink.js';
import { fileHandlePrototype, openIn } from '../helpers/file-handles.js';

const entry = (over: Partial<LedgerEntry> = {}): LedgerEntry => ({ writer: 'w-1', seq: 7, eventId: 'e-1', day: '2026-12-05', line: '{"a":1}', ...over });

/** A file holding `text`, opened for reading and writing; closed by the caller. */
function fileWith(text: string): { fd: number; path: string } {
  const path = join(mkdtempSync(join(tmpdir(), 'tiergate-spool-file-')), 's.spool.jsonl');
  writeFileSync(path, text);
  return { fd: openSync(path, 'r+'), path };
}

afterEach(() => vi.restoreAllMocks());

describe('spool file', () => {
  it('encodedBytes is the encoded line\'s length in bytes, whatever its characters', () => {
    for (const e of [entry(), entry({ writer: 'wrïter-ü', seq: 1234567890123, eventId: 'é-✓', line: '{"t":"日本語 👋"}' }), entry({ seq: 0, line: '{}' })]) {
      expect(encodedBytes(e), e.eventId).toBe(Buffer.byteLength(encode(e)));
    }
  });

  it('decode reads back what encode wrote, and refuses a line that is not a row', () => {
    const e = entry({ line: '{"text":"tab\\tinside"}' });
    expect(decode(encode(e).slice(0, -1))).toEqual(e);
    for (const line of ['', 'not a row', 'w\t7\te\t2026-12-05', 'w\t7\te\t2026-12-05\t{}\textra', 'w\tseven\te\t2026-12-05\t{}', 'w\t1.5\te\t2026-12-05\t{}', 'w\t9007199254740993\te\t2026-12-05\t{}', 'w\t7\te\t2026-12-05\t[1]', 'w\t7\te\t2026-12-05\t']) {
      expect(decode(line), JSON.stringify(line)).toBeUndefined();
    }
  });

  it('countRows counts non-empty lines between two offsets, a line cut by the start counted once', () => {
    const text = 'row-1\n\nrow-2\nrow-3\n';
    const { fd } = fileWith(text);
    try {
      expect(countRows(fd, 0, text.length)).toBe(3);
      expect(countRows(fd, text.indexOf('row-2'), text.length)).toBe(2);
      // From the middle of a line: its rest is a line of its own (the spool's offset is always at a line's start).
      expect(countRows(fd, 2, text.length)).toBe(3);
      expect(countRows(fd, text.length, text.length)).toBe(0);
      // Up to a point short of a newline: the line it cuts is not counted.
      expect(countRows(fd, 0, text.indexOf('row-3') + 2)).toBe(2);
    } finally {
      closeSync(fd);
    }
  });

  it('mendTornTail cuts a torn last row, completes one that lacks only its newline, and leaves a whole file alone', () => {
    const whole = encode(entry({ seq: 1 })) + encode(entry({ seq: 2 }));
    const cases: Array<[string, string, string]> = [
      ['whole', whole, whole],
      ['torn', `${whole}w-1\t3\te-3\t2026-12-05\t{"a":`, whole],
      ['torn before its row', `${whole}w-1\t3\te-`, whole],
      ['missing its newline', whole + encode(entry({ seq: 3 })).slice(0, -1), whole + encode(entry({ seq: 3 }))],
      ['empty', '', ''],
    ];
    for (const [name, text, mended] of cases) {
      const { fd, path } = fileWith(text);
      try {
        expect(mendTornTail(fd), name).toBe(Buffer.byteLength(mended));
      } finally {
        closeSync(fd);
      }
      expect(readFileSync(path, 'utf8'), name).toBe(mended);
    }
  });

  it('appendSync closes its file whatever step the disk fails at, and leaves nothing of the rows it could not sync', async () => {
    const { fd, path } = fileWith('row-1\n');
    closeSync(fd);
    const proto = await fileHandlePrototype();
    // A failing disk (EIO) at the size read, then at the fsync: before, a failed size read left the handle open
    // for the garbage collector (DEP0137, to become an error that ends the process).
    for (const step of ['stat', 'sync'] as const) {
      const failing = vi.spyOn(proto, step).mockRejectedValueOnce(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }));
      await expect(appendSync(path, 'row-2\n'), step).rejects.toThrow('EIO');
      expect(openIn(dirname(path)), step).toEqual([]);
      failing.mockRestore();
    }
    expect(readFileSync(path, 'utf8')).toBe('row-1\n');
    await appendSync(path, 'row-2\n');
    expect(readFileSync(path, 'utf8')).toBe('row-1\nrow-2\n');
    expect(openIn(dirname(path))).toEqual([]);
  });

  it('isMissing: no such file, or a path through something that is not a directory; nothing else', () => {
    expect([isMissing({ code: 'ENOENT' }), isMissing({ code: 'ENOTDIR' }), isMissing({ code: 'EACCES' }), isMissing({ code: 'EIO' }), isMissing(undefined), isMissing(new Error('x'))]).toEqual([true, true, false, false, false, false]);
  });
});
