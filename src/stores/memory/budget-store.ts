// In-process budget store: the embedded default, and the local per-instance limiter behind a failed Redis.
// Synchronous, so with it the request pipeline stays synchronous too.
import { costOf, hasRoom, holdExpiry, isBudget, usedOf, type AdmitRequest, type AdmitResult, type Bucket, type BudgetStore } from '../budget-store.js';

interface Counter {
  used: number;
  reserved: number;
  /** Reservation id → amount (tokens or micro-dollars) and expiry, in the order they were made. */
  holds: Map<string, { amount: number; expiresAt: number }>;
  /**
   * Ids of reservations freed by their expiry: their reconcile, if it comes, still counts (once), as in the
   * Redis store. A reconcile counts only for an id held or here. Not kept for a concurrent bucket: its
   * reconcile counts nothing, and the counter lives as long as traffic does, so the set would only grow.
   */
  expired: Set<string> | undefined;
  /**
   * Whether that order is also expiry order: true while every reservation gets the same TTL
   * (budgets.reservationTtlMs). A reload that shortens it makes later reservations expire before earlier ones,
   * and then the sweep reads them all until the order holds again.
   */
  inExpiryOrder: boolean;
  lastExpiry: number;
  expireAt: number;
  warned: boolean;
}

export class MemoryBudgetStore implements BudgetStore {
  readonly kind = 'memory';
  private readonly counters = new Map<string, Counter>();
  private sweepAt = 0;

  admit(req: AdmitRequest): AdmitResult {
    this.sweepExpiredCounters(req.now);
    // Read first; a window is made only by an admission, as in the Redis store (a refusal leaves nothing behind
    // for a later reconcile to count into).
    const existing = req.buckets.map((b) => this.live(b, req.now));
    const counted = existing.map((c) => (c ? c.used + c.reserved : 0));
    const costs = req.buckets.map((b) => costOf(b, req.tokens, req.microUsd));
    const denied = req.buckets.findIndex((b, i) => !hasRoom(counted[i] as number, costs[i] as number, b.limit));
    if (denied !== -1) return { admitted: false, counted, denied, budgetWarning: 'none' };
    let budgetWarning: AdmitResult['budgetWarning'] = 'none';
    req.buckets.forEach((b, i) => {
      const c = existing[i] ?? this.create(b);
      const amount = costs[i] as number;
      c.expireAt = Math.max(c.expireAt, b.expireAt);
      if (b.unit === 'requests') c.used += 1;
      else {
        // A hold even of nothing (embeddings under a cost budget), so that its reconcile counts what it spent.
        const expiresAt = holdExpiry(b, req);
        c.reserved += amount;
        c.holds.set(req.id, { amount, expiresAt });
        if (expiresAt < c.lastExpiry) c.inExpiryOrder = false;
        c.lastExpiry = expiresAt;
      }
      counted[i] = c.used + c.reserved;
      if (isBudget(b) && c.used + c.reserved >= req.warnAt * b.limit) {
        // Several budgets: "first" when any of them is crossed for the first time (as the Redis script decides).
        if (!c.warned) budgetWarning = 'first';
        else if (budgetWarning === 'none') budgetWarning = 'over';
        c.warned = true;
      }
    });
    return { admitted: true, counted, denied: undefined, budgetWarning };
  }

  reconcile(id: string, buckets: readonly Bucket[], actualTokens: number, now: number, actualMicroUsd = 0): void {
    for (const b of buckets) {
      const c = this.counters.get(b.key);
      if (!c || c.expireAt <= now) continue;
      const hold = c.holds.get(id);
      if (hold) {
        c.reserved -= hold.amount;
        c.holds.delete(id);
      } else if (!c.expired?.delete(id)) continue; // reconciled already
      c.used += usedOf(b, actualTokens, actualMicroUsd);
    }
  }

  renew(b: Bucket, ids: readonly string[], leaseExpiresAt: number, now: number): void {
    const c = this.counters.get(b.key);
    if (!c || c.expireAt <= now) return;
    c.expireAt = Math.max(c.expireAt, b.expireAt);
    for (const id of ids) {
      const hold = c.holds.get(id);
      if (hold && hold.expiresAt > now) hold.expiresAt = leaseExpiresAt;
    }
    // Renewed holds may now expire after ones made later: live() checks the order again, in one pass.
    c.inExpiryOrder = false;
  }

  peek(buckets: readonly Bucket[], now: number): number[] {
    return buckets.map((b) => {
      const c = this.counters.get(b.key);
      if (!c || c.expireAt <= now) return 0;
      let reserved = 0;
      for (const h of c.holds.values()) if (h.expiresAt > now) reserved += h.amount;
      return c.used + reserved;
    });
  }

  async close(): Promise<void> {
    this.counters.clear();
  }

  /** The bucket's counter in its current window, its expired reservations dropped; undefined when there is none. */
  private live(b: Bucket, now: number): Counter | undefined {
    const c = this.counters.get(b.key);
    if (!c || c.expireAt <= now) return undefined;
    if (c.inExpiryOrder) {
      for (const [id, h] of c.holds) {
        if (h.expiresAt > now) break;
        this.expire(c, id, h.amount);
      }
      return c;
    }
    let previous = 0;
    let ordered = true;
    for (const [id, h] of c.holds) {
      if (h.expiresAt <= now) {
        this.expire(c, id, h.amount);
        continue;
      }
      if (h.expiresAt < previous) ordered = false;
      previous = h.expiresAt;
    }
    c.inExpiryOrder = ordered;
    // What the next reservation is compared with: the last one's expiry (it may have been reconciled away).
    if (ordered) c.lastExpiry = previous;
    return c;
  }

  private expire(c: Counter, id: string, amount: number): void {
    c.reserved -= amount;
    c.holds.delete(id);
    c.expired?.add(id);
  }

  private create(b: Bucket): Counter {
    const expired = b.unit === 'concurrent' ? undefined : new Set<string>();
    const c: Counter = { used: 0, reserved: 0, holds: new Map(), expired, inExpiryOrder: true, lastExpiry: 0, expireAt: b.expireAt, warned: false };
    this.counters.set(b.key, c);
    return c;
  }

  /** Windows that are over are dropped now and then, so memory follows the live windows only. */
  private sweepExpiredCounters(now: number): void {
    if (now < this.sweepAt) return;
    this.sweepAt = now + 10_000;
    for (const [k, c] of this.counters) if (c.expireAt <= now) this.counters.delete(k);
  }
}
