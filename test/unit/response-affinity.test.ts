// The response affinity service over stores that misbehave: a slow store is abandoned at the deadline, a failing
// one opens the breaker (no more calls until the cooldown), and every call is counted once by what it came to.
import { describe, expect, it } from 'vitest';
import { ResponseAffinity, type AffinityConfig } from '../../src/affinity/response-affinity.js';
import { configSchema } from '../../src/config/schema.js';
import type { AffinityStore } from '../../src/stores/affinity-store.js';
import { MemoryAffinityStore } from '../../src/stores/memory/affinity-store.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { captureLogger } from '../helpers/tiergate.js';

const cfg = (extra: Partial<AffinityConfig> = {}): AffinityConfig => ({ ...configSchema.parse({ routing: { affinity: { store: 'memory' } } }).routing.affinity, ...extra });

function service(store: AffinityStore, now = () => 0) {
  const metrics = createMetrics();
  const { log, logs } = captureLogger();
  const counts = async () => Object.fromEntries((await metrics.responseAffinity.get()).values.map((v) => [`${String(v.labels.op)}:${String(v.labels.result)}`, v.value]));
  return { affinity: new ResponseAffinity(store, 'p:', metrics, log, now), counts, logs };
}

class FakeStore implements AffinityStore {
  readonly kind = 'redis';
  calls = 0;
  constructor(private readonly behave: 'hang' | 'throw' | 'reject') {}
  get(): Promise<string | undefined> {
    this.calls++;
    if (this.behave === 'throw') throw new Error('not connected');
    return this.behave === 'hang' ? new Promise(() => undefined) : Promise.reject(new Error('boom'));
  }
  set(): Promise<number> {
    this.calls++;
    if (this.behave === 'throw') throw new Error('not connected');
    return this.behave === 'hang' ? new Promise(() => undefined) : Promise.reject(new Error('boom'));
  }
  async close(): Promise<void> {}
}

describe('response affinity', () => {
  it('remembers per tenant: another tenant asking for the same id finds nothing', async () => {
    const { affinity, counts } = service(new MemoryAffinityStore(10));
    affinity.remember('acme', 'resp_1', 'strong', cfg());
    expect(affinity.lookup('acme', 'resp_1', cfg())).toBe('strong');
    expect(affinity.lookup('globex', 'resp_1', cfg())).toBeUndefined();
    expect(await counts()).toEqual({ 'remember:stored': 1, 'lookup:hit': 1, 'lookup:miss': 1 });
  });

  it("a tenant remembering many responses in a full memory store takes out its own, not another tenant's", () => {
    const { affinity } = service(new MemoryAffinityStore(4));
    affinity.remember('acme', 'resp_a', 'strong', cfg());
    for (let i = 0; i < 10; i++) affinity.remember('globex', `resp_${i}`, 'weak', cfg());
    expect(affinity.lookup('acme', 'resp_a', cfg())).toBe('strong');
    expect([0, 6, 7, 8, 9].map((i) => affinity.lookup('globex', `resp_${i}`, cfg()))).toEqual([undefined, undefined, 'weak', 'weak', 'weak']);
  });

  it('an id longer than any real one is neither looked up nor stored', async () => {
    const store = new MemoryAffinityStore(10);
    const { affinity, counts } = service(store);
    const long = `resp_${'x'.repeat(300)}`;
    affinity.remember('acme', long, 'strong', cfg());
    expect(affinity.lookup('acme', long, cfg())).toBeUndefined();
    expect(store.size).toBe(0);
    expect(await counts()).toEqual({ 'remember:failed': 1, 'lookup:miss': 1 });
  });

  it('a store that does not answer is abandoned at the deadline, counted once', async () => {
    const { affinity, counts } = service(new FakeStore('hang'));
    // Both settle although the store never answers (the test would time out otherwise).
    expect(await affinity.lookup('acme', 'resp_1', cfg({ deadlineMs: 40 }))).toBeUndefined();
    await affinity.remember('acme', 'resp_1', 'strong', cfg({ deadlineMs: 40 }));
    expect(await counts()).toEqual({ 'lookup:deadline': 1, 'remember:deadline': 1 });
  });

  it('a failing store opens the breaker: no more calls until the cooldown, one throttled warning', async () => {
    let t = 0;
    const store = new FakeStore('reject');
    const { affinity, counts, logs } = service(store, () => t);
    const c = cfg({ breaker: { failures: 2, cooldownMs: 1000 } });
    for (let i = 0; i < 5; i++) expect(await affinity.lookup('acme', `resp_${i}`, c)).toBeUndefined();
    expect(store.calls).toBe(2);
    expect(await counts()).toEqual({ 'lookup:failed': 5 });
    expect(logs.filter((l) => l.includes('affinity.store_failed'))).toHaveLength(1);
    t += 1001; // a trial call after the cooldown
    await affinity.lookup('acme', 'resp_9', c);
    expect(store.calls).toBe(3);
  });

  it('a store that throws at once (not connected) is a failure, not an exception', async () => {
    const { affinity, counts } = service(new FakeStore('throw'));
    expect(affinity.lookup('acme', 'resp_1', cfg())).toBeUndefined();
    expect(affinity.remember('acme', 'resp_1', 'weak', cfg())).toBeUndefined();
    expect(await counts()).toEqual({ 'lookup:failed': 1, 'remember:failed': 1 });
  });

  it('is off without a store, or when the live config says off', () => {
    expect(service(new MemoryAffinityStore(1)).affinity.on(cfg({ store: 'off' }))).toBe(false);
    expect(new ResponseAffinity(undefined, 'p:', createMetrics(), captureLogger().log).on(cfg())).toBe(false);
    expect(service(new MemoryAffinityStore(1)).affinity.on(cfg())).toBe(true);
  });
});
