// SlotLeases: the renewal of this instance's concurrent-request slots. One call per store and tenant bucket
// with every id it holds there, every third of the shortest lease, and none once nothing is held.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SlotLeases } from '../../src/budget/slot-leases.js';
import type { Bucket, BudgetStore } from '../../src/stores/budget-store.js';
import { MemoryBudgetStore } from '../../src/stores/memory/budget-store.js';

afterEach(() => vi.useRealTimers());

const slot = (tenant: string): Bucket => ({ key: `p:{t:${tenant}}:inflight`, code: 'concurrent_requests', unit: 'concurrent', limit: 10, resetAt: 0, expireAt: 0 });

describe('SlotLeases', () => {
  it('renews in one call per store and bucket, every third of the lease, until nothing is held', () => {
    vi.useFakeTimers();
    const shared = new MemoryBudgetStore();
    const local = new MemoryBudgetStore();
    let now = 1_000_000;
    const calls: Array<{ store: BudgetStore; key: string; ids: string[]; leaseExpiresAt: number; expireAt: number }> = [];
    const leases = new SlotLeases(
      () => now,
      (store, bucket, ids, leaseExpiresAt) => calls.push({ store, key: bucket.key, ids, leaseExpiresAt, expireAt: bucket.expireAt }),
    );
    leases.hold({ id: 'a1', store: shared, slot: slot('acme'), leaseMs: 3000 });
    leases.hold({ id: 'a2', store: shared, slot: slot('acme'), leaseMs: 3000 });
    leases.hold({ id: 'g1', store: shared, slot: slot('globex'), leaseMs: 3000 });
    leases.hold({ id: 'a3', store: local, slot: slot('acme'), leaseMs: 3000 }); // admitted while the shared store was away
    vi.advanceTimersByTime(999);
    expect(calls).toEqual([]);
    now += 1000;
    vi.advanceTimersByTime(1);
    expect(calls.map((c) => [c.store === shared ? 'shared' : 'local', c.key, c.ids])).toEqual([
      ['shared', 'p:{t:acme}:inflight', ['a1', 'a2']],
      ['shared', 'p:{t:globex}:inflight', ['g1']],
      ['local', 'p:{t:acme}:inflight', ['a3']],
    ]);
    // A lease from now, and the counter two: one missed renewal loses nothing.
    expect(calls.every((c) => c.leaseExpiresAt === now + 3000 && c.expireAt === now + 6000)).toBe(true);
    // Let go: renewed no more; once nothing is held, no timer runs at all.
    expect([leases.letGo('a1'), leases.letGo('a1'), leases.letGo('g1'), leases.letGo('a3')]).toEqual([true, false, true, true]);
    calls.length = 0;
    vi.advanceTimersByTime(1000);
    expect(calls.map((c) => c.ids)).toEqual([['a2']]);
    leases.letGo('a2');
    calls.length = 0;
    vi.advanceTimersByTime(10_000);
    expect(calls).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a shorter lease (a reload) brings the next renewal forward and sets the pace for the bucket it shares', () => {
    vi.useFakeTimers();
    const store = new MemoryBudgetStore();
    const seen: number[] = [];
    const leases = new SlotLeases(() => Date.now(), (_s, _b, _ids, leaseExpiresAt) => seen.push(leaseExpiresAt - Date.now()));
    leases.hold({ id: 'old', store, slot: slot('acme'), leaseMs: 30_000 });
    vi.advanceTimersByTime(5_000);
    // Renewed first at 10 s, as the 30 s lease planned, this hold would have run out at 3 s.
    leases.hold({ id: 'new', store, slot: slot('acme'), leaseMs: 3_000 });
    vi.advanceTimersByTime(1_000);
    expect(seen).toEqual([3_000]);
    vi.advanceTimersByTime(1_000); // then every second: a third of the shortest
    expect(seen).toEqual([3_000, 3_000]);
    // A longer lease held later does not put the renewal off.
    leases.hold({ id: 'later', store, slot: slot('acme'), leaseMs: 60_000 });
    vi.advanceTimersByTime(1_000);
    expect(seen).toEqual([3_000, 3_000, 3_000]);
    // Closed (a shutdown, before the store closes): no renewal reaches the store, though slots are still held.
    leases.close();
    vi.advanceTimersByTime(60_000);
    expect(seen).toHaveLength(3);
  });
});
