// The embeddings endpoint's concurrency, found from its answers (src/cache/embedders/adaptive-limit.ts).
import { describe, expect, it } from 'vitest';
import { AdaptiveLimit } from '../../src/cache/embedders/adaptive-limit.js';

describe('adaptive limit', () => {
  const make = (max = 32, timeoutMs = 40) => {
    let t = 0;
    const l = new AdaptiveLimit(max, timeoutMs, () => t);
    return { l, at: (ms: number) => (t = ms) };
  };

  it('starts at the most allowed, and answers keep it there', () => {
    const { l } = make();
    for (let i = 0; i < 100; i++) l.answered();
    expect(l.current).toBe(32);
  });

  it('halves on a timeout or an overloaded answer, at most once per timeout, and never below one', () => {
    const { l, at } = make();
    l.overloaded();
    expect(l.current).toBe(16);
    // The calls already under way time out too: they were sent under the old limit.
    at(39);
    l.overloaded();
    expect(l.current).toBe(16);
    at(40);
    l.overloaded();
    expect(l.current).toBe(8);
    for (let i = 1; i <= 10; i++) {
      at(40 + 40 * i);
      l.overloaded();
    }
    expect(l.current).toBe(1);
  });

  it('climbs back by one per limit’s worth of answers, up to the most allowed', () => {
    const { l, at } = make(8);
    l.overloaded();
    at(100);
    l.overloaded();
    expect(l.current).toBe(2);
    // 2 → 2.5 → 2.9 → 3.24: a step of one takes about as many answers as the limit allows at a time.
    l.answered();
    l.answered();
    expect(l.current).toBe(2);
    l.answered();
    expect(l.current).toBe(3);
    for (let i = 0; i < 3; i++) l.answered();
    expect(l.current).toBe(4);
    for (let i = 0; i < 1000; i++) l.answered();
    expect(l.current).toBe(8);
  });
});
