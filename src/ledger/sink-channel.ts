// One sink's side of the ledger writer (ledger.ts): a bounded in-memory queue that feeds the sink in batches and,
// while the sink fails, its spool file on disk, replayed oldest first once it is back.
import { withDeadline } from '../deadline-timer.js';
import type { LedgerHooks, LedgerOptions } from './ledger.js';
import type { LedgerEntry, LedgerSink } from './sink.js';
import type { Spool } from './spool.js';

const MAX_RETRY_MS = 30_000;
const CLOSE_REPLAY_MS = 5_000;
/** What a closing sink's spool disk gets, past the replay and the last writes, before it is given up on. */
const CLOSE_DISK_MS = 2_000;

/**
 * The most a sink's delivery at shutdown takes: the replay's CLOSE_REPLAY_MS, the replay write still running
 * then and the last try for what is queued (`writeTimeoutMs` each), and CLOSE_DISK_MS for the spool. Only a
 * spool disk that stopped answering (a hung network mount) outlasts it: every other step has its own bound. It
 * would hold the shutdown until the kill, and the rows only in memory would go with the process; at this
 * deadline they are logged instead.
 */
export function ledgerCloseMs(writeTimeoutMs: number): number {
  return CLOSE_REPLAY_MS + 2 * writeTimeoutMs + CLOSE_DISK_MS;
}

export class SinkChannel {
  private queue: LedgerEntry[] = [];
  private running: Promise<void> = Promise.resolve();
  private active = false;
  private closeDeadline = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  private delay: number;
  private closing = false;
  /** Rows the full spool refused this turn, logged together (logOverflow()). */
  private overflow: LedgerEntry[] = [];

  get sinkName(): string {
    return this.sink.name;
  }

  constructor(
    private readonly sink: LedgerSink,
    private readonly spool: Spool,
    private readonly opts: LedgerOptions,
    private readonly hooks: LedgerHooks,
  ) {
    this.delay = opts.retryMs;
  }

  /** `linger`: wait for more rows before delivering; false when the caller delivers the batch itself (deliverNow). */
  enqueue(e: LedgerEntry, linger = true): void {
    // Everything in the spool is older than what is queued, so once it holds anything new rows go after it.
    if (!this.spool.isEmpty || this.queue.length >= this.opts.queueSize) {
      if (!this.spool.hasRoomFor(e)) return this.refuse(e);
      this.spool.append([e]);
      this.hooks.rows(this.sink.name, 'spooled', 1);
    } else {
      this.queue.push(e);
    }
    if (this.retryTimer || this.active || !linger) return;
    const lingerMs = this.opts.lingerMs ?? 0;
    // A full batch goes at once, even while an earlier row's linger runs: the wait is for company, and it has it.
    if (lingerMs <= 0 || this.queue.length >= this.opts.batchSize) return this.deliverNow();
    if (this.lingerTimer) return;
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = undefined;
      this.kick();
    }, lingerMs);
  }

  /**
   * The spool is at ledger.spoolMaxBytes: the row goes to the log instead, with the others refused this turn, for
   * `tiergate ledger import`. A spool past its bound would fill the disk (an emptyDir past its sizeLimit gets the
   * pod evicted, and the spool goes with it), and a larger spool takes longer to log at exit (logSpoolAtExit).
   * Nothing waits for the rows the spool holds: a refused row is newer than all of them, and the import stores
   * rows as a writer of its own, so no sink takes it for one it holds already.
   */
  private refuse(e: LedgerEntry): void {
    if (this.overflow.length === 0) setImmediate(() => this.logOverflow());
    this.overflow.push(e);
  }

  private logOverflow(): void {
    if (this.overflow.length === 0) return;
    const rows = this.overflow;
    this.overflow = [];
    this.hooks.unsaved(this.sink.name, rows, 'spool_full');
  }

  /** Ends the linger of what is queued (unless a retry is scheduled: then the retry decides when). */
  deliverNow(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    if (!this.retryTimer && (this.queue.length > 0 || this.spool.hasWork)) this.kick();
  }

  kick(): void {
    if (this.active) return;
    this.active = true;
    this.running = this.run().catch((err: unknown) => {
      // Only the spool's disk can get here (sink errors are handled in the loop): try again later.
      this.hooks.sinkError(`${this.sink.name}-spool`, err);
      this.active = false;
      this.retryLater();
    });
  }

  /** Resolves when nothing is queued and the spool is empty or waiting for a retry. */
  async idle(): Promise<void> {
    this.logOverflow();
    this.deliverNow();
    while (this.active) await this.running;
  }

  /**
   * The delivery loop. `active` is cleared in the same synchronous step as the last check for work, so a row
   * enqueued at any moment either is seen by the loop or starts a new one.
   */
  private async run(): Promise<void> {
    for (;;) {
      if (this.queue.length > 0) {
        const batch = this.queue.slice(0, this.opts.batchSize);
        if (!(await this.attempt(batch))) return this.stop(this.failed());
        this.queue.splice(0, batch.length);
        this.hooks.rows(this.sink.name, 'written', batch.length);
      } else if (this.spool.hasWork && (!this.closing || Date.now() < this.closeDeadline)) {
        try {
          await this.spool.flush();
        } catch (err) {
          this.hooks.sinkError(`${this.sink.name}-spool`, err);
          // The disk failed, not necessarily the sink: rows the file never got are delivered from memory when
          // nothing older waits in the file. Whatever is queued is older than what is spooled, so they go last.
          const taken = await this.spool.takeUnwritten((rows) => this.queue.push(...rows)).catch(() => 0);
          if (taken === 0) return this.stop(this.retryLater());
          continue;
        }
        const { entries, bytes, skipped } = await this.spool.read(this.opts.batchSize);
        // Rows queued while the spool was read are older than any it holds: while a spool from an earlier
        // process is not read yet (its rows are another writer's), new rows go to the queue, and the next ones
        // past the queue's size to the spool behind them. A sink would take a row delivered after a later one of
        // its writer for one already stored.
        if (this.queue.length > 0) continue;
        if (entries.length > 0 && !(await this.attempt(entries))) return this.stop(this.retryLater());
        await this.spool.advance(entries.length + skipped, bytes);
        this.hooks.rows(this.sink.name, 'replayed', entries.length);
      } else {
        this.active = false;
        return;
      }
      this.delay = this.opts.retryMs;
    }
  }

  private async stop(after: Promise<void> | void): Promise<void> {
    await after;
    this.active = false;
    // Rows that arrived while the failure was handled are queued behind a spool that may now be empty.
    if (this.queue.length > 0 && !this.retryTimer && !this.closing) this.kick();
  }

  private async attempt(batch: readonly LedgerEntry[]): Promise<boolean> {
    try {
      // A write that completed while the loop was held up is not timed out (deadline-timer.ts): that batch
      // would be spooled and written a second time.
      const done = await withDeadline(this.sink.write(batch).then(() => true), this.opts.writeTimeoutMs, false);
      if (!done) throw new Error(`ledger sink ${this.sink.name}: write timed out`);
      return true;
    } catch (err) {
      this.hooks.sinkError(this.sink.name, err);
      return false;
    }
  }

  /** The queue (older than the spool) goes in front of it, on disk, and delivery resumes from the spool later. */
  private async failed(): Promise<void> {
    const moved = this.queue.splice(0);
    try {
      await this.spool.prepend(moved);
      this.hooks.rows(this.sink.name, 'spooled', moved.length);
    } catch (err) {
      // The disk failed too: keep them in memory, in order, and try again later.
      this.queue = moved.concat(this.queue);
      this.hooks.sinkError(`${this.sink.name}-spool`, err);
    }
    if (!this.closing) this.retryLater();
  }

  private retryLater(): void {
    if (this.closing || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.kick();
    }, this.delay);
    this.retryTimer.unref();
    this.delay = Math.min(this.delay * 2, MAX_RETRY_MS);
  }

  backlog(): { sink: string; queued: number; spooled: number } {
    return { sink: this.sink.name, queued: this.queue.length, spooled: this.spool.size };
  }

  /**
   * Shutdown: delivers what is left, or spools it for the next process; if the spool's disk stops answering
   * meanwhile, gives up on it at ledgerCloseMs and logs what is not known to be stored.
   */
  async close(): Promise<void> {
    const closeMs = this.opts.closeMs ?? ledgerCloseMs(this.opts.writeTimeoutMs);
    if (!(await withDeadline(this.deliverOrSpool().then(() => true), closeMs, false))) {
      // The queue's rows may be in a write that still finishes, and the spool's in one to its disk: logged all
      // the same, since the process is about to exit; a row stored twice is counted once (event ids).
      const rows = this.queue.concat(this.spool.notOnDisk());
      this.hooks.sinkError(`${this.sink.name}-spool`, new Error(`ledger spool ${this.sink.name}: its disk did not answer within ${closeMs} ms of the shutdown; ${rows.length} rows not known to be stored are logged; the rows in its spool file stay there`));
      if (rows.length > 0) this.hooks.unsaved(this.sink.name, rows);
    } else if (this.opts.logSpoolAtExit && this.spool.hasWork) {
      await this.spool.forEachLeft((rows) => this.hooks.leftInSpool(this.sink.name, rows)).catch((err: unknown) => this.hooks.sinkError(`${this.sink.name}-spool`, err));
    }
    this.logOverflow(); // rows of requests that ended while this closed
    await this.sink.close().catch((err: unknown) => this.hooks.sinkError(this.sink.name, err));
  }

  private async deliverOrSpool(): Promise<void> {
    this.closing = true;
    // A spool left by an outage is replayed for a few seconds more; the rest waits on disk for the next start.
    this.closeDeadline = Date.now() + CLOSE_REPLAY_MS;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.idle();
    // One more try for what is queued; whatever the sink will not take now is kept on disk for the next start.
    if (this.queue.length > 0) {
      this.kick();
      await this.idle();
    }
    if (this.queue.length > 0) {
      const rest = this.queue.splice(0);
      await this.spool.prepend(rest).catch((err: unknown) => {
        this.hooks.sinkError(`${this.sink.name}-spool`, err);
        this.hooks.unsaved(this.sink.name, rest);
      });
    }
    await this.spool.flush().catch((err: unknown) => {
      this.hooks.sinkError(`${this.sink.name}-spool`, err);
      this.hooks.unsaved(this.sink.name, this.spool.abandonUnwritten());
    });
  }
}
