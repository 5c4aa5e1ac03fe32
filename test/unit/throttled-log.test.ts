// One log line per interval for a failure that repeats on every request (src/telemetry/throttled-log.ts), with the
// count it folded in; and the store guard that pairs it with a breaker (src/stores/store-guard.ts).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IDLE_PROBE_MS, StoreGuard, redisPing } from '../../src/stores/store-guard.js';
import { FAILURE_LOG_INTERVAL_MS, Throttle, ThrottledWarning, ThrottledWarnings } from '../../src/telemetry/throttled-log.js';
import { captureLogger, logEvents } from '../helpers/tiergate.js';

describe('Throttle', () => {
  it('the first passes at once with none held back; then one per interval, carrying how many it held back', () => {
    let t = 5;
    const th = new Throttle(1000, () => t);
    expect(th.pass()).toBe(0);
    t = 6;
    expect(th.pass()).toBeUndefined();
    t = 1004;
    expect(th.pass()).toBeUndefined();
    // Exactly one interval after the last let through.
    t = 1005;
    expect(th.pass()).toBe(2);
    t = 1006;
    expect(th.pass()).toBeUndefined();
    // Long after: only what was held since the last one.
    t = 99_999;
    expect(th.pass()).toBe(1);
    t = 200_000;
    expect(th.pass()).toBe(0);
  });

  it('a clock at 0 still lets the first through', () => {
    expect(new Throttle(FAILURE_LOG_INTERVAL_MS, () => 0).pass()).toBe(0);
  });
});

describe('ThrottledWarnings', () => {
  it('each kind has its own interval: one repeating on every request does not hold back the first of another', () => {
    const { log, logs } = captureLogger();
    let t = 0;
    const w = new ThrottledWarnings(log, 10_000, () => t);
    for (let i = 0; i < 3; i++) w.warn('request', { event: 'extproc.body_not_sent', body: 'request' });
    t = 1;
    w.warn('request_headers', { event: 'extproc.request_headers_not_sent' });
    w.warn('request_headers', { event: 'extproc.request_headers_not_sent' });
    expect(logEvents(logs, 'extproc.body_not_sent')).toEqual([expect.objectContaining({ body: 'request', suppressed: 0 })]);
    expect(logEvents(logs, 'extproc.request_headers_not_sent')).toEqual([expect.objectContaining({ suppressed: 0 })]);
    // Each kind's next line comes an interval after its own last one, with its own count.
    t = 10_000;
    w.warn('request', { event: 'extproc.body_not_sent', body: 'request' });
    w.warn('request_headers', { event: 'extproc.request_headers_not_sent' });
    expect(logEvents(logs, 'extproc.body_not_sent').map((l) => l.suppressed)).toEqual([0, 2]);
    expect(logEvents(logs, 'extproc.request_headers_not_sent').map((l) => l.suppressed)).toEqual([0]);
    t = 10_001;
    w.warn('request_headers', { event: 'extproc.request_headers_not_sent' });
    expect(logEvents(logs, 'extproc.request_headers_not_sent').map((l) => l.suppressed)).toEqual([0, 2]);
  });
});

describe('ThrottledWarning', () => {
  it('logs the fields and the count held back, at warn, once per interval', () => {
    const { log, logs } = captureLogger();
    let t = 0;
    const w = new ThrottledWarning(log, 10_000, () => t);
    for (let i = 0; i < 5; i++) w.warn({ event: 'cache.store_failed', op: 'get', err: `e${i}` });
    t = 10_000;
    w.warn({ event: 'cache.store_failed', op: 'set', err: 'later' });
    expect(logEvents(logs, 'cache.store_failed').map(({ level, op, err, suppressed }) => ({ level, op, err, suppressed }))).toEqual([
      { level: 'warn', op: 'get', err: 'e0', suppressed: 0 },
      { level: 'warn', op: 'set', err: 'later', suppressed: 4 },
    ]);
  });
});

describe('StoreGuard', () => {
  it("a failure is logged under the guard's event with the error's message, throttled, and counted toward the breaker", () => {
    const { log, logs } = captureLogger();
    let t = 0;
    const changes: boolean[] = [];
    const g = new StoreGuard('cache.store_failed', log, () => t, (open) => changes.push(open));
    const settings = { failures: 2, cooldownMs: 1000 };
    expect(g.allows()).toBe(true);
    g.failed('get', new Error('ECONNREFUSED'), settings);
    g.failed('get', 'not an Error', settings);
    expect([g.allows(), changes]).toEqual([false, [true]]);
    expect(logEvents(logs, 'cache.store_failed').map(({ op, err, suppressed }) => ({ op, err, suppressed }))).toEqual([{ op: 'get', err: 'ECONNREFUSED', suppressed: 0 }]);
    t = FAILURE_LOG_INTERVAL_MS;
    // warn alone logs (throttled) but never opens or counts toward the breaker.
    g.warn('set', 'a value too large');
    expect(logEvents(logs, 'cache.store_failed').at(-1)).toMatchObject({ op: 'set', err: 'a value too large', suppressed: 1 });
    t += 1000;
    expect(g.allows()).toBe(true); // the cooldown over: a trial call goes
    expect(logEvents(logs, 'cache.store_recovered')).toEqual([]);
    g.succeeded();
    expect(changes).toEqual([true, false]);
    // The end of the degraded mode is a line of its own, saying how long it lasted; a success while closed is not.
    expect(logEvents(logs, 'cache.store_recovered').map(({ level, degraded_ms }) => ({ level, degraded_ms }))).toEqual([{ level: 'info', degraded_ms: FAILURE_LOG_INTERVAL_MS + 1000 }]);
    g.succeeded();
    expect(logEvents(logs, 'cache.store_recovered')).toHaveLength(1);
    // The semantic cache's guard names its own.
    const semantic = new StoreGuard('cache.semantic_failed', log, () => t, () => undefined);
    semantic.failed('embed', 'down', { failures: 1, cooldownMs: 0 });
    expect(semantic.allows()).toBe(true);
    semantic.succeeded();
    expect(logEvents(logs, 'cache.semantic_recovered')).toHaveLength(1);
  });
});

describe('StoreGuard: the idle probe', () => {
  afterEach(() => vi.useRealTimers());
  const open = (probe: () => Promise<unknown>, changes: boolean[]) => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const { log, logs } = captureLogger();
    let t = 0;
    const g = new StoreGuard('budget.store_failed', log, () => t, (o) => changes.push(o), probe);
    const settings = { failures: 1, cooldownMs: 1000 };
    g.failed('admit', 'ECONNREFUSED', settings);
    return { g, logs, advance: (ms: number) => { t += ms; return vi.advanceTimersByTimeAsync(ms); } };
  };

  it('a breaker open with no request asking tries the store after IDLE_PROBE_MS, and closes when it answers', async () => {
    const changes: boolean[] = [];
    let answer: Promise<unknown> = Promise.reject(new Error('still down'));
    answer.catch(() => undefined);
    const probe = vi.fn(() => answer);
    const { logs, advance } = open(probe, changes);
    expect(changes).toEqual([true]);
    await advance(IDLE_PROBE_MS - 1);
    expect(probe).not.toHaveBeenCalled();
    await advance(1);
    // Still down: the breaker stays open, and the probe is tried again an interval later.
    expect([probe.mock.calls.length, changes]).toEqual([1, [true]]);
    answer = Promise.resolve('PONG');
    await advance(IDLE_PROBE_MS);
    expect([probe.mock.calls.length, changes]).toEqual([2, [true, false]]);
    expect(logEvents(logs, 'budget.store_recovered')).toHaveLength(1);
    // Closed: nothing more is probed.
    await advance(3 * IDLE_PROBE_MS);
    expect(probe).toHaveBeenCalledTimes(2);
  });

  it('stays out of the way while requests ask (they make the trial calls), and stops when the store closes', async () => {
    const changes: boolean[] = [];
    const probe = vi.fn(() => Promise.resolve('PONG'));
    const { g, advance } = open(probe, changes);
    let trials = 0;
    for (let i = 0; i < 6; i++) {
      await advance(IDLE_PROBE_MS / 2);
      // A request asks; when the cooldown is over it makes the trial call, which fails: the store is still down.
      if (g.allows()) {
        trials++;
        g.failed('admit', 'ECONNREFUSED', undefined);
      }
    }
    expect(trials).toBe(6);
    expect(probe).not.toHaveBeenCalled();
    g.close();
    await advance(5 * IDLE_PROBE_MS);
    expect([probe.mock.calls.length, changes]).toEqual([0, [true]]);
  });

  it('only a store with a Redis connection has a probe: PING on it', async () => {
    expect(redisPing({ kind: 'memory' })).toBeUndefined();
    expect(redisPing(undefined)).toBeUndefined();
    const ping = vi.fn(() => Promise.resolve('PONG'));
    await expect((redisPing({ redis: { ping } }) as () => Promise<unknown>)()).resolves.toBe('PONG');
    expect(ping).toHaveBeenCalledTimes(1);
  });
});

