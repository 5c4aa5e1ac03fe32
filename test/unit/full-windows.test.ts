// A tenant's full requests-per-minute window is remembered until it ends, and only what the shared store said:
// the memo's own rules, and Budgets answering from it without asking the store.
import { describe, expect, it } from 'vitest';
import { Budgets } from '../../src/budget/budgets.js';
import { FullWindows } from '../../src/budget/full-windows.js';
import type { TiergateError } from '../../src/errors.js';
import type { AdmitRequest, AdmitResult, Bucket, BudgetStore } from '../../src/stores/budget-store.js';
import { MemoryBudgetStore } from '../../src/stores/memory/budget-store.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { captureLogger, runtimeFor } from '../helpers/tiergate.js';

const rpm = (over: Partial<Bucket> = {}): Bucket => ({ key: 'p:{t:acme}:rpm:100', code: 'requests_per_minute', unit: 'requests', limit: 2, resetAt: 6_000_000, expireAt: 6_120_000, ...over });

describe('FullWindows', () => {
  it('remembers a requests bucket with no room left, until its window ends', () => {
    const w = new FullWindows();
    w.note('acme', rpm(), 1);
    expect(w.known('acme', () => rpm(), 5_990_000)).toBeUndefined(); // one more would still fit
    w.note('acme', rpm(), 2);
    expect(w.known('acme', () => rpm(), 5_990_000)).toEqual({ bucket: rpm(), counted: 2 });
    expect(w.known('globex', () => rpm(), 5_990_000)).toBeUndefined();
    expect(w.known('acme', () => rpm(), 6_000_000)).toBeUndefined(); // the window is over …
    expect(w.known('acme', () => rpm(), 5_990_000)).toBeUndefined(); // … and forgotten
  });

  it('is another window, limit or counter, not the one seen full, when the key or the limit differ', () => {
    const w = new FullWindows();
    w.note('acme', rpm(), 2);
    expect(w.known('acme', () => rpm({ limit: 3 }), 5_990_000)).toBeUndefined(); // a reload raised it
    expect(w.known('acme', () => rpm({ key: 'q:{t:acme}:rpm:100' }), 5_990_000)).toBeUndefined(); // another key prefix
    expect(w.known('acme', () => undefined, 5_990_000)).toBeUndefined(); // the limit was taken away
    expect(w.known('acme', () => rpm(), 5_990_000)).toBeDefined();
  });

  it('never remembers a token or cost bucket: a smaller request may still fit those', () => {
    const w = new FullWindows();
    w.note('acme', rpm({ code: 'tokens_per_minute', unit: 'tokens', limit: 100 }), 100);
    expect(w.known('acme', () => rpm({ code: 'tokens_per_minute', unit: 'tokens', limit: 100 }), 5_990_000)).toBeUndefined();
  });
});

/** A Redis-kind store counting requests like the real one, that can be made to fail, and counts its admissions. */
class CountingStore implements BudgetStore {
  readonly kind = 'redis';
  admits = 0;
  down = false;
  private readonly used = new Map<string, number>();
  async admit(req: AdmitRequest): Promise<AdmitResult> {
    this.admits++;
    if (this.down) throw new Error('store away');
    const counted = req.buckets.map((b) => this.used.get(b.key) ?? 0);
    const denied = req.buckets.findIndex((b, i) => (counted[i] as number) + 1 > b.limit);
    if (denied !== -1) return { admitted: false, counted, denied, budgetWarning: 'none' };
    req.buckets.forEach((b, i) => this.used.set(b.key, (counted[i] as number) + 1));
    return { admitted: true, counted: counted.map((c) => c + 1), denied: undefined, budgetWarning: 'none' };
  }
  reconcile(): void {}
  renew(): void {}
  peek(buckets: readonly Bucket[]): number[] {
    return buckets.map((b) => this.used.get(b.key) ?? 0);
  }
  async close(): Promise<void> {}
}

describe('Budgets and a full window', () => {
  const rt = runtimeFor({ tenants: { acme: { requestsPerMinute: 2 } }, budgets: { store: 'redis', redis: { url: 'redis://127.0.0.1:1' } } });
  const policy = rt.tenants.policyFor('acme');
  const at = Date.UTC(2026, 10, 22, 12, 0, 30);
  const admit = async (b: Budgets, id: string) => await b.admit(rt, { id, policy, tier: undefined, tokens: null });
  const code = (o: Awaited<ReturnType<typeof admit>>) => ('error' in o ? o.error.entry.code : 'admitted');

  it('once the store has said full, answers the 429 itself, for admissions too (embeddings), without asking the store', async () => {
    const store = new CountingStore();
    const b = new Budgets(store, createMetrics(), captureLogger().log, () => at);
    expect(b.knownFull(rt, policy)).toBeUndefined();
    expect([code(await admit(b, 'r1')), code(await admit(b, 'r2'))]).toEqual(['admitted', 'admitted']);
    const early = b.knownFull(rt, policy) as TiergateError;
    expect([early.entry.status, early.entry.code]).toEqual([429, 'requests_per_minute']);
    expect(early.extraHeaders).toContainEqual(['retry-after', '30']);
    expect(code(await admit(b, 'r3'))).toBe('requests_per_minute');
    expect(store.admits).toBe(2); // the third never reached the store
    expect(b.knownFull(rt, rt.tenants.policyFor('globex'))).toBeUndefined(); // another tenant's window
  });

  it('does not remember what the degraded mode refused: one replica’s share says nothing of the shared window', async () => {
    const store = new CountingStore();
    store.down = true;
    const b = new Budgets(store, createMetrics(), captureLogger().log, () => at);
    expect(code(await admit(b, 'd1'))).toBe('admitted'); // the local limiter, fail-open
    expect(code(await admit(b, 'd2'))).toBe('admitted');
    expect(code(await admit(b, 'd3'))).toBe('requests_per_minute'); // refused by the local share
    expect(b.knownFull(rt, policy)).toBeUndefined();
  });

  it('the memory store is the shared store of one instance: its word is remembered', async () => {
    const b = new Budgets(new MemoryBudgetStore(), createMetrics(), captureLogger().log, () => at);
    const memRt = runtimeFor({ tenants: { acme: { requestsPerMinute: 1 } } });
    const p = memRt.tenants.policyFor('acme');
    expect('admitted' in (await b.admit(memRt, { id: 'm1', policy: p, tier: undefined, tokens: null }))).toBe(true);
    expect(b.knownFull(memRt, p)?.entry.code).toBe('requests_per_minute');
  });
});
