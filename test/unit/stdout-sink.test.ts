// The stdout sink writes each row as one JSON line, in order, and reports a failed stream as a failed write.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { StreamSink } from '../../src/ledger/stdout-sink.js';
import type { LedgerEntry } from '../../src/ledger/sink.js';

const entry = (seq: number): LedgerEntry => ({ eventId: `e${seq}`, day: '2026-11-22', line: JSON.stringify({ seq }), writer: 'w', seq });

describe('stdout sink', () => {
  it('writes JSON lines in order', async () => {
    let out = '';
    const sink = new StreamSink('stdout', new Writable({ write: (c: Buffer, _e, cb) => ((out += c.toString()), cb()) }));
    await sink.write([entry(1), entry(2)]);
    await sink.write([entry(3)]);
    expect(out).toBe('{"seq":1}\n{"seq":2}\n{"seq":3}\n');
  });

  it('rejects when the stream fails, so the ledger spools the rows', async () => {
    const sink = new StreamSink('stdout', new Writable({ write: (_c, _e, cb) => cb(new Error('EPIPE')) }));
    await expect(sink.write([entry(1)])).rejects.toThrow('EPIPE');
  });
});
