// The response affinity service over stores that misbehave: a slow store is abandoned at the deadline, a failing
// one opens the breaker (no more calls until the cooldown), and every call is counted once by what it came to.
import { describe, expect, it } from 'vitest';
import { createAffinityStore, isolationRefusal, sealedItemId, ResponseAffinity, type AffinityConfig, type Holder, type IdUse } from '../../src/affinity/response-affinity.js';
import { configSchema } from '../../src/config/schema.js';
import type { AffinityStore } from '../../src/stores/affinity-store.js';
import { MemoryAffinityStore } from '../../src/stores/memory/affinity-store.js';
import { RedisAffinityStore } from '../../src/stores/redis/affinity-store.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { captureLogger } from '../helpers/tiergate.js';

/** The tier a lookup found for the caller's own response (undefined: not its own, or not known). */
function tierOf(h: Holder | Promise<Holder>): string | undefined | Promise<string | undefined> {
  const tier = (x: Holder) => (x.kind === 'own' ? x.tier : undefined);
  return h instanceof Promise ? h.then(tier) : tier(h);
}

const cfg = (extra: Partial<AffinityConfig> = {}): AffinityConfig => ({ ...configSchema.parse({ routing: { affinity: { store: 'memory' } } }).routing.affinity, ...extra });

function service(store: AffinityStore, now = () => 0) {
  const metrics = createMetrics();
  const { log, logs } = captureLogger();
  const counts = async () => Object.fromEntries((await metrics.responseAffinity.get()).values.map((v) => [`${String(v.labels.op)}:${String(v.labels.result)}`, v.value]));
  return { affinity: new ResponseAffinity(store, 'p:', metrics, log, now), counts, logs, metrics };
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
  it('remembers per tenant: another tenant asking for the same id finds nothing, and is told whose it is', async () => {
    const { affinity, counts } = service(new MemoryAffinityStore(10));
    affinity.remember('acme', 'resp_1', 'strong', cfg());
    expect(tierOf(affinity.holder('acme', 'resp_1', cfg()))).toBe('strong');
    expect(tierOf(affinity.holder('globex', 'resp_1', cfg()))).toBeUndefined();
    expect(affinity.holder('globex', 'resp_1', cfg())).toEqual({ kind: 'foreign', owner: 'acme' });
    expect(affinity.holder('globex', 'resp_never', cfg())).toEqual({ kind: 'unknown' });
    // The owner record is read only after a miss of the tenant's own key: one read for the common case.
    expect(await counts()).toEqual({ 'remember:stored': 1, 'owner_remember:stored': 1, 'lookup:hit': 1, 'lookup:miss': 3, 'owner_lookup:hit': 2, 'owner_lookup:miss': 1 });
  });

  it("records what a response's conversation came to in a key of its own, the tenant's alone", async () => {
    const store = new MemoryAffinityStore(10);
    const { affinity, counts } = service(store);
    affinity.remember('acme', 'resp_1', 'strong', cfg());
    expect(affinity.contextOf('acme', 'response', 'resp_1', cfg())).toBeUndefined();
    affinity.recordContext('acme', 'response', 'resp_1', 8000, cfg());
    expect(affinity.contextOf('acme', 'response', 'resp_1', cfg())).toBe(8000);
    // The tier's record is as a version without counts wrote and reads it.
    expect(store.get('p:{t:acme}:resp_1')).toBe('strong');
    expect(store.get('p:context:{t:acme}:resp_1')).toBe('8000');
    expect(affinity.holder('acme', 'resp_1', cfg())).toEqual({ kind: 'own', tier: 'strong' });
    // A conversation's count is apart from a response's, whatever the ids.
    affinity.recordContext('acme', 'conversation', 'resp_1', 5, cfg());
    expect([affinity.contextOf('acme', 'conversation', 'resp_1', cfg()), affinity.contextOf('acme', 'response', 'resp_1', cfg())]).toEqual([5, 8000]);
    expect(store.get('p:context:conversation:{t:acme}:resp_1')).toBe('5');
    // Another tenant holding the id finds no count; 0 is a count.
    expect(affinity.contextOf('globex', 'response', 'resp_1', cfg())).toBeUndefined();
    affinity.recordContext('acme', 'response', 'resp_2', 0, cfg());
    expect(affinity.contextOf('acme', 'response', 'resp_2', cfg())).toBe(0);
    // A count that is not one (written by hand, or damaged) is no count.
    for (const value of ['-1', '1.5', 'x', '', ' 12', '1e3', '9999999999999999999']) {
      store.set('p:context:{t:acme}:resp_3', value, 60_000, 'acme');
      expect(affinity.contextOf('acme', 'response', 'resp_3', cfg()), value).toBeUndefined();
    }
    expect(await counts()).toMatchObject({ 'context_remember:stored': 3, 'context_lookup:hit': 11, 'context_lookup:miss': 2 });
  });

  it('isolation off reads no owner record; the owner record outliving the tier key is still the tenant\'s own', async () => {
    const store = new MemoryAffinityStore(10);
    const { affinity, counts } = service(store);
    affinity.remember('acme', 'resp_1', 'strong', cfg());
    expect(affinity.holder('globex', 'resp_1', cfg({ isolation: 'off' }))).toEqual({ kind: 'unknown' });
    expect(await counts()).toEqual({ 'remember:stored': 1, 'owner_remember:stored': 1, 'lookup:miss': 1 });
    // Only the owner record left (the tier key evicted or expired first): its own, on a tier no longer known.
    store.set('p:owner:resp_2', 'acme', 60_000, 'acme');
    expect(affinity.holder('acme', 'resp_2', cfg())).toEqual({ kind: 'own', tier: undefined });
  });

  it('isolation refuses what each mode says, and says only "not found"', () => {
    const { log, logs } = captureLogger();
    const own = { kind: 'own', tier: 'weak' } as const;
    const foreign = { kind: 'foreign', owner: 'acme' } as const;
    const unknown = { kind: 'unknown' } as const;
    const unavailable = { kind: 'unavailable' } as const;
    const code = (h: Holder, isolation: AffinityConfig['isolation'], use: IdUse) => {
      const e = isolationRefusal(h, cfg({ isolation }), 'x_1', use, log);
      return e && [e.entry.status, e.entry.code, e.param, e.message];
    };
    const table = (['off', 'known', 'strict'] as const).map((m) => [own, foreign, unknown, unavailable].map((h) => code(h, m, 'continuation')?.[1] ?? 'pass'));
    expect(table).toEqual([
      ['pass', 'pass', 'pass', 'pass'],
      ['pass', 'previous_response_not_found', 'pass', 'pass'],
      ['pass', 'previous_response_not_found', 'previous_response_not_found', 'dependency_unavailable'],
    ]);
    expect(code(foreign, 'known', 'continuation')).toEqual([400, 'previous_response_not_found', 'previous_response_id', "Previous response with id 'x_1' not found."]);
    expect(code(foreign, 'known', 'response')).toEqual([404, 'response_not_found', null, "Response with id 'x_1' not found."]);
    expect(code(foreign, 'known', 'conversation_turn')).toEqual([404, 'conversation_not_found', 'conversation', "Conversation with id 'x_1' not found."]);
    expect(code(foreign, 'known', 'conversation')).toEqual([404, 'conversation_not_found', null, "Conversation with id 'x_1' not found."]);
    // A sealed item: what OpenAI answers for content it cannot read, without tiergate's digest.
    expect(code(foreign, 'known', 'sealed')).toEqual([400, 'invalid_encrypted_content', null, 'The encrypted content of an item in input could not be verified.']);
    expect(code(unavailable, 'strict', 'conversation_turn')).toEqual([503, 'dependency_unavailable', 'conversation', 'The gateway cannot check this id now (its affinity store is unavailable); retry shortly.']);
    // The operator learns whose it was; the caller does not.
    expect(logs.filter((l) => l.includes('affinity.foreign_id') && l.includes('"owner":"acme"'))).toHaveLength(7);
  });

  it('a sealed item is recorded under a digest of its content: fixed length, the same for the same content, apart from response ids', () => {
    const a = sealedItemId('gAAAA' + 'x'.repeat(10_000));
    expect(a).toMatch(/^sealed_[A-Za-z0-9_-]{22}$/);
    expect(sealedItemId('gAAAA' + 'x'.repeat(10_000))).toBe(a);
    expect(sealedItemId('gAAAA' + 'x'.repeat(9_999) + 'y')).not.toBe(a);
  });

  it('a conversation has an owner record of its own, apart from a response with the same id', () => {
    const { affinity } = service(new MemoryAffinityStore(10));
    affinity.claim('acme', 'conversation', 'same_1', cfg());
    expect(affinity.ownerOf('acme', 'conversation', 'same_1', cfg())).toEqual({ kind: 'own', tier: undefined });
    expect(affinity.ownerOf('globex', 'conversation', 'same_1', cfg())).toEqual({ kind: 'foreign', owner: 'acme' });
    expect(affinity.holder('globex', 'same_1', cfg())).toEqual({ kind: 'unknown' });
  });

  it("a tenant remembering many responses in a full memory store takes out its own, not another tenant's", () => {
    // Each response takes two entries (its tier, and who stored it): room for acme's one and globex's last three.
    const { affinity } = service(new MemoryAffinityStore(8));
    affinity.remember('acme', 'resp_a', 'strong', cfg());
    for (let i = 0; i < 10; i++) affinity.remember('globex', `resp_${i}`, 'weak', cfg());
    expect(tierOf(affinity.holder('acme', 'resp_a', cfg()))).toBe('strong');
    expect([0, 6, 7, 8, 9].map((i) => tierOf(affinity.holder('globex', `resp_${i}`, cfg())))).toEqual([undefined, undefined, 'weak', 'weak', 'weak']);
  });

  it('an id longer than any real one is neither looked up nor stored', async () => {
    const store = new MemoryAffinityStore(10);
    const { affinity, counts } = service(store);
    const long = `resp_${'x'.repeat(300)}`;
    affinity.remember('acme', long, 'strong', cfg());
    expect(tierOf(affinity.holder('acme', long, cfg()))).toBeUndefined();
    expect(store.size).toBe(0);
    expect(await counts()).toEqual({ 'remember:failed': 1, 'owner_remember:failed': 1, 'lookup:miss': 1, 'owner_lookup:miss': 1 });
  });

  it('an id of the longest length is looked up and stored like any other', async () => {
    const store = new MemoryAffinityStore(10);
    const { affinity } = service(store);
    const edge = `resp_${'x'.repeat(251)}`;
    expect(edge).toHaveLength(256);
    affinity.remember('acme', edge, 'strong', cfg());
    expect(tierOf(affinity.holder('acme', edge, cfg()))).toBe('strong');
  });

  it("an owner record the store cannot read is unavailable, never another tenant's: known passes it, strict answers 503", async () => {
    // The tenant's own key misses; the owner record's read fails.
    const mem = new MemoryAffinityStore(10);
    const ownerRecord = (key: string) => key.startsWith('p:owner:') || key.startsWith('p:conversation:');
    const store: AffinityStore = {
      kind: 'redis',
      get: (key) => (ownerRecord(key) ? Promise.reject(new Error('boom')) : mem.get(key)),
      set: (key, value, ttlMs, owner) => mem.set(key, value, ttlMs, owner),
      close: async () => undefined,
    };
    const { affinity } = service(store);
    expect(await affinity.holder('acme', 'resp_1', cfg())).toEqual({ kind: 'unavailable' });
    expect(await affinity.ownerOf('acme', 'conversation', 'conv_1', cfg())).toEqual({ kind: 'unavailable' });
    const { log } = captureLogger();
    expect(isolationRefusal({ kind: 'unavailable' }, cfg(), 'resp_1', 'continuation', log)).toBeUndefined();
    expect(isolationRefusal({ kind: 'unavailable' }, cfg({ isolation: 'strict' }), 'resp_1', 'continuation', log)?.entry.status).toBe(503);
  });

  it("a conversation's owner record is kept for ttlSeconds", () => {
    let t = 1_000_000;
    const { affinity } = service(new MemoryAffinityStore(10, () => t));
    affinity.claim('acme', 'conversation', 'conv_1', cfg({ ttlSeconds: 60 }));
    t += 59_000;
    expect(affinity.ownerOf('globex', 'conversation', 'conv_1', cfg())).toEqual({ kind: 'foreign', owner: 'acme' });
    t += 2_000;
    expect(affinity.ownerOf('globex', 'conversation', 'conv_1', cfg())).toEqual({ kind: 'unknown' });
  });

  it('close closes its store', async () => {
    let closed = 0;
    const store = new MemoryAffinityStore(1);
    store.close = async () => void closed++;
    await service(store).affinity.close();
    expect(closed).toBe(1);
  });

  it('the store the startup config names: memory, redis, or none', async () => {
    expect(createAffinityStore(cfg())).toBeInstanceOf(MemoryAffinityStore);
    expect(createAffinityStore(cfg({ store: 'off' }))).toBeUndefined();
    const redisCfg = configSchema.parse({ routing: { affinity: { store: 'redis', redis: { url: 'redis://127.0.0.1:1', connectTimeoutMs: 50 } } } }).routing.affinity;
    // A redis block left beside store: memory (switching back) is not used.
    expect(createAffinityStore({ ...redisCfg, store: 'memory' })).toBeInstanceOf(MemoryAffinityStore);
    const redis = createAffinityStore(redisCfg);
    expect(redis).toBeInstanceOf(RedisAffinityStore);
    await redis?.close();
  });

  it('a store that does not answer is abandoned at the deadline, counted once', async () => {
    const { affinity, counts } = service(new FakeStore('hang'));
    // Both settle although the store never answers (the test would time out otherwise).
    expect(await tierOf(affinity.holder('acme', 'resp_1', cfg({ deadlineMs: 40 })))).toBeUndefined();
    await affinity.remember('acme', 'resp_1', 'strong', cfg({ deadlineMs: 40 }));
    expect(await counts()).toEqual({ 'lookup:deadline': 1, 'remember:deadline': 1, 'owner_remember:deadline': 1 });
  });

  it('a failing store opens the breaker: no more calls until the cooldown, one throttled warning', async () => {
    let t = 0;
    const store = new FakeStore('reject');
    const { affinity, counts, logs, metrics } = service(store, () => t);
    const c = cfg({ breaker: { failures: 2, cooldownMs: 1000 } });
    for (let i = 0; i < 5; i++) expect(await tierOf(affinity.holder('acme', `resp_${i}`, c))).toBeUndefined();
    expect(store.calls).toBe(2);
    expect((await metrics.affinityStoreDegraded.get()).values.map((v) => v.value)).toEqual([1]); // the alert's gauge
    expect(await counts()).toEqual({ 'lookup:failed': 5 });
    expect(logs.filter((l) => l.includes('affinity.store_failed'))).toHaveLength(1);
    t += 1001; // a trial call after the cooldown
    await tierOf(affinity.holder('acme', 'resp_9', c));
    expect(store.calls).toBe(3);
  });

  it('a store that answers late is not taken for down: what it stored late routes the turns once it is fast again', async () => {
    // Unlike the exact cache's (a late lookup there is worth nothing, and an answer not stored costs only a later
    // hit), a late write here is what routes the conversation's later turns, so it must go on being sent.
    const memory = new MemoryAffinityStore(10);
    let delayMs = 60;
    const late = <T>(v: T) => new Promise<T>((r) => setTimeout(() => r(v), delayMs));
    const store: AffinityStore = { kind: 'redis', get: (k) => late(memory.get(k)), set: (k, v, ttl, t) => late(memory.set(k, v, ttl, t)), close: async () => undefined };
    const { affinity, counts, metrics } = service(store);
    const c = cfg({ deadlineMs: 40, breaker: { failures: 2, cooldownMs: 60_000 } });
    await affinity.remember('acme', 'resp_1', 'strong', c);
    for (const id of ['resp_2', 'resp_3', 'resp_4']) expect(await tierOf(affinity.holder('acme', id, c))).toBeUndefined();
    await new Promise((r) => setTimeout(r, 80));
    expect((await metrics.affinityStoreDegraded.get()).values.map((v) => v.value)).toEqual([0]);
    delayMs = 0;
    expect(await tierOf(affinity.holder('acme', 'resp_1', c))).toBe('strong');
    expect(await counts()).toMatchObject({ 'remember:deadline': 1, 'owner_remember:deadline': 1, 'lookup:deadline': 3, 'lookup:hit': 1 });
  });

  it('a store that throws at once (not connected) is a failure, not an exception', async () => {
    const { affinity, counts } = service(new FakeStore('throw'));
    expect(tierOf(affinity.holder('acme', 'resp_1', cfg()))).toBeUndefined();
    expect(affinity.remember('acme', 'resp_1', 'weak', cfg())).toBeUndefined();
    expect(await counts()).toEqual({ 'lookup:failed': 1, 'remember:failed': 1, 'owner_remember:failed': 1 });
  });

  it('is off without a store, or when the live config says off', () => {
    expect(service(new MemoryAffinityStore(1)).affinity.on(cfg({ store: 'off' }))).toBe(false);
    expect(new ResponseAffinity(undefined, 'p:', createMetrics(), captureLogger().log).on(cfg())).toBe(false);
    expect(service(new MemoryAffinityStore(1)).affinity.on(cfg())).toBe(true);
  });
});
