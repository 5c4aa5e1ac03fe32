import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lengthClass, takeBatch } from '../../src/cache/embedders/batch-plan.js';

const q = (id: string, cls: number) => ({ id, lengthClass: cls });

describe('lengthClass', () => {
  it.each([
    [0, 0],
    [64, 0],
    [65, 1],
    [128, 1],
    [129, 2],
    [256, 2],
    [257, 3],
    [4096, 3],
  ])('%i characters: class %i', (n, cls) => {
    expect(lengthClass('x'.repeat(n))).toBe(cls);
  });
});

describe('takeBatch', () => {
  it("takes the oldest question and, in order, the others of its class up to the maximum; the rest stay in order", () => {
    const queue = [q('a', 1), q('b', 3), q('c', 1), q('d', 0), q('e', 1), q('f', 1), q('g', 3)];
    expect(takeBatch(queue, 3).map((x) => x.id)).toEqual(['a', 'c', 'e']);
    expect(queue.map((x) => x.id)).toEqual(['b', 'd', 'f', 'g']);
    expect(takeBatch(queue, 3).map((x) => x.id)).toEqual(['b', 'g']);
    expect(takeBatch(queue, 3).map((x) => x.id)).toEqual(['d']);
    expect(takeBatch(queue, 3).map((x) => x.id)).toEqual(['f']);
    expect(takeBatch(queue, 3)).toEqual([]);
    expect(queue).toEqual([]);
  });

  it('never starves a question: it waits for at most as many batches as there were questions ahead of it', () => {
    // Any interleaving of arrivals (of any class) and batches (of any size): each batch is one class, holds the
    // oldest waiting question, keeps arrival order; each question is taken within `ahead` batches of arriving.
    const op = fc.oneof(fc.record({ arrive: fc.integer({ min: 0, max: 3 }) }), fc.record({ batch: fc.integer({ min: 1, max: 8 }) }));
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300, size: 'max' }), (ops) => {
        const queue: Array<{ id: number; lengthClass: number }> = [];
        const bound = new Map<number, number>(); // id → batches it may still wait for
        let id = 0;
        for (const o of [...ops, ...Array.from({ length: 300 }, () => ({ batch: 8 }))]) {
          if ('arrive' in o) {
            bound.set(id, queue.length);
            queue.push({ id: id++, lengthClass: o.arrive });
            continue;
          }
          const oldest = queue[0];
          const batch = takeBatch(queue, o.batch);
          if (oldest === undefined) {
            expect(batch).toEqual([]);
            continue;
          }
          expect(batch[0]).toBe(oldest);
          expect(batch.length).toBeLessThanOrEqual(o.batch);
          expect(new Set(batch.map((x) => x.lengthClass))).toEqual(new Set([oldest.lengthClass]));
          expect(batch.map((x) => x.id)).toEqual([...batch.map((x) => x.id)].sort((a, b) => a - b));
          expect(queue.map((x) => x.id)).toEqual([...queue.map((x) => x.id)].sort((a, b) => a - b));
          for (const x of batch) bound.delete(x.id);
          for (const x of queue) {
            const left = (bound.get(x.id) as number) - 1;
            expect(left).toBeGreaterThanOrEqual(0);
            bound.set(x.id, left);
          }
        }
        expect(queue).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });
});
