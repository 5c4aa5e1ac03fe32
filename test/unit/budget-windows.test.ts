// Limit windows and the headers derived from them: minute windows, calendar days in a time zone (across DST),
// OpenAI's reset-duration format, and which bucket the x-ratelimit-*-tokens headers describe.
import { describe, expect, it } from 'vitest';
import { CalendarWindows, minuteWindow } from '../../src/budget/windows.js';
import { formatReset, rateLimitHeaders } from '../../src/budget/rate-limit-headers.js';
import type { Bucket } from '../../src/stores/budget-store.js';

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
    [1500, '1.5s'],
    [59_000, '59s'],
    [360_000, '6m0s'],
    [3_723_000, '1h2m3s'],
  ])('%d ms is written %s', (ms, s) => expect(formatReset(ms)).toBe(s));

  const b = (o: Partial<Bucket>): Bucket => ({ key: 'k', code: 'tokens_per_minute', unit: 'tokens', limit: 100, resetAt: 60_000, expireAt: 0, ...o });
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
