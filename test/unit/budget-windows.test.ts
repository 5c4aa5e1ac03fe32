// Limit windows and the headers derived from them: minute windows, calendar days in a time zone (across DST),
// OpenAI's reset-duration format, and which bucket the x-ratelimit-*-tokens headers describe.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CalendarWindows, minuteWindow } from '../../src/budget/windows.js';
import { MAX_CLIENT_RETRY_WAIT_S, budgetWarningHeader, formatReset, limitError, rateLimitHeaders } from '../../src/budget/rate-limit-headers.js';
import type { Bucket } from '../../src/stores/budget-store.js';

/** A bucket as the store sees it; tokens per minute unless told. */
const b = (o: Partial<Bucket>): Bucket => ({ key: 'k', code: 'tokens_per_minute', unit: 'tokens', limit: 100, resetAt: 30_000, expireAt: 0, ...o });

describe('windows', () => {
  it('minute windows are epoch minutes: the same on every replica', () => {
    const t = Date.UTC(2026, 10, 22, 12, 34, 56, 789);
    expect(minuteWindow(t)).toEqual({ id: String(Math.floor(t / 60_000)), resetAt: Date.UTC(2026, 10, 22, 12, 35) });
    expect(minuteWindow(Date.UTC(2026, 10, 22, 12, 35)).id).not.toBe(minuteWindow(t).id);
  });

  it.each([
    // zone, instant, local day, next local midnight
    ['UTC', Date.UTC(2026, 10, 22, 23, 59, 59), '2026-11-22', Date.UTC(2026, 10, 23)],
    ['UTC', Date.UTC(2026, 10, 23, 0, 0, 0), '2026-11-23', Date.UTC(2026, 10, 24)],
    ['Asia/Seoul', Date.UTC(2026, 10, 22, 14, 59, 59), '2026-11-22', Date.UTC(2026, 10, 22, 15)], // UTC+9
    ['Asia/Seoul', Date.UTC(2026, 10, 22, 15, 0, 0), '2026-11-23', Date.UTC(2026, 10, 23, 15)],
    ['America/New_York', Date.UTC(2026, 10, 22, 4, 59, 59), '2026-11-21', Date.UTC(2026, 10, 22, 5)], // UTC-5
    // 2026-03-08: New York springs forward (a 23-hour day); midnight after it is 04:00 UTC, not 05:00
    ['America/New_York', Date.UTC(2026, 2, 8, 12), '2026-03-08', Date.UTC(2026, 2, 9, 4)],
    // 2026-11-01: falls back (a 25-hour day)
    ['America/New_York', Date.UTC(2026, 10, 1, 12), '2026-11-01', Date.UTC(2026, 10, 2, 5)],
    // Zones whose clocks jump from 23:59:59 to 01:00: the next day has no midnight and starts at the jump
    ['America/Havana', Date.UTC(2026, 2, 7, 12), '2026-03-07', Date.UTC(2026, 2, 8, 5)], // UTC-5 → UTC-4
    ['America/Santiago', Date.UTC(2026, 8, 5, 12), '2026-09-05', Date.UTC(2026, 8, 6, 4)], // UTC-4 → UTC-3
    ['Atlantic/Azores', Date.UTC(2026, 2, 28, 12), '2026-03-28', Date.UTC(2026, 2, 29, 1)], // UTC-1 → UTC+0
    ['Asia/Beirut', Date.UTC(2026, 2, 28, 12), '2026-03-28', Date.UTC(2026, 2, 28, 22)], // UTC+2 → UTC+3
    // The Azores fall back from 01:00 to 00:00: the day starts at the first of its two midnights
    ['Atlantic/Azores', Date.UTC(2026, 9, 24, 12), '2026-10-24', Date.UTC(2026, 9, 25, 0)],
  ])('day window in %s at %d is %s, ending %d', (tz, t, id, resetAt) => {
    expect(new CalendarWindows(tz).at(t)).toEqual({ id, resetAt });
  });

  it.each([
    // zone, instant, local month, next local month's first midnight
    ['UTC', Date.UTC(2026, 10, 30, 23, 59, 59), '2026-11', Date.UTC(2026, 11, 1)],
    ['UTC', Date.UTC(2026, 11, 31, 12), '2026-12', Date.UTC(2027, 0, 1)], // across the year
    ['Asia/Seoul', Date.UTC(2026, 10, 30, 15), '2026-12', Date.UTC(2026, 11, 31, 15)], // already December there
    ['America/New_York', Date.UTC(2026, 1, 15), '2026-02', Date.UTC(2026, 2, 1, 5)], // EST until 2026-03-08
    ['America/New_York', Date.UTC(2026, 2, 15), '2026-03', Date.UTC(2026, 3, 1, 4)], // EDT by then
  ])('month window in %s at %d is %s, ending %d', (tz, t, id, resetAt) => {
    expect(new CalendarWindows(tz, 'month').at(t)).toEqual({ id, resetAt });
  });

  it('in every zone, every day and month of 2025-2026 ends at the first instant of the next one', () => {
    // The oracle is the zone's own calendar: the local date just before resetAt is the window's, and at resetAt
    // it is the next one. Steps of 23 hours land on every local day at drifting hours.
    const wrong: string[] = [];
    for (const tz of Intl.supportedValuesOf('timeZone')) {
      const fmt = new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' });
      const days = new CalendarWindows(tz);
      const months = new CalendarWindows(tz, 'month');
      for (let t = Date.UTC(2025, 0, 1); t < Date.UTC(2027, 0, 1); t += 23 * 3_600_000) {
        const today = fmt.format(t);
        const d = days.at(t);
        if (d.id !== today || fmt.format(d.resetAt - 1) !== today || fmt.format(d.resetAt) === today) wrong.push(`${tz} day of ${new Date(t).toISOString()}: ${d.id} until ${new Date(d.resetAt).toISOString()}`);
        const m = months.at(t);
        const month = today.slice(0, 7);
        if (m.id !== month || fmt.format(m.resetAt - 1).slice(0, 7) !== month || fmt.format(m.resetAt).slice(0, 7) === month) wrong.push(`${tz} month of ${new Date(t).toISOString()}: ${m.id} until ${new Date(m.resetAt).toISOString()}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('a cached day is not reused once the day is over (fake clock across midnight)', () => {
    const days = new CalendarWindows('Asia/Seoul');
    const before = days.at(Date.UTC(2026, 10, 22, 14, 59, 59, 999));
    const after = days.at(Date.UTC(2026, 10, 22, 15));
    expect([before.id, after.id]).toEqual(['2026-11-22', '2026-11-23']);
    expect(days.at(Date.UTC(2026, 10, 22, 1)).id).toBe('2026-11-22'); // a clock set back is answered too
  });
});

describe('rate-limit headers', () => {
  it.each([
    [20, '20ms'],
    [999, '999ms'],
    [1000, '1s'],
    [1500, '1.5s'],
    [10_500, '10.5s'], // only the fraction's trailing zeros go
    [30_050, '30.05s'],
    [60_500, '1m0.5s'],
    [59_000, '59s'],
    [360_000, '6m0s'],
    [3_723_000, '1h2m3s'],
    // A fraction of a millisecond is rounded up first, so it never leaves "1.s" or "60.s" behind.
    [999.2, '1s'],
    [1000.1, '1.001s'],
    [59_999.6, '1m0s'],
    [60_000.4, '1m0.001s'],
    [3_599_999.5, '1h0m0s'],
    [0.2, '1ms'],
    [-5, '0ms'],
  ])('%d ms is written %s', (ms, s) => expect(formatReset(ms)).toBe(s));

  it('any wait is a well-formed Go duration, in its largest units, that is the wait rounded up to a millisecond', () => {
    const GO = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)(?:\.(\d*[1-9]))?s|(\d+)ms)$/;
    fc.assert(
      fc.property(fc.double({ min: 0, max: 48 * 3_600_000, noNaN: true }), (ms) => {
        const text = formatReset(ms);
        const m = GO.exec(text);
        expect(m, text).not.toBeNull();
        const [, h = '0', min = '0', s, frac = '', small] = m as RegExpExecArray;
        // Minutes and seconds below 60, and milliseconds alone only under a second.
        expect(Number(min)).toBeLessThan(60);
        if (s !== undefined) expect(Number(s)).toBeLessThan(60);
        if (small !== undefined) expect(text).toBe(`${small}ms`);
        const back = small !== undefined ? Number(small) : Number(h) * 3_600_000 + Number(min) * 60_000 + Number(s) * 1000 + Number(frac.padEnd(3, '0'));
        expect(back).toBe(Math.ceil(ms));
      }),
      { numRuns: 5000 },
    );
  });

  it('requests from the rpm bucket; tokens from whichever token bucket has the least room', () => {
    const buckets = [
      b({ code: 'requests_per_minute', unit: 'requests', limit: 10, resetAt: 30_000 }),
      b({ code: 'daily_token_budget', limit: 1_000_000, resetAt: 3_600_000 }),
      b({ code: 'tokens_per_minute', limit: 5000, resetAt: 30_000 }),
    ];
    expect(rateLimitHeaders(buckets, [4, 999_000, 100], 0)).toEqual([
      ['x-ratelimit-limit-requests', '10'],
      ['x-ratelimit-remaining-requests', '6'],
      ['x-ratelimit-reset-requests', '30s'],
      ['x-ratelimit-limit-tokens', '1000000'],
      ['x-ratelimit-remaining-tokens', '1000'],
      ['x-ratelimit-reset-tokens', '1h0m0s'],
    ]);
  });

  it('the token bucket with least room wins wherever it is listed; on a tie the first listed; resets count from now', () => {
    const day = b({ code: 'daily_token_budget', limit: 1_000_000, resetAt: 3_600_000 });
    const minute = b({ code: 'tokens_per_minute', limit: 5000, resetAt: 60_000 });
    const tokensOf = (counted: number[], now = 0) => Object.fromEntries(rateLimitHeaders([day, minute], counted, now));
    expect(tokensOf([10, 4000])).toEqual({ 'x-ratelimit-limit-tokens': '5000', 'x-ratelimit-remaining-tokens': '1000', 'x-ratelimit-reset-tokens': '1m0s' });
    // 1,000 left in each: the day, listed first (and the longer wait), is described
    expect(tokensOf([999_000, 4000])).toEqual({ 'x-ratelimit-limit-tokens': '1000000', 'x-ratelimit-remaining-tokens': '1000', 'x-ratelimit-reset-tokens': '1h0m0s' });
    // Over the limit (a reservation counted past it) is no room, not negative room
    expect(tokensOf([10, 6000], 45_000)).toEqual({ 'x-ratelimit-limit-tokens': '5000', 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '15s' });
  });

  it('a cost budget (micro-dollars) is never what the tokens headers describe, however little room it has', () => {
    const buckets = [b({ code: 'daily_cost_budget', unit: 'usd', limit: 5_000_000 }), b({ code: 'tokens_per_minute', limit: 5000, resetAt: 30_000 })];
    expect(rateLimitHeaders(buckets, [4_999_999, 100], 0)).toEqual([
      ['x-ratelimit-limit-tokens', '5000'],
      ['x-ratelimit-remaining-tokens', '4900'],
      ['x-ratelimit-reset-tokens', '30s'],
    ]);
    expect(rateLimitHeaders([buckets[0] as Bucket], [1], 0)).toEqual([]);
  });
});

describe('429s and the budget warning', () => {
  const headers = (e: { extraHeaders: ReadonlyArray<readonly [string, string]> }) => Object.fromEntries(e.extraHeaders);

  it('a request that fits an empty window is worth a retry, one larger than the limit never is', () => {
    const exact = limitError(b({}), 60, 100, [], 0);
    expect(exact.message).toBe("Rate limit reached for this tenant's tokens per minute: limit 100, used 60, requested 100. Try again in 30s.");
    expect(headers(exact)).toEqual({ 'retry-after': '30' });
    const over = limitError(b({}), 60, 101, [['x-ratelimit-limit-tokens', '100']], 0);
    expect(over.message).toBe("Request too large for this tenant's tokens per minute: limit 100, requested 101. Lower max_tokens or shorten the prompt.");
    expect(headers(over)).toEqual({ 'x-should-retry': 'false', 'x-ratelimit-limit-tokens': '100' });
    expect(over.name_).toBe('tokens_per_minute');
  });

  it('a wait longer than the SDKs should sleep through says x-should-retry: false; a budget is in dollars', () => {
    const day = b({ code: 'daily_cost_budget', unit: 'usd', limit: 5_000_000, resetAt: 3_600_000 });
    const e = limitError(day, 5_000_000, 1_234, [], 0);
    expect(e.message).toBe("Budget reached for this tenant's daily cost budget: limit $5.00, used $5.00, requested $0.001234. Try again in 3600s.");
    expect(headers(e)).toEqual({ 'retry-after': '3600', 'x-should-retry': 'false' });
    const edge = limitError(b({ resetAt: MAX_CLIENT_RETRY_WAIT_S * 1000 }), 100, 1, [], 0);
    expect(headers(edge)).toEqual({ 'retry-after': String(MAX_CLIENT_RETRY_WAIT_S) });
    // A window already over by the store's clock still asks for a second, never 0 or less
    expect(headers(limitError(b({ resetAt: 0 }), 100, 1, [], 500))).toEqual({ 'retry-after': '1' });
  });

  it('a concurrency refusal names what is in flight', () => {
    const e = limitError(b({ code: 'concurrent_requests', unit: 'concurrent', limit: 4, resetAt: 1000 }), 4, 1, [], 0);
    expect(e.message).toBe('Too many requests in flight for this tenant: limit 4, in flight 4. Try again in 1s, or once one of them has finished.');
  });

  it('the warning names the calendar budget most used, capped at 100%, never a per-minute limit', () => {
    const buckets = [
      b({ code: 'requests_per_minute', unit: 'requests', limit: 10 }),
      b({ code: 'daily_token_budget', limit: 1000 }),
      b({ code: 'daily_cost_budget', unit: 'usd', limit: 2_000_000 }),
      b({ code: 'monthly_token_budget', limit: 10_000 }),
      b({ code: 'tokens_per_minute', limit: 100 }),
    ];
    const warn = (counted: number[]) => budgetWarningHeader(buckets, { admitted: true, counted, denied: undefined, budgetWarning: 'over' });
    expect(warn([10, 810, 1_700_000, 9_990, 100])).toEqual(['x-budget-warning', 'monthly_token_budget 99% used']);
    expect(warn([10, 810, 1_900_000, 9_000, 100])).toEqual(['x-budget-warning', 'daily_cost_budget 95% used']);
    expect(warn([10, 1200, 0, 0, 0])).toEqual(['x-budget-warning', 'daily_token_budget 100% used']);
    // On a tie the first listed (the daily budget, which resets first) is named
    expect(warn([0, 900, 1_800_000, 0, 0])).toEqual(['x-budget-warning', 'daily_token_budget 90% used']);
    expect(budgetWarningHeader(buckets, { admitted: true, counted: [10, 999, 0, 0, 0], denied: undefined, budgetWarning: 'none' })).toBeUndefined();
    expect(budgetWarningHeader([buckets[0] as Bucket], { admitted: true, counted: [10], denied: undefined, budgetWarning: 'over' })).toBeUndefined();
  });
});
