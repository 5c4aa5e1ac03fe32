// Reconciles the budget store refused are kept and retried. While the store is still away, each retry tick must
// cost one call, not one per kept reconcile; once it answers, every kept reconcile goes through. What is still
// unsent at shutdown waits in a file for the next process on the same directory.
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Budgets, type Admission, type AdmitOutcome } from '../../src/budget/budgets.js';
import { KEPT_RECONCILES_FILE, type KeptReconcile } from '../../src/budget/kept-reconciles.js';
import { ReconcileQueue } from '../../src/budget/reconcile-queue.js';
import type { AdmitRequest, AdmitResult, Bucket, BudgetStore } from '../../src/stores/budget-store.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { captureLogger, logEvents, runtimeFor } from '../helpers/tiergate.js';

/** A Redis-kind store that refuses every call while `down`, and counts its reconcile calls. */
class FlakyStore implements BudgetStore {
  readonly kind = 'redis';
  down = false;
  /** How long a call takes to answer (or fail). */
  delayMs = 0;
  calls = 0;
  done: string[] = [];
  /** Per id, the tokens each reconcile that went through counted. */
  counted = new Map<string, number[]>();
  /** How long an admission takes. */
  admitDelayMs = 0;
  /** Closed: every call fails, as on a Redis connection that was quit. */
  closed = false;
  async admit(req: AdmitRequest): Promise<AdmitResult> {
    if (this.admitDelayMs > 0) await new Promise((r) => setTimeout(r, this.admitDelayMs));
    return { admitted: true, counted: req.buckets.map(() => 0), denied: undefined, budgetWarning: 'none' };
  }
  async reconcile(id: string, _buckets: readonly Bucket[], tokens: number): Promise<void> {
    if (this.closed) throw new Error('connection closed');
    this.calls++;
    const down = this.down;
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (down) throw new Error('store away');
    this.done.push(id);
    this.counted.set(id, [...(this.counted.get(id) ?? []), tokens]);
  }
  async peek(): Promise<number[]> {
    return [];
  }
  async renew(): Promise<void> {}
  async close(): Promise<void> {
    this.closed = true;
  }
}

const bucket: Bucket = { key: 'k', code: 'tokens_per_minute', unit: 'tokens', limit: 1000, resetAt: 0, expireAt: 0 };

afterEach(() => vi.useRealTimers());

const admission = (id: string, store: BudgetStore): Admission => ({ id, tenant: 't', store, tokenBuckets: [bucket], slot: undefined, reserved: 10, reservedMicroUsd: 0, responseHeaders: [] });
const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `r${from + i}`);

describe('kept reconciles', () => {
  it('are probed one at a time while the store is away, and all sent once it answers', async () => {
    vi.useFakeTimers();
    const store = new FlakyStore();
    const budgets = new Budgets(store, createMetrics(), captureLogger().log);
    store.down = true;
    for (let i = 0; i < 100; i++) budgets.reconcile({ id: `r${i}`, tenant: 't', store, tokenBuckets: [bucket], slot: undefined, reserved: 10, reservedMicroUsd: 0, responseHeaders: [] } as Admission, 5, 0);
    await vi.advanceTimersByTimeAsync(0);
    expect(store.calls).toBe(100); // each tried once, as the request ended
    await vi.advanceTimersByTimeAsync(5_000); // ten ticks with the store away
    expect(store.calls - 100).toBeLessThanOrEqual(10); // before: 100 calls a tick, 1,000 in all
    store.down = false;
    await vi.advanceTimersByTimeAsync(1_000);
    expect([...store.done].sort()).toEqual(Array.from({ length: 100 }, (_, i) => `r${i}`).sort());
    await budgets.close();
  });

  it('a shutdown with the store still away leaves them, and reconciles still on their way, to the next process on the directory', async () => {
    // The ledger makes its spool directory only when it first spools: it may not be there yet.
    const dir = join(mkdtempSync(join(tmpdir(), 'tiergate-kept-')), 'spool');
    const store = new FlakyStore();
    const { log, logs } = captureLogger();
    const budgets = new Budgets(store, createMetrics(), log, Date.now, dir);
    store.down = true;
    for (const id of ids(5)) budgets.reconcile(admission(id, store), 7, 0);
    // Two more are on their way when the shutdown begins: they fail only after it has started.
    store.delayMs = 50;
    for (const id of ids(2, 5)) budgets.reconcile(admission(id, store), 7, 0);
    await budgets.close();
    expect(store.done).toEqual([]);
    expect(readFileSync(join(dir, KEPT_RECONCILES_FILE), 'utf8').trim().split('\n')).toHaveLength(7);
    expect(logs.join('')).toContain('budget.kept_reconciles_saved');

    // The next process on the directory takes the file, and sends each reconcile once the store answers.
    vi.useFakeTimers();
    const next = new FlakyStore();
    next.down = true;
    const after = new Budgets(next, createMetrics(), captureLogger().log, Date.now, dir);
    expect(existsSync(join(dir, KEPT_RECONCILES_FILE))).toBe(false);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(next.done).toEqual([]);
    next.down = false;
    await vi.advanceTimersByTimeAsync(1_000);
    expect([...next.done].sort()).toEqual(ids(7).sort());
    expect(new Set([...next.counted.values()].flat())).toEqual(new Set([7])); // what each request really used
    await after.close();
    expect(existsSync(join(dir, KEPT_RECONCILES_FILE))).toBe(false); // nothing left to keep
  });

  it('a shutdown once the store is back sends them then, and leaves nothing behind', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'tiergate-kept-')), 'spool-not-made-yet');
    const store = new FlakyStore();
    const budgets = new Budgets(store, createMetrics(), captureLogger().log, Date.now, dir);
    store.down = true;
    for (const id of ids(3)) budgets.reconcile(admission(id, store), 7, 0);
    await new Promise((r) => setTimeout(r, 0));
    store.down = false;
    await budgets.close();
    expect([...store.done].sort()).toEqual(ids(3));
    expect(existsSync(join(dir, KEPT_RECONCILES_FILE))).toBe(false);
  });

  it('a file a stopped process had claimed but not read is taken too, and a claimed file is never taken twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-kept-'));
    const row = (id: string) => `${JSON.stringify({ id, buckets: [bucket], tokens: 3, microUsd: 0 })}\n`;
    appendFileSync(join(dir, `${KEPT_RECONCILES_FILE}.4242.taking`), row('left-claimed'));
    appendFileSync(join(dir, KEPT_RECONCILES_FILE), row('left'));
    const store = new FlakyStore();
    const budgets = new Budgets(store, createMetrics(), captureLogger().log, Date.now, dir);
    const again = new FlakyStore();
    const second = new Budgets(again, createMetrics(), captureLogger().log, Date.now, dir);
    await budgets.close();
    await second.close();
    expect([...store.done].sort()).toEqual(['left', 'left-claimed']);
    expect(again.done).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a line cut short or garbled is skipped and logged; the rest are sent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-kept-'));
    const good = { id: 'ok', buckets: [bucket], tokens: 3, microUsd: 0 };
    appendFileSync(join(dir, KEPT_RECONCILES_FILE), `${JSON.stringify(good)}\n{"id":"torn","buck\n${JSON.stringify({ ...good, id: 'neg', tokens: -1 })}\n`);
    const store = new FlakyStore();
    const { log, logs } = captureLogger();
    const budgets = new Budgets(store, createMetrics(), log, Date.now, dir);
    await budgets.close();
    expect(store.done).toEqual(['ok']);
    expect(logs.find((l) => l.includes('budget.kept_reconciles_skipped'))).toContain('"lines":2');
  });

  it('with nowhere to keep them, a shutdown logs how many were lost', async () => {
    const store = new FlakyStore();
    const { log, logs } = captureLogger();
    // A directory that cannot be made: its parent is a file.
    const parent = join(mkdtempSync(join(tmpdir(), 'tiergate-kept-')), 'a-file');
    appendFileSync(parent, '');
    const budgets = new Budgets(store, createMetrics(), log, Date.now, join(parent, 'spool'));
    store.down = true;
    for (const id of ids(4)) budgets.reconcile(admission(id, store), 7, 0);
    await budgets.close();
    expect(logs.find((l) => l.includes('budget.reconciles_unsent'))).toContain('"reconciles":4');
  });

  it('a shutdown waits for an admission still running, and sends the release a cut-off stream asks for when it lands', async () => {
    const store = new FlakyStore();
    store.admitDelayMs = 50;
    const budgets = new Budgets(store, createMetrics(), captureLogger().log);
    const rt = runtimeFor({ tenants: { '*': { tokensPerMinute: 10_000 } } });
    const admitted = budgets.admit(rt, { id: 'cut', policy: rt.tenants.policyFor('t'), tier: 'weak', tokens: 100 }) as Promise<AdmitOutcome>;
    // What AdmissionWait does for a stream that ended while its admission ran: a release once it lands, a few
    // reactions down the request path.
    void admitted
      .then((o) => o)
      .then((o) => o)
      .then((o) => {
        if ('admitted' in o && o.admitted) budgets.reconcile(o.admitted, 0, 0);
      });
    await budgets.close();
    // Sent before the store closed: without it the reservation would hold the tenant's tokens until it expired.
    expect(store.done).toEqual(['cut']);
  });
});

describe('ReconcileQueue', () => {
  const kept = (id: string): KeptReconcile => ({ id, buckets: [bucket], tokens: 7, microUsd: 0 });
  /** A queue over a store that is away, with nowhere to keep what a shutdown leaves (so it logs the count). */
  function queue() {
    const store = new FlakyStore();
    store.down = true;
    const { log, logs } = captureLogger();
    return { store, logs, q: new ReconcileQueue(store, Date.now, log) };
  }

  it('a store call that throws before it returns a promise is a refusal like any other: the caller gets a rejection', async () => {
    const store = new FlakyStore();
    store.reconcile = () => {
      throw new Error('not connected');
    };
    const q = new ReconcileQueue(store, Date.now, captureLogger().log);
    let sent: Promise<void> | undefined;
    expect(() => (sent = q.send(kept('a')))).not.toThrow();
    await expect(sent).rejects.toThrow('not connected');
    await q.close();
  });

  it('what a retry ahead of an admission could not send is kept for the next, and sent at close once the store is back', async () => {
    const { store, q } = queue();
    for (const id of ['a', 'b']) q.keep(kept(id));
    q.retryAll();
    await new Promise((r) => setTimeout(r, 10));
    expect(store.calls).toBe(2);
    store.down = false;
    await q.close();
    expect(store.done.sort()).toEqual(['a', 'b']);
  });

  it('a retry tick with nothing left to send (an admission sent it first) sends nothing and keeps nothing', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { store, q, logs } = queue();
    q.keep(kept('a')); // the timer is set
    store.down = false;
    q.retryAll(); // an admission sends it first
    await vi.advanceTimersByTimeAsync(0);
    expect(store.done).toEqual(['a']);
    await vi.advanceTimersByTimeAsync(1_000); // the tick finds nothing
    expect(store.calls).toBe(1);
    store.down = true; // whatever close() tried now would be refused and logged as unsent
    await q.close();
    expect(store.calls).toBe(1);
    expect(logEvents(logs, 'budget.reconciles_unsent')).toEqual([]);
    expect(logEvents(logs, 'budget.kept_reconciles_dropped')).toEqual([]); // none was
  });

  it('a reconcile refused while a shutdown waits leaves no retry behind it: the store is not called once close() is done', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { store, q, logs } = queue();
    store.delayMs = 50; // still on its way when the shutdown begins
    q.send(kept('late')).catch(() => q.keep(kept('late')));
    let closed = false;
    void q.close().then(() => (closed = true));
    while (!closed) await vi.advanceTimersByTimeAsync(10);
    expect(logEvents(logs, 'budget.reconciles_unsent')).toMatchObject([{ reconciles: 1 }]);
    expect(vi.getTimerCount()).toBe(0);
    const calls = store.calls;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(store.calls).toBe(calls);
  });

  it('keeps 10,000; one refused past that is dropped (its reservation expires on its own), said once, and counted at close', async () => {
    const { store, q, logs } = queue();
    for (let i = 0; i < 10_003; i++) q.keep(kept(`r${i}`));
    expect(logEvents(logs, 'budget.kept_reconciles_dropped')).toEqual([expect.objectContaining({ level: 'warn', max: 10_000 })]);
    store.down = false;
    await q.close();
    expect(store.done).toHaveLength(10_000);
    expect(store.done.at(-1)).toBe('r9999');
    expect(logEvents(logs, 'budget.kept_reconciles_dropped').at(-1)).toMatchObject({ reconciles: 3 });
  });
});
