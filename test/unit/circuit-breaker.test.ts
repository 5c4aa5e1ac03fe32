// The breaker in front of a shared store (budgets, cache): after N failures in a row no request waits on the
// store for a cooldown; then one trial call decides. Driven on a clock of its own.
import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../src/budget/circuit-breaker.js';

function breaker() {
  let now = 1_000;
  const changes: boolean[] = [];
  const b = new CircuitBreaker(
    () => now,
    (open) => changes.push(open),
  );
  return { b, changes, advance: (ms: number) => void (now += ms) };
}
const s = { failures: 3, cooldownMs: 500 };

describe('CircuitBreaker', () => {
  it('opens on the Nth failure in a row, not before, and says so once', () => {
    const { b, changes } = breaker();
    b.failed(s);
    b.failed(s);
    expect([b.allows(), changes]).toEqual([true, []]);
    b.failed(s);
    expect([b.allows(), changes]).toEqual([false, [true]]);
    b.failed(s);
    expect(changes).toEqual([true]);
  });

  it('a success between failures starts the count again, and a success while closed says nothing', () => {
    const { b, changes } = breaker();
    b.failed(s);
    b.failed(s);
    b.succeeded();
    b.failed(s);
    b.failed(s);
    expect([b.allows(), changes]).toEqual([true, []]);
  });

  it('open: refuses for the cooldown, then lets one trial through and refuses the rest while it runs', () => {
    const { b, advance } = breaker();
    for (let i = 0; i < 3; i++) b.failed(s);
    advance(499);
    expect(b.allows()).toBe(false);
    advance(1);
    expect([b.allows(), b.allows(), b.allows()]).toEqual([true, false, false]);
  });

  it('a trial that succeeds closes it (said once), and the count starts again', () => {
    const { b, changes, advance } = breaker();
    for (let i = 0; i < 3; i++) b.failed(s);
    advance(500);
    expect(b.allows()).toBe(true);
    b.succeeded();
    expect([b.allows(), b.allows(), changes]).toEqual([true, true, [true, false]]);
    b.failed(s);
    b.failed(s);
    expect(b.allows()).toBe(true);
  });

  it('a trial that fails opens it again for a whole cooldown, on that one failure, without saying so again', () => {
    const { b, changes, advance } = breaker();
    for (let i = 0; i < 3; i++) b.failed(s);
    advance(500);
    expect(b.allows()).toBe(true);
    b.failed(s);
    advance(499);
    expect(b.allows()).toBe(false);
    advance(1);
    expect(b.allows()).toBe(true);
    expect(changes).toEqual([true]);
  });

  it('a failure while open (a call already on its way) puts the trial off by a cooldown from then', () => {
    const { b, advance } = breaker();
    for (let i = 0; i < 3; i++) b.failed(s);
    advance(400);
    b.failed(s);
    advance(400);
    expect(b.allows()).toBe(false);
    advance(100);
    expect(b.allows()).toBe(true);
  });

  it('a background failure (no settings) counts under the last settings a request gave, 3 in 2 s before any', () => {
    const fresh = breaker();
    fresh.b.failed(undefined);
    fresh.b.failed(undefined);
    expect(fresh.b.allows()).toBe(true);
    fresh.b.failed(undefined);
    expect(fresh.b.allows()).toBe(false);
    fresh.advance(1_999);
    expect(fresh.b.allows()).toBe(false);
    fresh.advance(1);
    expect(fresh.b.allows()).toBe(true);

    const { b, advance } = breaker();
    b.failed({ failures: 1, cooldownMs: 100 }); // opens at once
    advance(100);
    expect(b.allows()).toBe(true); // the trial
    b.failed(undefined); // it failed in the background: open again for the request's 100 ms, not 2 s
    advance(100);
    expect(b.allows()).toBe(true);
  });
});
