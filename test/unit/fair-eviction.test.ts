// The in-process stores share their bounds fairly between tenants (src/stores/memory/owners.ts): past a bound,
// entries go from the tenant holding the most, its least recently used first. Before, the cache and affinity
// stores dropped the least recently used entry of anyone, and the vector index drained the first partition ever
// made, so one tenant storing many one-off questions pushed every other tenant's entries out.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CachedAnswer } from '../../src/cache/answer.js';
import { normalise } from '../../src/cache/embedders/embedder.js';
import { questionFeatures } from '../../src/cache/guards.js';
import { MemoryCacheStore } from '../../src/stores/memory/cache-store.js';
import { MemoryTtlStore } from '../../src/stores/memory/ttl-store.js';
import { MemoryVectorIndex } from '../../src/stores/memory/vector-index.js';
import { fuzzRuns, fuzzTimeout } from '../helpers/generated.js';

const HOUR = 3_600_000;
const answer = (content: string): CachedAnswer => ({
  model: 'weak-model',
  systemFingerprint: null,
  choices: [{ index: 0, content, refusal: null, toolCalls: [], finishReason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
});
const kept = <V>(s: { get(k: string): V | undefined }, keys: string[]) => keys.filter((k) => s.get(k) !== undefined);
const keys = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('memory cache store: one tenant cannot push the others out', () => {
  it('by count: a tenant storing 1,000 answers leaves another tenant its 10', () => {
    const s = new MemoryCacheStore(100, 64 * 1024 * 1024);
    for (const k of keys('acme-', 10)) s.set(k, { answer: answer(k), storedAt: 0 }, HOUR, 'acme');
    for (const k of keys('flood-', 1000)) s.set(k, { answer: answer(k), storedAt: 0 }, HOUR, 'globex');
    expect(kept(s, keys('acme-', 10))).toHaveLength(10);
    // The flooding tenant has the rest, its most recent.
    expect(kept(s, keys('flood-', 1000))).toEqual(keys('flood-', 1000).slice(-90));
    expect(s.size).toBe(100);
  });

  it('by bytes: a tenant storing long answers leaves another tenant its short ones', () => {
    const long = 'x'.repeat(10_000);
    const s = new MemoryCacheStore(1000, 100_000);
    for (const k of keys('acme-', 5)) s.set(k, { answer: answer(`short ${k}`), storedAt: 0 }, HOUR, 'acme');
    for (const k of keys('flood-', 50)) s.set(k, { answer: answer(long), storedAt: 0 }, HOUR, 'globex');
    expect(kept(s, keys('acme-', 5))).toHaveLength(5);
    expect(s.totalWeight).toBeLessThanOrEqual(100_000);
    expect(kept(s, keys('flood-', 50)).length).toBeGreaterThan(0);
  });

  it('a tenant that stopped storing keeps an equal share while two others go on', () => {
    const s = new MemoryCacheStore(90, 64 * 1024 * 1024);
    for (const k of keys('a', 40)) s.set(k, { answer: answer('x'), storedAt: 0 }, HOUR, 'a');
    for (let i = 0; i < 500; i++) for (const t of ['b', 'c']) s.set(`${t}${i}`, { answer: answer('x'), storedAt: 0 }, HOUR, t);
    expect(['a', 'b', 'c'].map((t) => kept(s, keys(t, 500)).length)).toEqual([30, 30, 30]);
  });

  it("a tenant holding more than another loses its own entries first, even when the other's is the least recently used", () => {
    const s = new MemoryCacheStore(4, 64 * 1024 * 1024);
    s.set('b0', { answer: answer('b0'), storedAt: 0 }, HOUR, 'b');
    for (const k of ['a0', 'a1', 'a2']) s.set(k, { answer: answer(k), storedAt: 0 }, HOUR, 'a');
    s.get('a0');
    s.set('b1', { answer: answer('b1'), storedAt: 0 }, HOUR, 'b');
    expect(kept(s, ['a0', 'a1', 'a2', 'b0', 'b1'])).toEqual(['a0', 'a2', 'b0', 'b1']);
  });

  it('among tenants holding alike, the least recently used entry goes, as in a plain LRU', () => {
    const s = new MemoryCacheStore(3, 64 * 1024 * 1024);
    for (const t of ['a', 'b', 'c']) s.set(`${t}0`, { answer: answer(t), storedAt: 0 }, HOUR, t);
    s.get('a0');
    s.set('d0', { answer: answer('d'), storedAt: 0 }, HOUR, 'd');
    expect(kept(s, ['a0', 'b0', 'c0', 'd0'])).toEqual(['a0', 'c0', 'd0']);
  });
});

describe('memory vector index: the bound on all partitions is shared fairly', () => {
  const v = normalise(Float32Array.from({ length: 16 }, (_, i) => (i === 0 ? 1 : 0.01)));
  const entry = (storeKey: string) => ({ id: storeKey, vector: v, features: questionFeatures('q'), storeKey });
  const found = (x: MemoryVectorIndex, tenant: string, partition: string) => x.search(tenant, partition, ['w:a'], v, 0.5, 100).map((m) => m.storeKey).sort();

  it("a tenant adding many questions takes its entries from itself once it holds the most, not from the first partition's tenant", () => {
    const x = new MemoryVectorIndex(Date.now, 6);
    x.add('acme', 'p', ['w:a'], entry('acme-0'), HOUR, 100);
    x.add('acme', 'p', ['w:a'], entry('acme-1'), HOUR, 100);
    for (let i = 0; i < 20; i++) x.add('globex', `q${i % 3}`, ['w:a'], entry(`globex-${i}`), HOUR, 100);
    expect(found(x, 'acme', 'p')).toEqual(['acme-0', 'acme-1']);
    // globex keeps its 4 newest, across its partitions.
    expect(['q0', 'q1', 'q2'].flatMap((p) => found(x, 'globex', p)).sort()).toEqual(['globex-16', 'globex-17', 'globex-18', 'globex-19']);
  });

  it('an entry stored again under its id replaces the old one, even when it was its partition and tenant\'s only one', () => {
    const x = new MemoryVectorIndex(Date.now, 2);
    x.add('acme', 'p', ['w:a'], entry('same'), HOUR, 100);
    x.add('acme', 'p', ['w:a'], { ...entry('same'), storeKey: 'again' }, HOUR, 100);
    x.add('globex', 'p', ['w:a'], entry('g'), HOUR, 100);
    expect(found(x, 'acme', 'p')).toEqual(['again']);
    expect(found(x, 'globex', 'p')).toEqual(['g']);
  });
});

// The rule written the plainest way, as the oracle: every entry with its owner, weight and last use, and each
// owner's last use (a store or a read of one of its entries). Past a bound, group by owner, take the largest
// (count or weight), among equals the owner used longest ago, and drop its least recently used entry.
class Reference {
  private entries: { key: string; owner: string; weight: number; used: number }[] = [];
  private readonly ownerUsed = new Map<string, number>();
  private uses = 0;
  constructor(
    private readonly maxEntries: number,
    private readonly maxWeight: number,
  ) {}
  get(key: string): boolean {
    const e = this.entries.find((x) => x.key === key);
    if (e) this.ownerUsed.set(e.owner, (e.used = ++this.uses));
    return e !== undefined;
  }
  set(key: string, owner: string, weight: number): void {
    this.remove((x) => x.key === key);
    if (weight > this.maxWeight) return;
    const used = ++this.uses;
    this.entries.push({ key, owner, weight, used });
    this.ownerUsed.set(owner, used);
    for (;;) {
      const byCount = this.entries.length > this.maxEntries;
      if (!byCount && this.total() <= this.maxWeight) return;
      const owners = [...this.ownerUsed].map(([o, ownerUsed]) => {
        const mine = this.entries.filter((x) => x.owner === o);
        return { o, ownerUsed, measure: byCount ? mine.length : mine.reduce((a, x) => a + x.weight, 0), lru: Math.min(...mine.map((x) => x.used)) };
      });
      owners.sort((a, b) => b.measure - a.measure || a.ownerUsed - b.ownerUsed);
      const from = owners[0]!;
      this.remove((x) => x.owner === from.o && x.used === from.lru);
    }
  }
  private remove(which: (x: Reference['entries'][number]) => boolean): void {
    const gone = this.entries.filter(which);
    this.entries = this.entries.filter((x) => !which(x));
    for (const g of gone) if (!this.entries.some((x) => x.owner === g.owner)) this.ownerUsed.delete(g.owner);
  }
  size(): number {
    return this.entries.length;
  }
  total(): number {
    return this.entries.reduce((a, x) => a + x.weight, 0);
  }
}

type Op = { op: 'set'; key: number; owner: number; weight: number } | { op: 'get'; key: number };
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('set' as const), key: fc.nat(30), owner: fc.nat(3), weight: fc.oneof(fc.constantFrom(5, 10), fc.integer({ min: 1, max: 40 })) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('get' as const), key: fc.nat(30) }) },
);

describe('the memory TTL store against the rule written plainly (fast-check)', () => {
  it(
    'every read finds what the reference finds, and size and weight agree after every step',
    () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 12 }), fc.oneof(fc.integer({ min: 20, max: 200 }), fc.constant(10_000)), fc.array(op, { maxLength: 120, size: 'max' }), (maxEntries, maxWeight, ops) => {
          const store = new MemoryTtlStore<number>(maxEntries, Date.now, { max: maxWeight, weigh: (_k, w) => w });
          const ref = new Reference(maxEntries, maxWeight);
          for (const o of ops) {
            if (o.op === 'set') {
              store.set(`k${o.key}`, o.weight, HOUR, `t${o.owner}`);
              ref.set(`k${o.key}`, `t${o.owner}`, o.weight);
            } else {
              expect(store.get(`k${o.key}`) !== undefined).toBe(ref.get(`k${o.key}`));
            }
            expect([store.size, store.totalWeight]).toEqual([ref.size(), ref.total()]);
          }
        }),
        { numRuns: fuzzRuns(300) },
      );
    },
    fuzzTimeout(300, 20_000),
  );
});

// The memory vector index's two bounds, written plainly: each partition keeps its newest maxEntries (as of the
// latest add, whose cap a reload may have lowered); past the
// bound on all partitions, the tenant holding the most gives up its oldest entry (among equals, the tenant that
// added longest ago). An id added again replaces its entry.
class IndexReference {
  private entries: { tenant: string; partition: string; id: string; added: number }[] = [];
  private readonly lastAdd = new Map<string, number>();
  private adds = 0;
  constructor(private readonly maxTotal: number) {}
  add(tenant: string, partition: string, id: string, maxEntries: number): void {
    this.drop((e) => e.tenant === tenant && e.partition === partition && e.id === id);
    const added = ++this.adds;
    this.entries.push({ tenant, partition, id, added });
    this.lastAdd.set(tenant, added);
    // Down to the cap, which a reload may have lowered: oldest first.
    const mine = this.entries.filter((e) => e.tenant === tenant && e.partition === partition);
    const over = mine.slice(0, Math.max(0, mine.length - maxEntries));
    this.drop((e) => over.includes(e));
    while (this.entries.length > this.maxTotal) {
      const tenants = [...this.lastAdd].map(([t, last]) => ({ t, last, n: this.entries.filter((e) => e.tenant === t).length }));
      tenants.sort((a, b) => b.n - a.n || a.last - b.last);
      const oldest = this.entries.find((e) => e.tenant === tenants[0]!.t);
      this.drop((e) => e === oldest);
    }
  }
  ids(tenant: string, partition: string): string[] {
    return this.entries.filter((e) => e.tenant === tenant && e.partition === partition).map((e) => e.id).sort();
  }
  private drop(which: (e: IndexReference['entries'][number]) => boolean): void {
    const gone = this.entries.filter(which);
    this.entries = this.entries.filter((e) => !which(e));
    for (const g of gone) if (!this.entries.some((e) => e.tenant === g.tenant)) this.lastAdd.delete(g.tenant);
  }
}

describe('the memory vector index against its bounds written plainly (fast-check)', () => {
  const v = normalise(Float32Array.from({ length: 8 }, (_, i) => (i === 0 ? 1 : 0.01)));
  const add = fc.record({ tenant: fc.nat(2), partition: fc.nat(1), id: fc.nat(12), maxEntries: fc.integer({ min: 1, max: 6 }) });
  it(
    'every partition holds what the reference holds after every add',
    () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 10 }), fc.array(add, { maxLength: 80, size: 'max' }), (maxTotal, adds) => {
          const x = new MemoryVectorIndex(Date.now, maxTotal);
          const ref = new IndexReference(maxTotal);
          for (const a of adds) {
            const [tenant, partition, id] = [`t${a.tenant}`, `p${a.partition}`, `e${a.id}`];
            x.add(tenant, partition, ['w:a'], { id, vector: v, features: questionFeatures('q'), storeKey: id }, HOUR, a.maxEntries);
            ref.add(tenant, partition, id, a.maxEntries);
            for (const t of ['t0', 't1', 't2']) {
              for (const p of ['p0', 'p1']) expect(x.search(t, p, ['w:a'], v, 0.5, 100).map((m) => m.storeKey).sort()).toEqual(ref.ids(t, p));
            }
          }
        }),
        { numRuns: fuzzRuns(300) },
      );
    },
    fuzzTimeout(300, 20_000),
  );
});
