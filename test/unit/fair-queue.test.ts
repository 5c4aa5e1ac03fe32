// The local embedder's waiting questions shared between tenants (src/cache/embedders/fair-queue.ts): who gives
// up room in a full queue, who heads the next batch, and, generated, that no waiting tenant is passed over by
// more batches than there are other tenants, while one tenant alone gets the plain bounded queue it replaced.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { takeBatch } from '../../src/cache/embedders/batch-plan.js';
import { FairQueue, displacedBy, fairOrder } from '../../src/cache/embedders/fair-queue.js';

interface Q {
  id: number;
  owner: string;
  lengthClass: number;
}
let ids = 0;
const q = (owner: string, lengthClass = 0): Q => ({ id: ids++, owner, lengthClass });
const owners = (xs: readonly Q[]) => xs.map((x) => x.owner).join('');

describe('displacedBy', () => {
  it.each([
    ['a tenant holding none takes the newest of the one holding most', 'aaab', 'c', 2],
    ['so does one holding fewer by two or more', 'aaab', 'b', 2],
    ['the tenant holding most is refused', 'aaab', 'a', -1],
    ['a tenant holding one fewer is refused: it would then hold more than the other', 'aabb', 'b', -1],
    ['of tenants holding alike, the one that asked last gives up its newest', 'aabb', 'c', 3],
    ['one tenant alone is refused, as at a full queue before', 'aaaa', 'a', -1],
  ])('%s', (_name, queue, owner, at) => {
    expect(displacedBy([...queue].map((o) => q(o)), owner)).toBe(at);
  });
});

describe('fairOrder', () => {
  it('tenants take turns, the one served longest ago first (never served before any), each in its own order', () => {
    const queue = [...'aabcb'].map((o) => q(o));
    const ids = (o: string) => queue.filter((x) => x.owner === o).map((x) => x.id);
    const [a, b] = [ids('a'), ids('b')];
    fairOrder(queue, new Map([['a', 3], ['b', 1], ['c', 2]]));
    expect(owners(queue)).toBe('bcaba');
    expect([ids('a'), ids('b')]).toEqual([a, b]);
    // Turns are counted within a length class: b's long question goes before a's second long one.
    const mixed = [q('a', 3), q('a', 3), q('a', 0), q('b', 3)];
    fairOrder(mixed, new Map());
    expect(mixed.map((x) => `${x.owner}${x.lengthClass}`)).toEqual(['a3', 'a0', 'b3', 'a3']);
    fairOrder(queue, new Map([['a', 3], ['b', 1]]));
    expect(owners(queue)).toBe('cbaba');
    // Of tenants served alike, the one whose question has waited longest in the queue as it stands.
    fairOrder(queue, new Map());
    expect(owners(queue)).toBe('cbaba');
  });
});

describe('FairQueue', () => {
  // The map of turns forgets a tenant whose last turn is older than every waiting tenant's, so it stays as small as
  // what waits (empty when nothing does) however many tenants have asked. A forgotten tenant counts as never
  // served: it heads before a never-served tenant that queued after it, not behind it.
  it('a tenant served longer ago than every waiting one is forgotten, and then ranks as never served', () => {
    const fq = new FairQueue<Q>(8);
    const [a1, b1, b2, a2, c1] = [q('a'), q('b'), q('b'), q('a'), q('c')];
    for (const x of [a1, b1, b2]) fq.offer(x);
    expect(fq.take(1, takeBatch)).toEqual([a1]); // turn 1: a
    expect(fq.take(1, takeBatch)).toEqual([b1]); // turn 2: b; only b2 waits, so a's turn 1 orders nothing now
    fq.offer(a2);
    fq.offer(c1);
    // a and c both count as never served, and a's question stands first; b was served last.
    expect(fq.take(1, takeBatch)).toEqual([a2]);
    expect(fq.take(1, takeBatch)).toEqual([c1]);
    expect(fq.take(1, takeBatch)).toEqual([b2]);
  });

  it("a tenant flooding the queue does not keep another's questions out, or behind its backlog", () => {
    const fq = new FairQueue<Q>(8);
    const flood = Array.from({ length: 12 }, () => q('a'));
    const refused = flood.map((x) => fq.offer(x));
    expect(refused.slice(0, 8)).toEqual(Array(8).fill(undefined));
    expect(refused.slice(8)).toEqual(flood.slice(8)); // a alone: refused past the bound
    const b = [q('b'), q('b'), q('b'), q('b'), q('b')];
    // b takes room from a, newest first, while a would still hold at least as many as b: four each.
    expect(b.map((x) => fq.offer(x))).toEqual([flood[7], flood[6], flood[5], flood[4], b[4]]);
    expect(fq.length).toBe(8);
    // Each batch of 2 holds one of each, though b's are younger than all of a's.
    const one = (n = 2) => owners(fq.take(n, takeBatch));
    expect([one(), one(), one(), one()]).toEqual(['ab', 'ab', 'ab', 'ab']);
  });

  it('generated: the rules hold; a batch shares its places; no waiting tenant is passed over more often than there are other tenants; one tenant gets the plain queue', () => {
    const op = fc.oneof(
      fc.record({ owner: fc.constantFrom('a', 'b', 'c', 'd'), cls: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ take: fc.integer({ min: 1, max: 6 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.array(op, { maxLength: 300, size: 'max' }), (capacity, ops) => {
        const fq = new FairQueue<Q>(capacity);
        const waiting: Q[] = []; // what the queue should hold, in arrival order
        const held = (o: string) => waiting.filter((x) => x.owner === o).length;
        const passedOver = new Map<string, number>(); // waiting tenant → batches since one of its questions was taken
        for (const o of ops) {
          if ('owner' in o) {
            const x = q(o.owner, o.cls);
            const most = Math.max(0, ...['a', 'b', 'c', 'd'].map(held));
            const mine = held(o.owner);
            const out = fq.offer(x);
            if (waiting.length < capacity) expect(out).toBeUndefined();
            else if (most - 1 < mine + 1) expect(out).toBe(x);
            else {
              // A question of a tenant that held the most; of its class, that tenant's newest.
              expect(out).toBeDefined();
              const o = out as Q;
              expect(held(o.owner)).toBe(most);
              expect(waiting.filter((w) => w.owner === o.owner && w.lengthClass === o.lengthClass).at(-1)).toBe(out);
            }
            if (out !== x) waiting.push(x);
            if (out && out !== x) waiting.splice(waiting.indexOf(out), 1);
          } else {
            const before = new Set(waiting.map((w) => w.owner));
            const batch = fq.take(o.take, takeBatch);
            expect(batch.length).toBeLessThanOrEqual(o.take);
            expect(batch.length > 0).toBe(waiting.length > 0);
            expect(new Set(batch.map((b) => b.lengthClass)).size).toBeLessThanOrEqual(1);
            for (const b of batch) waiting.splice(waiting.indexOf(b), 1);
            // Its places are shared: a tenant with a question of the batch's class still waiting got at most one
            // fewer place than any other tenant in it.
            const places = (o: string) => batch.filter((b) => b.owner === o).length;
            for (const w of waiting) if (w.lengthClass === batch[0]?.lengthClass) for (const b of batch) expect(places(b.owner)).toBeLessThanOrEqual(places(w.owner) + 1);
            const taken = new Set(batch.map((b) => b.owner));
            for (const w of before) passedOver.set(w, taken.has(w) ? 0 : (passedOver.get(w) ?? 0) + 1);
            // Three other tenants can each head one batch before it.
            for (const n of passedOver.values()) expect(n).toBeLessThanOrEqual(3);
          }
          expect(fq.length).toBe(waiting.length);
          expect(fq.length).toBeLessThanOrEqual(capacity);
          for (const w of passedOver.keys()) if (held(w) === 0) passedOver.delete(w);
        }
      }),
    );
    // One tenant: the bounded queue with takeBatch, exactly as before.
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.array(fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant(-1)), { maxLength: 300, size: 'max' }), (capacity, ops) => {
        const fq = new FairQueue<Q>(capacity);
        const plain: Q[] = [];
        for (const cls of ops) {
          if (cls >= 0) {
            const x = q('', cls);
            const out = fq.offer(x);
            if (plain.length < capacity) plain.push(x);
            expect(out).toBe(plain.includes(x) ? undefined : x);
          } else expect(fq.take(4, takeBatch)).toEqual(takeBatch(plain, 4));
        }
      }),
    );
  });
});
