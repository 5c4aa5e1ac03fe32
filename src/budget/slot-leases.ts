// The concurrent-request slots this instance holds, and the renewal of their leases. A slot is held on a lease
// (budgets.concurrencyLeaseMs) so that the slots of a replica that died come back on their own; the replica
// that holds one renews it every third of the lease for as long as its request is in flight, one store call per
// store and bucket (a tenant), not per request.
import type { Bucket, BudgetStore } from '../stores/budget-store.js';

export interface HeldSlot {
  /** The admission's id: its hold in the bucket. */
  id: string;
  /** The store that holds it (the local one for an admission made while the shared store was away). */
  store: BudgetStore;
  slot: Bucket;
  leaseMs: number;
}

/** Renews `ids`' leases in `bucket` to `leaseExpiresAt`; never throws (failures are the caller's to count). */
export type RenewSlots = (store: BudgetStore, bucket: Bucket, ids: string[], leaseExpiresAt: number, now: number) => void;

export class SlotLeases {
  private readonly held = new Map<string, HeldSlot>();
  private timer: NodeJS.Timeout | undefined;
  /** When the timer fires (this.now()'s clock). */
  private dueAt = 0;

  constructor(
    private readonly now: () => number,
    private readonly renew: RenewSlots,
  ) {}

  hold(h: HeldSlot): void {
    this.held.set(h.id, h);
    this.schedule(h.leaseMs);
  }

  /** Stops renewing `id`'s slot: true when it was held, so that it is released once. */
  letGo(id: string): boolean {
    return this.held.delete(id);
  }

  close(): void {
    clearTimeout(this.timer);
  }

  private renewAll(): void {
    this.timer = undefined;
    const now = this.now();
    const groups = new Map<BudgetStore, Map<string, { bucket: Bucket; ids: string[]; leaseMs: number }>>();
    let shortest = Infinity;
    for (const h of this.held.values()) {
      shortest = Math.min(shortest, h.leaseMs);
      let byKey = groups.get(h.store);
      if (!byKey) groups.set(h.store, (byKey = new Map()));
      const g = byKey.get(h.slot.key);
      if (g) {
        g.ids.push(h.id);
        g.leaseMs = Math.min(g.leaseMs, h.leaseMs);
      } else byKey.set(h.slot.key, { bucket: h.slot, ids: [h.id], leaseMs: h.leaseMs });
    }
    for (const [store, byKey] of groups) {
      // The counter lives two leases from now: one missed renewal loses nothing.
      for (const { bucket, ids, leaseMs } of byKey.values()) this.renew(store, { ...bucket, expireAt: now + 2 * leaseMs }, ids, now + leaseMs, now);
    }
    if (this.held.size > 0) this.schedule(shortest);
  }

  /** A renewal within a third of `leaseMs`: sooner than the one planned when a reload shortened the lease. */
  private schedule(leaseMs: number): void {
    const delay = Math.max(1, Math.floor(leaseMs / 3));
    const at = this.now() + delay;
    if (this.timer !== undefined) {
      if (this.dueAt <= at) return;
      clearTimeout(this.timer);
    }
    this.dueAt = at;
    this.timer = setTimeout(() => this.renewAll(), delay);
    this.timer.unref();
  }
}
