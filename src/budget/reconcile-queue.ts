// Getting reconciles to the shared budget store across outages and restarts. A reconcile the store refuses is
// kept and retried (ahead of the next admission, and on a timer); a shutdown waits for what is on its way, tries
// the kept ones once more, and leaves what is still refused to the next process (kept-reconciles.ts).
import type { BudgetStore } from '../stores/budget-store.js';
import type { Logger } from '../telemetry/logger.js';
import { KeptReconcileFile, type KeptReconcile } from './kept-reconciles.js';

/** How soon kept reconciles are tried again while nothing else tries them. */
const RETRY_MS = 500;
const MAX_KEPT = 10_000;

export class ReconcileQueue {
  private readonly kept: KeptReconcile[] = [];
  /**
   * Admissions and reconciles sent to the store and not yet answered: close waits for them, and for what they set
   * off (an admission whose stream a shutdown cut off is released as soon as it lands: AdmissionWait).
   */
  private readonly inFlight = new Set<Promise<unknown>>();
  private timer: NodeJS.Timeout | undefined;
  private closing = false;
  /** Reconciles refused past MAX_KEPT: their reservations hold until they expire (budgets.reservationTtlMs). */
  private dropped = 0;
  private readonly file: KeptReconcileFile | undefined;

  /**
   * `keepDir`: where reconciles still unsent at shutdown wait for the next process; those an earlier process left
   * there are sent as soon as the store answers.
   */
  constructor(
    private readonly store: BudgetStore,
    private readonly now: () => number,
    private readonly log: Logger,
    keepDir?: string,
  ) {
    if (keepDir === undefined) return;
    this.file = new KeptReconcileFile(keepDir, log);
    for (const k of this.file.take()) this.keep(k);
  }

  /**
   * Sends one reconcile; close() waits for it. The command is issued before this returns, so kept reconciles sent
   * ahead of an admission reach Redis ahead of it on the connection.
   */
  send(k: KeptReconcile): Promise<void> {
    let p: Promise<void>;
    try {
      p = Promise.resolve(this.store.reconcile(k.id, k.buckets, k.tokens, this.now(), k.microUsd));
    } catch (err) {
      p = Promise.reject(err as Error);
    }
    this.track(p);
    return p;
  }

  /** Something else on its way to the store (an admission) that close() must wait for. */
  track(p: Promise<unknown>): void {
    this.inFlight.add(p);
    const done = () => void this.inFlight.delete(p);
    p.then(done, done);
  }

  /**
   * A reconcile the store refused, kept for a retry: at the next admission, and on a timer, so that the budget is
   * freed soon after the store is back even if no request comes (the budget view, other replicas' admissions).
   */
  keep(k: KeptReconcile): void {
    if (this.kept.length < MAX_KEPT) this.kept.push(k);
    // Said at the first one (the outage is long enough to matter) and counted at close, not once per request.
    else if (this.dropped++ === 0) this.log.warn({ event: 'budget.kept_reconciles_dropped', max: MAX_KEPT });
    if (this.closing) return; // close() takes what is kept once what it waits for has settled
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.probe();
    }, RETRY_MS).unref();
  }

  /** Every kept reconcile at once: ahead of an admission, which the store is about to run anyway. */
  retryAll(): void {
    if (this.kept.length === 0) return;
    for (const k of this.kept.splice(0)) this.send(k).catch(() => this.keep(k));
  }

  /**
   * Waits for what is on its way, tries the kept reconciles once more, and leaves what the store still refuses in
   * the keep file for the next process (or logs it lost when there is none). The store stays open.
   */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.closing = true;
    while (this.inFlight.size > 0) {
      await Promise.allSettled([...this.inFlight]);
      // A turn of the loop: the request path's reactions to an admission that just landed (its release) run
      // first, and what they send is then waited for too.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const last = this.kept.splice(0);
    const results = await Promise.allSettled(last.map((k) => this.send(k)));
    const unsent = last.filter((_, i) => results[i]?.status === 'rejected');
    if (unsent.length > 0 && !this.file?.save(unsent)) {
      this.log.error({ event: 'budget.reconciles_unsent', reconciles: unsent.length });
    }
    if (this.dropped > 0) this.log.warn({ event: 'budget.kept_reconciles_dropped', reconciles: this.dropped });
  }

  /**
   * The timer's retry: one kept reconcile first, and the rest once it succeeds. While the store is still away, a
   * tick costs one failed call rather than one per kept reconcile (up to 10,000, each waiting for a connection).
   */
  private probe(): void {
    const first = this.kept.shift();
    if (!first) return;
    this.send(first).then(
      () => this.retryAll(),
      () => this.keep(first),
    );
  }
}
