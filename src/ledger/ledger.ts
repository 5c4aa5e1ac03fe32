// The ledger writer: every row goes to every sink, in order, and none is lost. Per sink a bounded in-memory
// queue feeds the sink in batches; when the sink fails, the queue moves to the sink's spool file and every new
// row follows it there until the spool has been replayed, oldest first. A row keeps the (writer, seq) it got
// when recorded, which is how sinks skip rows they already hold when a replay repeats a batch.
import { newId } from '../ids.js';
import type { LedgerRow } from './row.js';
import { SinkChannel } from './sink-channel.js';
import type { LedgerEntry, LedgerSink } from './sink.js';
import { Spool } from './spool.js';

export interface LedgerOptions {
  spoolDir: string;
  /** Rows held in memory per sink before new ones go to the spool file. */
  queueSize: number;
  batchSize: number;
  /** A sink write slower than this counts as failed (it may still land: replays are deduplicated). */
  writeTimeoutMs: number;
  /** First retry delay after a failure; doubles up to 30 s. */
  retryMs: number;
  /**
   * How long a row may wait for others to share its write. At 1,000 requests/s a write per row would be a
   * syscall (file) or a round trip (Redis) each; waiting a few ms makes them batches. 0 writes at once.
   */
  lingerMs?: number;
  /**
   * The spool's directory does not outlive the process (a Kubernetes emptyDir goes with its pod): at shutdown,
   * rows left in a spool are also logged in full (hooks.leftInSpool), for `tiergate ledger import`.
   */
  logSpoolAtExit?: boolean;
  /** The most bytes of rows a sink's spool file takes; rows past it are logged (hooks.unsaved, 'spool_full'). */
  spoolMaxBytes?: number;
  /** When a spool drops its delivered front (Spool.advance()); not in the config: tests set it small. */
  spoolCompactAfterBytes?: number;
  /** The most a sink's delivery at shutdown takes (ledgerCloseMs()); not in the config: tests set it small. */
  closeMs?: number;
}

export interface LedgerHooks {
  rows(sink: string, result: 'written' | 'replayed' | 'spooled', n: number): void;
  sinkError(sink: string, err: unknown): void;
  /**
   * Rows neither the sink nor the spool took, for the log, the last place they can go: a closing process whose
   * sink and spool disk failed together, or (`spool_full`) a sink down so long that its spool reached
   * spoolMaxBytes.
   */
  unsaved(sink: string, entries: readonly LedgerEntry[], reason?: 'spool_full'): void;
  /**
   * With logSpoolAtExit: rows a closing process keeps in the spool for the next one (the sink is down), which
   * are lost if no process starts on that directory again. Called a window of rows at a time, oldest first.
   */
  leftInSpool(sink: string, entries: readonly LedgerEntry[]): void;
}

export class Ledger {
  private readonly writer = newId();
  private seq = 0;
  private readonly channels: SinkChannel[];
  private readonly building = new Set<Promise<void>>();
  /** Row-building jobs waiting for their batch (see later()). */
  private pending: Array<() => void> = [];
  /** performance.now() when the oldest pending job was queued. */
  private pendingSince = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** While a batch of jobs runs, rows go to the channels without a linger of their own (see runPending()). */
  private batching = false;
  /** The sinks are closed: a row recorded now has nowhere to go but the log (enqueue()). */
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    sinks: readonly LedgerSink[],
    private readonly opts: LedgerOptions,
    private readonly hooks: LedgerHooks,
    private readonly onBuildError: (err: unknown) => void = () => undefined,
  ) {
    this.channels = sinks.map((s) => new SinkChannel(s, new Spool(opts.spoolDir, s.name, { maxBytes: opts.spoolMaxBytes, compactAfterBytes: opts.spoolCompactAfterBytes }), opts, hooks));
    for (const c of this.channels) c.kick();
  }

  /**
   * Runs `job` (which builds a row and record()s it) a little later, together with the jobs of other requests.
   * Building a row is a handful of object allocations, a JSON.stringify and metric updates: at a steady 1,000
   * requests/s each request would run that code alone, with the CPU's caches cold from everything in between,
   * which costs several times what the same code costs in a batch (bench/pipeline-bench.ts, paced mode).
   *
   * A batch runs when a request ends and finds the oldest pending job at least lingerMs old (or the batch full),
   * on a turn the process is awake for anyway. A timer per batch would wake the process once per linger for
   * that alone, and on this project's machines a wake-up after a few idle milliseconds costs ~150 µs of CPU
   * (docs/performance.md "Reading the numbers"): with batches of ~5 rows that was ~30 µs per request. The sweep
   * timer only covers traffic that stops: it runs what is pending every SWEEP_LINGERS lingers while anything
   * is. So under load a row waits about lingerMs; after the last request, up to SWEEP_LINGERS × lingerMs.
   * flush() and close() run whatever is pending first, so nothing recorded before them is missed.
   */
  later(job: () => void): void {
    const linger = this.opts.lingerMs ?? 0;
    if (linger <= 0 || this.closed) return this.runJob(job);
    const now = performance.now();
    if (this.pending.length === 0) this.pendingSince = now;
    this.pending.push(job);
    if (this.pending.length >= this.opts.batchSize || now - this.pendingSince >= linger) this.runPending();
    else this.sweepTimer ??= setTimeout(() => this.sweep(), linger * SWEEP_LINGERS);
  }

  private sweep(): void {
    this.sweepTimer = undefined;
    this.runPending();
  }

  private runPending(): void {
    const jobs = this.pending;
    if (jobs.length === 0) return;
    this.pending = [];
    this.batching = true;
    try {
      for (const job of jobs) this.runJob(job);
    } finally {
      this.batching = false;
    }
    // These rows already waited one linger to be built together: they go to the sinks now rather than waiting a
    // second one in the channels. That halves how long a row sits in memory (what a SIGKILL would lose) and
    // saves each channel's timer wake-up per batch.
    for (const c of this.channels) c.deliverNow();
  }

  private runJob(job: () => void): void {
    try {
      job();
    } catch (err) {
      this.onBuildError(err);
    }
  }

  /** Takes a row (or one still being built); never throws, never waits. */
  record(row: LedgerRow | Promise<LedgerRow>): void {
    if (!(row instanceof Promise)) {
      this.enqueue(row);
      return;
    }
    const p = row.then(
      (r) => this.enqueue(r),
      (err: unknown) => this.onBuildError(err),
    );
    this.building.add(p);
    void p.finally(() => this.building.delete(p));
  }

  private enqueue(row: LedgerRow): void {
    const entry: LedgerEntry = {
      eventId: row.event_id,
      day: row.timestamp.slice(0, 10),
      line: JSON.stringify(row),
      writer: this.writer,
      seq: ++this.seq,
    };
    if (this.closed) {
      // Recorded after close (a request that ended later than every stream the shutdown waited for): the sinks
      // are closed, so the row goes where unsaved rows go, the log, from which `tiergate ledger import` puts it
      // back, rather than to a closed sink (a file sink would reopen its day file and never close it).
      for (const c of this.channels) this.hooks.unsaved(c.sinkName, [entry]);
      return;
    }
    for (const c of this.channels) c.enqueue(entry, !this.batching);
  }

  /** Rows not yet stored, per sink: in memory and in the spool file. */
  backlog(): Array<{ sink: string; queued: number; spooled: number }> {
    return this.channels.map((c) => c.backlog());
  }

  /** Resolves once every row recorded so far is stored by every sink that is up (or spooled for one that is not). */
  async flush(): Promise<void> {
    this.runPending();
    await Promise.all([...this.building]);
    await Promise.all(this.channels.map((c) => c.idle()));
  }

  /**
   * Shutdown: rows still being built are finished, queues delivered or spooled to disk, sinks closed. Once: a
   * crash while a SIGTERM's shutdown runs waits for the same close.
   */
  close(): Promise<void> {
    return (this.closing ??= this.closeOnce());
  }

  private async closeOnce(): Promise<void> {
    // Nothing can be pending after this: the sweep would only hold a shutting-down process up to 5 lingers.
    clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    this.runPending();
    await Promise.all([...this.building]);
    await Promise.all(this.channels.map((c) => c.close()));
    this.closed = true;
  }
}

/** When requests stop, pending jobs wait at most this many lingers (see Ledger.later()). */
const SWEEP_LINGERS = 5;
