// The ledger writer's promises: every row reaches every sink, in order, across sink failures, queue overflow
// and restarts, and a replay never stores a row twice.
import { appendFileSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { Ledger, type LedgerHooks, type LedgerOptions } from '../../src/ledger/ledger.js';
import { FileSink } from '../../src/ledger/file-sink.js';
import { MemorySink } from '../../src/ledger/memory-sink.js';
import { rowsFromFiles } from '../../src/ledger/read.js';
import type { LedgerRow } from '../../src/ledger/row.js';
import type { LedgerEntry } from '../../src/ledger/sink.js';
import { collectRows, sampleRow } from '../helpers/ledger-rows.js';
import { SpoolDisk } from '../helpers/spool-disk.js';
import { hangSyncs } from '../helpers/file-handles.js';
import { Spool } from '../../src/ledger/spool.js';

/** A sink that can be taken down, and that can be made slow (writes that land after the writer gave up). */
class FlakySink extends MemorySink {
  down = false;
  delayMs = 0;
  attempts = 0;
  received: string[] = [];
  override async write(entries: readonly LedgerEntry[]): Promise<void> {
    this.attempts++;
    if (this.down) throw new Error('sink down');
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    for (const e of entries) this.received.push(e.eventId);
    await super.write(entries);
  }
}

const counts = { written: 0, replayed: 0, spooled: 0, errors: 0 };
const hooks: LedgerHooks = {
  rows: (_s, result, n) => void (counts[result] += n),
  sinkError: () => void counts.errors++,
  unsaved: () => undefined,
  leftInSpool: () => undefined,
};

function options(over: Partial<LedgerOptions> = {}): LedgerOptions {
  return { spoolDir: mkdtempSync(join(tmpdir(), 'tiergate-spool-')), queueSize: 1000, batchSize: 50, writeTimeoutMs: 200, retryMs: 20, ...over };
}

const rows = (n: number, from = 0): LedgerRow[] => Array.from({ length: n }, (_, i) => sampleRow({ request_id: `r-${from + i}` }));
const ids = (sink: MemorySink) => sink.rows<LedgerRow>().map((r) => r.request_id);
const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
};

afterEach(() => Object.assign(counts, { written: 0, replayed: 0, spooled: 0, errors: 0 }));

describe('ledger writer', () => {
  it('a row recorded after close goes to the log as unsaved, for each sink, and never to a closed sink', async () => {
    const a = new MemorySink('a');
    const b = new MemorySink('b');
    const unsaved: Array<[string, string[]]> = [];
    const ledger = new Ledger([a, b], options({ lingerMs: 20 }), { ...hooks, unsaved: (sink, entries) => void unsaved.push([sink, entries.map((e) => JSON.parse(e.line).request_id)]) });
    ledger.record(sampleRow({ request_id: 'before' }));
    await ledger.close();
    ledger.record(sampleRow({ request_id: 'after' }));
    ledger.later(() => ledger.record(sampleRow({ request_id: 'later' }))); // no batch waits after close
    expect(ids(a)).toEqual(['before']);
    expect(ids(b)).toEqual(['before']);
    expect(unsaved).toEqual([
      ['a', ['after']],
      ['b', ['after']],
      ['a', ['later']],
      ['b', ['later']],
    ]);
  });

  it('close runs once: a second caller (a crash while a SIGTERM stops the process) waits for the same close', async () => {
    const sink = new MemorySink();
    const ledger = new Ledger([sink], options(), hooks);
    ledger.record(sampleRow({ request_id: 'once' }));
    const first = ledger.close();
    expect(ledger.close()).toBe(first);
    await first;
    expect(ids(sink)).toEqual(['once']);
  });

  it('delivers every row to every sink in order', async () => {
    const a = new MemorySink('a');
    const b = new MemorySink('b');
    const ledger = new Ledger([a, b], options(), hooks);
    for (const r of rows(500)) ledger.record(r);
    await ledger.flush();
    expect(ids(a)).toEqual(rows(500).map((r) => r.request_id));
    expect(ids(b)).toEqual(ids(a));
    await ledger.close();
  });

  it('spools while a sink is down and replays in order when it is back', async () => {
    const sink = new FlakySink('flaky');
    const healthy = new MemorySink('healthy');
    const opts = options();
    const ledger = new Ledger([sink, healthy], opts, hooks);
    const all = rows(300);
    for (const r of all.slice(0, 100)) ledger.record(r);
    await ledger.flush();
    sink.down = true;
    for (const r of all.slice(100, 200)) ledger.record(r);
    await until(() => counts.errors > 0);
    await ledger.flush();
    // The failed rows are on disk, not only in memory.
    expect(readdirSync(opts.spoolDir)).toContain('flaky.spool.jsonl');
    for (const r of all.slice(200)) ledger.record(r);
    sink.down = false;
    await until(() => ids(sink).length === 300);
    expect(ids(sink)).toEqual(all.map((r) => r.request_id));
    expect(ids(healthy)).toEqual(all.map((r) => r.request_id));
    expect(counts.replayed).toBeGreaterThanOrEqual(100);
    await ledger.close();
    expect(readdirSync(opts.spoolDir)).toEqual([]);
  });

  it('sends overflow past the queue size to the spool and still keeps order', async () => {
    const sink = new FlakySink('slow');
    sink.delayMs = 20;
    const ledger = new Ledger([sink], options({ queueSize: 10, batchSize: 5 }), hooks);
    const all = rows(100);
    for (const r of all) ledger.record(r);
    // queueSize rows in memory (the first, in flight, among them), the rest on disk.
    expect(counts.spooled).toBe(90);
    expect(ledger.backlog()).toEqual([{ sink: 'slow', queued: 10, spooled: 90 }]);
    await until(() => ids(sink).length === 100, 10_000);
    expect(ids(sink)).toEqual(all.map((r) => r.request_id));
    await ledger.close();
  });

  it('a write that lands after its timeout is not stored twice when replayed', async () => {
    const sink = new FlakySink('late');
    sink.delayMs = 300; // longer than writeTimeoutMs: the writer gives up, the sink stores it anyway
    const ledger = new Ledger([sink], options({ writeTimeoutMs: 100 }), hooks);
    for (const r of rows(20)) ledger.record(r);
    await until(() => counts.errors > 0);
    sink.delayMs = 0;
    await until(() => counts.replayed >= 20);
    // The late first attempt lands too: its rows really were sent twice…
    await until(() => sink.received.length > 20);
    expect(ids(sink)).toEqual(rows(20).map((r) => r.request_id)); // …and stored once
    await ledger.close();
  });

  it('on close keeps undelivered rows on disk, and the next process delivers them first', async () => {
    const opts = options();
    const down = new FlakySink('s');
    down.down = true;
    const first = new Ledger([down], opts, hooks);
    for (const r of rows(40)) first.record(r);
    // Still being built at shutdown: waited for, then kept too.
    first.record(new Promise<LedgerRow>((resolve) => setTimeout(() => resolve(sampleRow({ request_id: 'r-late' })), 50)));
    await first.close();
    expect(ids(down)).toEqual([]);

    const up = new MemorySink('s');
    const second = new Ledger([up], opts, hooks);
    second.record(sampleRow({ request_id: 'r-new' }));
    await until(() => ids(up).length === 42);
    expect(ids(up)).toEqual([...rows(40).map((r) => r.request_id), 'r-late', 'r-new']);
    await second.close();
  });

  it('a failing spool disk does not hold rows back from a healthy sink', async () => {
    // Before: rows past the queue size went to the spool's memory, the disk refused them, and they waited for it
    // there, while the sink was up; a shutdown then dropped them without a word.
    const disk = new SpoolDisk();
    const sink = new MemorySink();
    disk.set(false);
    const ledger = new Ledger([sink], options({ spoolDir: disk.dir, queueSize: 2, batchSize: 2 }), hooks);
    for (const r of rows(10)) ledger.record(r);
    await until(() => ids(sink).length === 10);
    expect(ids(sink)).toEqual(rows(10).map((r) => r.request_id));
    await ledger.close();
  });

  it('a spool left by an earlier process that cannot be read yet: new rows go on, the old ones follow when it can be', async () => {
    const disk = new SpoolDisk();
    const down = new FlakySink('s');
    down.down = true;
    const first = new Ledger([down], options({ spoolDir: disk.dir }), hooks);
    for (const r of rows(5)) first.record(r);
    await first.close(); // five rows in the spool file
    disk.set(false);
    const up = new MemorySink('s');
    const second = new Ledger([up], options({ spoolDir: disk.dir }), hooks);
    for (const r of rows(3, 5)) second.record(r);
    // The file cannot be read, so it is not taken for an empty spool (its rows are not dropped) and does not
    // stop this process's rows either: a sink tells the two processes' rows apart.
    await until(() => ids(up).length === 3);
    expect(ids(up)).toEqual(['r-5', 'r-6', 'r-7']);
    expect(second.backlog()[0]?.spooled).toBe(0);
    disk.set(true);
    await until(() => ids(up).length === 8);
    expect(ids(up).slice(3)).toEqual(['r-0', 'r-1', 'r-2', 'r-3', 'r-4']);
    await second.close();
    expect(readdirSync(disk.dir)).toEqual([]);
  });

  it('rows queued while a spool not read yet is being read go to the sink before those spooled behind them', async () => {
    // Before: the replay that was reading the spool delivered the row that had overflowed into it ahead of the
    // queued row recorded before it, and a sink that recognises rows by each writer's highest sequence number
    // (file, Redis) then dropped the queued one as stored. Found by the generated ledger test; the old code fails
    // this within a few rounds.
    for (let i = 0; i < 40; i++) {
      const disk = new SpoolDisk();
      const dir = mkdtempSync(join(tmpdir(), 'tiergate-order-'));
      const sink = new FileSink({ dir });
      disk.set(false);
      const ledger = new Ledger([sink], options({ spoolDir: disk.dir, queueSize: 1, batchSize: 1 }), hooks);
      for (const r of rows(2)) ledger.record(r); // one queued, one past the queue into the spool
      disk.set(true);
      await until(() => ledger.backlog().every((b) => b.queued + b.spooled === 0));
      await ledger.close();
      expect((await collectRows(rowsFromFiles(readdirSync(dir).map((f) => join(dir, f))))).map((r) => r.request_id)).toEqual(['r-0', 'r-1']);
    }
  });

  it('at shutdown, rows neither the sink nor the spool disk would take are handed to the unsaved hook, in order', async () => {
    const disk = new SpoolDisk();
    const down = new FlakySink('s');
    down.down = true;
    const unsaved: string[] = [];
    const ledger = new Ledger([down], options({ spoolDir: disk.dir, queueSize: 3 }), {
      ...hooks,
      unsaved: (_s, entries) => void unsaved.push(...entries.map((e) => (JSON.parse(e.line) as LedgerRow).request_id)),
    });
    disk.set(false);
    for (const r of rows(8)) ledger.record(r);
    await ledger.close();
    expect(unsaved).toEqual(rows(8).map((r) => r.request_id));
  });

  describe('a spool disk that stops answering (an fsync on a hung mount) does not hold the shutdown', () => {
    // Before: the close waited for the disk for ever, and the rows only in memory went with the killed process.
    const hungLedger = (over: Partial<LedgerOptions> = {}) => {
      const down = new FlakySink('s');
      down.down = true;
      const unsaved: string[] = [];
      const errors: string[] = [];
      const left: string[] = [];
      const ledger = new Ledger([down], options({ queueSize: 3, closeMs: 300, ...over }), {
        ...hooks,
        sinkError: (_s, err) => void errors.push(String(err)),
        unsaved: (_s, entries) => void unsaved.push(...entries.map((e) => (JSON.parse(e.line) as LedgerRow).request_id)),
        leftInSpool: (_s, entries) => void left.push(...entries.map((e) => e.eventId)),
      });
      return { ledger, unsaved, errors, left };
    };
    /** Every sync() from now on hangs; the handles it caught are closed when the test ends (hangSyncs). */
    const hangDisk = async () => {
      const { sync, closeHung } = await hangSyncs();
      onTestFinished(async () => {
        sync.mockRestore();
        await closeHung();
      });
      return sync;
    };
    // In no set order: a logged batch becomes a writer of its own at import, and the rollup counts by event id.
    const sorted = (ids: string[]) => [...ids].sort();

    it('rows being put in front of the spool, and rows pending behind them, are logged at the close deadline', async () => {
      const { ledger, unsaved, errors } = hungLedger();
      const sync = await hangDisk();
      // Three queued, then moved to the spool's front when the sink fails; five past the queue, pending behind them.
      for (const r of rows(8)) ledger.record(r);
      await until(() => sync.mock.calls.length > 0);
      await ledger.close();
      expect(sorted(unsaved)).toEqual(sorted(rows(8).map((r) => r.request_id)));
      expect(errors.at(-1)).toBe('Error: ledger spool s: its disk did not answer within 300 ms of the shutdown; 8 rows not known to be stored are logged; the rows in its spool file stay there');
    });

    it('rows being appended are logged; rows the disk took before it hung stay in the spool, unread though logSpoolAtExit asks', async () => {
      // Reading the spool to log it would wait behind the hung write.
      const { ledger, unsaved, left } = hungLedger({ logSpoolAtExit: true });
      for (const r of rows(3)) ledger.record(r);
      await until(() => ledger.backlog()[0]?.spooled === 3);
      const sync = await hangDisk();
      for (const r of rows(2, 3)) ledger.record(r); // behind the spooled rows: appended
      await until(() => sync.mock.calls.length > 0);
      await ledger.close();
      expect(sorted(unsaved)).toEqual(['r-3', 'r-4']);
      expect(left).toEqual([]);
    });
  });

  it('builds deferred rows in batches after the linger, in order, and flush or close runs what is pending', async () => {
    const sink = new MemorySink();
    const built: string[] = [];
    const errors: unknown[] = [];
    const ledger = new Ledger([sink], options({ lingerMs: 30, batchSize: 1000 }), hooks, (err) => errors.push(err));
    const job = (r: LedgerRow) => () => {
      built.push(r.request_id);
      ledger.record(r);
    };
    for (const r of rows(3)) ledger.later(job(r));
    ledger.later(() => {
      throw new Error('build failed');
    });
    expect(built).toEqual([]); // nothing runs on the caller's turn
    await until(() => built.length === 3);
    expect(errors.map((e) => (e as Error).message)).toEqual(['build failed']);
    // flush() does not wait for the timer: it runs pending jobs at once, then delivers.
    for (const r of rows(2, 3)) ledger.later(job(r));
    await ledger.flush();
    expect(ids(sink)).toEqual(['r-0', 'r-1', 'r-2', 'r-3', 'r-4']);
    // Nor does close(): a shutdown right after a stream ends still writes its row.
    ledger.later(job(rows(1, 5)[0] as LedgerRow));
    await ledger.close();
    expect(ids(sink)).toEqual(['r-0', 'r-1', 'r-2', 'r-3', 'r-4', 'r-5']);
  });

  it('delivers the rows of a batch of deferred jobs at once, without a second linger in the channel, and a full batch of direct rows at once', async () => {
    const sink = new MemorySink();
    // A linger far longer than the wait below: the channel's own linger would hold the rows that long.
    const ledger = new Ledger([sink], options({ lingerMs: 60_000, batchSize: 2 }), hooks);
    for (const r of rows(2)) ledger.later(() => ledger.record(r)); // the second job fills the batch
    await until(() => ids(sink).length === 2, 1000);
    expect(ids(sink)).toEqual(['r-0', 'r-1']);
    // A row recorded directly (not through later()) to an idle channel still waits for its linger to share a write.
    await ledger.flush();
    const [third, fourth, fifth] = rows(3, 2) as [LedgerRow, LedgerRow, LedgerRow];
    ledger.record(third);
    await new Promise((r) => setTimeout(r, 50));
    expect(ids(sink)).toEqual(['r-0', 'r-1']);
    // The next one fills its batch: both go at once, without waiting out the first one's linger.
    ledger.record(fourth);
    await new Promise((r) => setTimeout(r, 50));
    expect(ids(sink)).toEqual(['r-0', 'r-1', 'r-2', 'r-3']);
    ledger.record(fifth); // a batch of its own, with a linger of its own
    await new Promise((r) => setTimeout(r, 50));
    expect(ids(sink)).toEqual(['r-0', 'r-1', 'r-2', 'r-3']);
    await ledger.close();
    expect(ids(sink)).toEqual(['r-0', 'r-1', 'r-2', 'r-3', 'r-4']);
  });

  it('runs a batch when a later job finds the oldest one a linger old, with no timer per batch; a sweep covers traffic that stops', async () => {
    const sink = new MemorySink();
    const ran: number[] = [];
    // A linger of 100 ms and a sweep at 500: the 130 ms wait below may run late on a loaded runner by up to
    // 370 ms before the sweep could have run first.
    const ledger = new Ledger([sink], options({ lingerMs: 100, batchSize: 1000 }), hooks);
    const job = (i: number) => () => {
      ran.push(i);
      ledger.record(sampleRow({ request_id: `r-${i}` }));
    };
    ledger.later(job(0));
    await new Promise((r) => setTimeout(r, 130));
    // A timer per batch would have run it by now; the sweep waits five lingers.
    expect(ran).toEqual([]);
    ledger.later(job(1)); // the oldest pending job is a linger old: the batch runs on this turn
    expect(ran).toEqual([0, 1]);
    // Its rows go to the sink without a linger of their own.
    await until(() => ids(sink).length === 2);
    ledger.later(job(2)); // a new batch; no request follows it
    expect(ran).toEqual([0, 1]);
    await until(() => ran.length === 3);
    await until(() => ids(sink).length === 3);
    expect(ids(sink)).toEqual(['r-0', 'r-1', 'r-2']);
    await ledger.close();
  });

  it('runs a full batch of deferred jobs at once, and every job at once when lingerMs is 0', async () => {
    const ran: number[] = [];
    const batched = new Ledger([new MemorySink()], options({ lingerMs: 60_000, batchSize: 4 }), hooks);
    for (let i = 0; i < 3; i++) batched.later(() => ran.push(i));
    expect(ran).toEqual([]);
    batched.later(() => ran.push(3));
    expect(ran).toEqual([0, 1, 2, 3]);
    await batched.close();
    const direct = new Ledger([new MemorySink()], options({ lingerMs: 0 }), hooks);
    direct.later(() => ran.push(4));
    expect(ran).toEqual([0, 1, 2, 3, 4]);
    await direct.close();
  });
});

describe('ledger writer: waits, retries and reports', () => {
  it('a sink that is down is retried on its backoff, not by every new row; close replays its spool once it is back', async () => {
    const sink = new FlakySink('down');
    sink.down = true;
    // A retry far off: only a new row could set off another attempt before close.
    const ledger = new Ledger([sink], options({ retryMs: 60_000, lingerMs: 5 }), hooks);
    const all = rows(41);
    ledger.record(all[0] as LedgerRow);
    await until(() => counts.errors === 1);
    expect(sink.attempts).toBe(1);
    for (const r of all.slice(1, 21)) {
      ledger.record(r); // straight to the channel
      await new Promise((r) => setTimeout(r, 2));
    }
    for (const r of all.slice(21)) ledger.later(() => ledger.record(r)); // a batch of deferred jobs (deliverNow)
    await ledger.flush();
    expect(sink.attempts).toBe(1);
    expect(ledger.backlog()).toEqual([{ sink: 'down', queued: 0, spooled: 41 }]);
    // The sink is back before the retry: a closing process replays the spool (for up to 5 s) rather than
    // leaving it on disk for the next start.
    sink.down = false;
    await ledger.close();
    expect(ids(sink)).toEqual(all.map((r) => r.request_id));
    expect(ledger.backlog()).toEqual([{ sink: 'down', queued: 0, spooled: 0 }]);
  });

  it('a closed writer never tries its sink again, though the replay at close failed', async () => {
    const sink = new FlakySink('down');
    sink.down = true;
    const ledger = new Ledger([sink], options({ retryMs: 20 }), hooks);
    for (const r of rows(3)) ledger.record(r);
    await until(() => counts.errors === 1);
    await ledger.flush(); // the failure handled: the rows on disk, a retry scheduled
    // close() replays the spool once more; the sink refuses it, and that failure must not schedule a retry.
    await ledger.close();
    const tried = sink.attempts;
    expect(tried).toBeGreaterThan(1);
    // Longer than any backoff a retry scheduled at close could have had (20, 40, then 80 ms).
    await new Promise((r) => setTimeout(r, 300));
    expect(sink.attempts).toBe(tried);
  });

  it('retries a sink that is down after retryMs, then twice as long each time', async () => {
    const sink = new FlakySink('down');
    sink.down = true;
    const at: number[] = [];
    const write = sink.write.bind(sink);
    sink.write = (entries) => {
      at.push(performance.now());
      return write(entries);
    };
    const ledger = new Ledger([sink], options({ retryMs: 40 }), hooks);
    ledger.record(rows(1)[0] as LedgerRow);
    await until(() => at.length >= 5);
    // Each wait starts once the failure is handled, so the gaps are at least the delays (a timer never fires
    // early by more than its millisecond rounding). Only lower bounds: a slow machine makes them longer.
    const gaps = at.slice(1, 5).map((t, i) => t - (at[i] as number));
    gaps.forEach((gap, i) => expect(gap, `gap ${i}`).toBeGreaterThanOrEqual(40 * 2 ** i - 2));
    sink.down = false;
    await ledger.close();
    expect(ids(sink)).toEqual(['r-0']);
  });

  it('flush waits for a row still being built', async () => {
    const sink = new MemorySink('m');
    const ledger = new Ledger([sink], options(), hooks);
    const [late] = rows(1);
    ledger.record(new Promise<LedgerRow>((resolve) => setTimeout(() => resolve(late as LedgerRow), 50)));
    await ledger.flush();
    expect(ids(sink)).toEqual(['r-0']);
    await ledger.close();
  });

  it('a row that could not be built is reported, whether it failed later or its job threw, and the rest go on', async () => {
    const sink = new MemorySink('m');
    const failures: unknown[] = [];
    const ledger = new Ledger([sink], options({ lingerMs: 5 }), hooks, (err) => failures.push((err as Error).message));
    ledger.record(Promise.reject(new Error('built badly')));
    ledger.later(() => {
      throw new Error('job threw');
    });
    for (const r of rows(2)) ledger.later(() => ledger.record(r));
    await ledger.flush();
    expect(failures.sort()).toEqual(['built badly', 'job threw']);
    expect(ids(sink)).toEqual(['r-0', 'r-1']);
    await ledger.close();
  });

  it("each row goes to its own day's file, whatever day it is written on", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-days-'));
    const ledger = new Ledger([new FileSink({ dir })], options(), hooks);
    ledger.record(sampleRow({ request_id: 'late', timestamp: '2026-11-22T23:59:59.999Z' }));
    ledger.record(sampleRow({ request_id: 'early', timestamp: '2026-11-23T00:00:00.000Z' }));
    await ledger.close();
    expect(readdirSync(dir).sort()).toEqual(['ledger-2026-11-22.jsonl', 'ledger-2026-11-23.jsonl']);
  });
});

describe('ledger.logSpoolAtExit', () => {
  /** A writer over a sink that is down, and the rows it reports left in its spool at close. */
  async function closeWithSinkDown(logSpoolAtExit: boolean, opts = options({ logSpoolAtExit })) {
    const sink = new FlakySink('redis');
    sink.down = true;
    const left: Array<[string, string[]]> = [];
    const ledger = new Ledger([sink, new MemorySink('file')], opts, { ...hooks, leftInSpool: (name, entries) => void left.push([name, entries.map((e) => JSON.parse(e.line).request_id)]) });
    for (const r of rows(30)) ledger.record(r);
    await until(() => counts.errors > 0);
    await ledger.close();
    return { left, opts };
  }

  it('on: a closing process logs every row it leaves in a spool, in order, and keeps the spool for the next', async () => {
    const { left, opts } = await closeWithSinkDown(true);
    expect(left.every(([name]) => name === 'redis')).toBe(true); // the healthy sink left nothing
    expect(left.flatMap(([, ids]) => ids)).toEqual(rows(30).map((r) => r.request_id));
    // Still on disk: a process started on the same directory delivers them.
    const sink = new MemorySink('redis');
    const next = new Ledger([sink], opts, hooks);
    await until(() => ids(sink).length === 30);
    expect(ids(sink)).toEqual(rows(30).map((r) => r.request_id));
    await next.close();
  });

  it('on: rows an earlier process left and this one could not deliver are logged too, oldest first', async () => {
    const { opts } = await closeWithSinkDown(false);
    const sink = new FlakySink('redis');
    sink.down = true;
    const left: string[] = [];
    const ledger = new Ledger([sink], { ...opts, logSpoolAtExit: true }, { ...hooks, leftInSpool: (_n, entries) => void left.push(...entries.map((e) => JSON.parse(e.line).request_id)) });
    for (const r of rows(5, 30)) ledger.record(r);
    await ledger.close();
    expect(left).toEqual(rows(35).map((r) => r.request_id));
  });

  it('off (the default): nothing is logged; the rows wait in the spool', async () => {
    const { left, opts } = await closeWithSinkDown(false);
    expect(left).toEqual([]);
    expect(readdirSync(opts.spoolDir)).toContain('redis.spool.jsonl');
  });
});

describe('ledger.spoolMaxBytes', () => {
  it('a sink down past the bound: the spool keeps the oldest rows, later ones go to the log a turn at a time, and none is lost', async () => {
    const sink = new FlakySink('redis');
    sink.down = true;
    const refused: Array<{ reason: string | undefined; ids: string[] }> = [];
    const rowBytes = 1100; // a sample row spooled is ~1 KB
    const opts = options({ spoolMaxBytes: rowBytes * 5, queueSize: 1 });
    const ledger = new Ledger([sink], opts, { ...hooks, unsaved: (_n, entries, reason) => void refused.push({ reason, ids: entries.map((e) => JSON.parse(e.line).request_id) }) });
    const all = rows(40);
    ledger.record(all[0] as LedgerRow);
    await until(() => counts.errors > 0); // the first write failed: the spool has begun
    for (const r of all.slice(1, 20)) ledger.record(r); // one turn
    await ledger.flush();
    for (const r of all.slice(20)) ledger.record(r); // another, logged on the next turn by itself (no flush)
    await until(() => refused.length === 2);
    expect(refused.every((r) => r.reason === 'spool_full')).toBe(true);
    expect(refused.length).toBe(2); // one call per turn, not per row
    const logged = refused.flatMap((r) => r.ids);
    expect(logged.length).toBeGreaterThanOrEqual(30);
    const spoolFile = join(opts.spoolDir, 'redis.spool.jsonl');
    expect(statSync(spoolFile).size).toBeLessThanOrEqual(rowBytes * 5);
    sink.down = false;
    await until(() => ids(sink).length + logged.length === 40);
    // The spool held the oldest rows, delivered in order; every later row is in the log, in order.
    expect([...ids(sink), ...logged]).toEqual(all.map((r) => r.request_id));
    await ledger.close();
    expect(readdirSync(opts.spoolDir)).toEqual([]);
  });
});

describe('ledger spool', () => {
  const entry = (seq: number): LedgerEntry => ({ eventId: `e${seq}`, day: '2026-12-02', line: JSON.stringify({ seq }), writer: 'w', seq });
  /** A spool in a directory of its own, with these entries written to its file. */
  const spoolWith = async (entries: LedgerEntry[], dir = mkdtempSync(join(tmpdir(), 'tiergate-spool-'))) => {
    const spool = new Spool(dir, 's');
    spool.append(entries);
    await spool.flush();
    return { dir, spool, file: join(dir, 's.spool.jsonl') };
  };
  /** The next process's spool over the same directory, after appending `more`. */
  const reopenWith = async (dir: string, more: LedgerEntry[]) => (await spoolWith(more, dir)).spool;

  it('a torn last line (an append a crash cut short) is cut off, not joined to the next row', async () => {
    const { dir, file } = await spoolWith([1, 2].map(entry));
    appendFileSync(file, 'w\t3\te3\t2026-12-02\t{"se'); // the crash
    expect(new Spool(dir, 's').size).toBe(2); // the torn row was never durable
    const next = await reopenWith(dir, [entry(4)]);
    // Before: the torn line and row 4 were one garbled line, passed over: row 4 was lost.
    expect((await next.read(10)).entries.map((e) => e.seq)).toEqual([1, 2, 4]);
  });

  it('a last row cut short only of its newline is kept, with the newline added', async () => {
    const { dir, file } = await spoolWith([entry(1)]);
    appendFileSync(file, 'w\t2\te2\t2026-12-02\t{"seq":2}');
    const next = await reopenWith(dir, [entry(3)]);
    expect((await next.read(10)).entries.map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('a foreign line is passed over and counted, an empty one is neither a row nor skipped; the spool then empties', async () => {
    const { dir, file } = await spoolWith([entry(1)]);
    appendFileSync(file, 'not a spool row\n\n');
    const next = await reopenWith(dir, [entry(2)]);
    expect(next.size).toBe(3); // the rows and the foreign line: the empty one is no row
    const { entries, bytes, skipped } = await next.read(10);
    expect([entries.map((e) => e.seq), skipped]).toEqual([[1, 2], 1]);
    expect(bytes).toBe(statSync(file).size);
    await next.advance(entries.length + skipped, bytes);
    expect([next.size, next.isEmpty, next.hasWork]).toEqual([0, true, false]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('advance: what is left is still counted, for the bound too, and still read', async () => {
    const { spool } = await spoolWith([1, 2, 3].map(entry));
    const first = await spool.read(1);
    await spool.advance(1, first.bytes);
    expect(spool.size).toBe(2);
    // Two rows of the same size are waiting: room for a third only within three rows' bytes.
    const row = first.bytes;
    const bounded = new Spool(mkdtempSync(join(tmpdir(), 'tiergate-spool-')), 's', { maxBytes: 3 * row });
    bounded.append([1, 2, 3].map(entry));
    await bounded.flush();
    const one = await bounded.read(1);
    await bounded.advance(1, one.bytes);
    expect([bounded.hasRoomFor(entry(4)), bounded.size]).toEqual([true, 2]);
    bounded.append([entry(4)]);
    expect(bounded.hasRoomFor(entry(5))).toBe(false);
    expect((await spool.read(10)).entries.map((e) => e.seq)).toEqual([2, 3]);
  });

  it('a row longer than the read window is read whole', async () => {
    const big = { ...entry(1), line: JSON.stringify({ pad: 'x'.repeat(5 * 1024 * 1024) }) };
    const { spool } = await spoolWith([big, entry(2)]);
    const { entries, skipped } = await spool.read(10);
    expect(skipped).toBe(0);
    expect(entries.map((e) => e.seq)).toEqual([1, 2]);
  });

  it('forEachLeft: the rows past the offset, in order, across read windows, leaving the files as they were', async () => {
    // Rows of ~1 KB with a multi-byte character, over 4 MiB in all: several windows, cut inside a character.
    const row = (seq: number): LedgerEntry => ({ ...entry(seq), line: JSON.stringify({ seq, pad: 'é'.repeat(500) }) });
    const all = Array.from({ length: 5000 }, (_, i) => row(i + 1));
    const { dir, spool } = await spoolWith(all);
    const first = await spool.read(7);
    await spool.advance(first.entries.length, first.bytes); // rows 1–7 delivered
    const seen: number[] = [];
    let calls = 0;
    expect(await spool.forEachLeft((entries) => (calls++, seen.push(...entries.map((e) => e.seq))))).toBe(4993);
    expect(seen).toEqual(all.slice(7).map((e) => e.seq));
    expect(calls).toBeGreaterThan(1);
    expect(spool.size).toBe(4993);
    const next = new Spool(dir, 's');
    expect(next.size).toBe(4993);
    expect((await next.read(1)).entries[0]).toEqual(all[7]);
  });

  it('a torn last line longer than the read window is cut off whole; a whole one is kept', async () => {
    // The start reads back from the end a window at a time (not the whole file): here the last line starts
    // two windows before the end.
    const { dir, file } = await spoolWith([1, 2].map(entry));
    const sizeBefore = statSync(file).size;
    appendFileSync(file, `w\t3\te3\t2026-12-02\t{"pad":"${'x'.repeat(9 * 1024 * 1024)}`); // torn
    expect(new Spool(dir, 's').size).toBe(2);
    expect(statSync(file).size).toBe(sizeBefore);
    const whole = `w\t3\te3\t2026-12-02\t${JSON.stringify({ pad: 'x'.repeat(9 * 1024 * 1024) })}`; // only its newline missing
    appendFileSync(file, whole);
    const next = new Spool(dir, 's');
    expect(next.size).toBe(3);
    expect(statSync(file).size).toBe(sizeBefore + Buffer.byteLength(whole) + 1);
    const seen: number[] = [];
    await next.forEachLeft((entries) => void seen.push(...entries.map((e) => e.seq)));
    expect(seen).toEqual([1, 2, 3]);
  });

  it('prepend puts rows in front of a spool larger than the read window, copied a window at a time', async () => {
    const row = (seq: number): LedgerEntry => ({ ...entry(seq), line: JSON.stringify({ seq, pad: 'é'.repeat(500) }) });
    const all = Array.from({ length: 5000 }, (_, i) => row(i + 10));
    const { dir, spool } = await spoolWith(all);
    const first = await spool.read(3);
    await spool.advance(first.entries.length, first.bytes); // delivered: they are not copied
    await spool.prepend([1, 2].map(row));
    const want = [1, 2, ...all.slice(3).map((e) => e.seq)];
    expect(spool.size).toBe(want.length);
    const seen: number[] = [];
    await spool.forEachLeft((entries) => void seen.push(...entries.map((e) => e.seq)));
    expect(seen).toEqual(want);
    expect(new Spool(dir, 's').size).toBe(want.length); // the offset went with the old file
    expect(readdirSync(dir).sort()).toEqual(['s.spool.jsonl']);
  });

  it('hasRoomFor: the bound counts the bytes waiting, in the file and pending, and an empty spool takes any row', async () => {
    const e = entry(1);
    const rowBytes = Buffer.byteLength(`w\t1\te1\t2026-12-02\t${e.line}\n`);
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-spool-'));
    const spool = new Spool(dir, 's', { maxBytes: rowBytes * 2 });
    expect(new Spool(mkdtempSync(join(tmpdir(), 'tiergate-spool-')), 's', { maxBytes: 1 }).hasRoomFor(e)).toBe(true);
    spool.append([e]);
    expect(spool.hasRoomFor(entry(2))).toBe(true);
    spool.append([entry(2)]);
    expect(spool.hasRoomFor(entry(3))).toBe(false);
    await spool.flush();
    // A new process on the same file counts it from the disk.
    expect(new Spool(dir, 's', { maxBytes: rowBytes * 2 }).hasRoomFor(entry(3))).toBe(false);
    expect(new Spool(dir, 's', { maxBytes: rowBytes * 3 }).hasRoomFor(entry(3))).toBe(true);
    const one = await spool.read(1);
    await spool.advance(one.entries.length, one.bytes);
    expect(spool.hasRoomFor(entry(3))).toBe(true);
  });

  it('compaction: once the delivered front is past compactAfterBytes and larger than the rest, the rest moves to a new file', async () => {
    const row = (seq: number): LedgerEntry => ({ ...entry(seq), line: JSON.stringify({ seq, pad: 'x'.repeat(70) }) });
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-spool-'));
    const file = join(dir, 's.spool.jsonl');
    const spool = new Spool(dir, 's', { compactAfterBytes: 2000 });
    spool.append(Array.from({ length: 100 }, (_, i) => row(i + 1)));
    await spool.flush();
    const before = statSync(file).size;
    const first = await spool.read(60);
    await spool.advance(first.entries.length, first.bytes);
    // 60 rows delivered, 40 left: the file now holds only those, and no offset.
    expect(first.bytes).toBeGreaterThan(before / 2);
    expect(statSync(file).size).toBe(before - first.bytes);
    expect(readdirSync(dir)).toEqual(['s.spool.jsonl']);
    expect(spool.size).toBe(40);
    spool.append([row(101)]);
    await spool.flush();
    const seen: number[] = [];
    await new Spool(dir, 's').forEachLeft((entries) => void seen.push(...entries.map((e) => e.seq)));
    expect(seen).toEqual(Array.from({ length: 41 }, (_, i) => i + 61));
  });

  it('a spool that never empties (rows arrive as fast as the sink takes them) keeps its file bounded', async () => {
    const row = (seq: number): LedgerEntry => ({ ...entry(seq), line: JSON.stringify({ seq, pad: 'x'.repeat(70) }) });
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-spool-'));
    const file = join(dir, 's.spool.jsonl');
    const spool = new Spool(dir, 's', { compactAfterBytes: 4000 });
    let seq = 0;
    spool.append(Array.from({ length: 20 }, () => row(++seq)));
    let largest = 0;
    const delivered: number[] = [];
    for (let round = 0; round < 200; round++) {
      spool.append(Array.from({ length: 10 }, () => row(++seq)));
      await spool.flush();
      largest = Math.max(largest, statSync(file).size);
      const batch = await spool.read(10);
      delivered.push(...batch.entries.map((e) => e.seq));
      await spool.advance(batch.entries.length, batch.bytes);
    }
    console.info(`a spool that never empties: largest file ${largest} bytes`);
    expect(delivered).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
    expect(spool.size).toBe(20);
    // 2,020 rows of ~100 bytes went through it. Without compaction the file held all of them (~200 KB); now at
    // most the compaction size and twice what waits, plus one round.
    expect(largest).toBeLessThan(4000 + 2 * 30 * 100 + 1000);
  });

  it('an offset left without its spool file is not applied to the next spool file', async () => {
    // What a crash between removing a drained spool and its offset used to leave behind.
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-spool-'));
    writeFileSync(join(dir, 's.spool.jsonl.offset'), '100000');
    await spoolWith([1, 2, 3].map(entry), dir); // on disk; then the process dies before it delivers anything
    const next = new Spool(dir, 's');
    expect(next.size).toBe(3);
    expect((await next.read(10)).entries.map((e) => e.seq)).toEqual([1, 2, 3]);
  });
});

