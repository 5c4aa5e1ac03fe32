// Reconciles the budget store refused are kept and retried. While the store is still away, each retry tick must
// cost one call, not one per kept reconcile; once it answers, every kept reconcile goes through.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Budgets, type Admission } from '../../src/budget/budgets.js';
import type { AdmitRequest, AdmitResult, Bucket, BudgetStore } from '../../src/stores/budget-store.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { captureLogger } from '../helpers/tiergate.js';

/** A Redis-kind store that refuses every call while `down`, and counts its reconcile calls. */
class FlakyStore implements BudgetStore {
  readonly kind = 'redis';
  down = false;
  calls = 0;
  done: string[] = [];
  async admit(_req: AdmitRequest): Promise<AdmitResult> {
    return { admitted: true, counted: [], denied: undefined, budgetWarning: 'none' };
  }
  async reconcile(id: string): Promise<void> {
    this.calls++;
    if (this.down) throw new Error('store away');
    this.done.push(id);
  }
  async peek(): Promise<number[]> {
    return [];
  }
  async close(): Promise<void> {}
}

const bucket: Bucket = { key: 'k', code: 'tokens_per_minute', unit: 'tokens', limit: 1000, resetAt: 0, expireAt: 0 };

afterEach(() => vi.useRealTimers());

describe('kept reconciles', () => {
  it('are probed one at a time while the store is away, and all sent once it answers', async () => {
    vi.useFakeTimers();
    const store = new FlakyStore();
    const budgets = new Budgets(store, createMetrics(), captureLogger().log);
    store.down = true;
    for (let i = 0; i < 100; i++) budgets.reconcile({ id: `r${i}`, tenant: 't', store, tokenBuckets: [bucket], reserved: 10, reservedMicroUsd: 0, responseHeaders: [] } as Admission, 5, 0);
    await vi.advanceTimersByTimeAsync(0);
    expect(store.calls).toBe(100); // each tried once, as the request ended
    await vi.advanceTimersByTimeAsync(5_000); // ten ticks with the store away
    expect(store.calls - 100).toBeLessThanOrEqual(10); // before: 100 calls a tick, 1,000 in all
    store.down = false;
    await vi.advanceTimersByTimeAsync(1_000);
    expect([...store.done].sort()).toEqual(Array.from({ length: 100 }, (_, i) => `r${i}`).sort());
    await budgets.close();
  });
});
