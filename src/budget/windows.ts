// Limit windows: fixed minutes (UTC epoch minutes, the same on every replica) and calendar days or months in a
// configured IANA time zone. Each window has an id (part of the store key) and the instant it ends.

export interface Window {
  id: string;
  /** ms since epoch at which the window ends. */
  resetAt: number;
}

const MINUTE = 60_000;
const DAY = 86_400_000;

export function minuteWindow(now: number): Window {
  const m = Math.floor(now / MINUTE);
  return { id: String(m), resetAt: (m + 1) * MINUTE };
}

/** Calendar windows are computed once per zone per window; the formatter is the costly part. */
export class CalendarWindows {
  private readonly fmt: Intl.DateTimeFormat;
  private cached: Window | undefined;
  private cachedFrom = 0;

  constructor(
    readonly timeZone: string,
    readonly period: 'day' | 'month' = 'day',
  ) {
    this.fmt = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  }

  at(now: number): Window {
    const c = this.cached;
    if (c && now >= this.cachedFrom && now < c.resetAt) return c;
    const p = this.parts(now);
    const date = dateOf(p);
    // The next window starts at local midnight of the next day, or of the next month's first day.
    const w =
      this.period === 'day'
        ? { id: date, resetAt: this.localMidnight(p.y, p.mo - 1, p.d + 1) }
        : { id: date.slice(0, 7), resetAt: this.localMidnight(p.y, p.mo, 1) };
    this.cached = w;
    this.cachedFrom = now;
    return w;
  }

  /**
   * The instant a local date starts (a month index and day as Date.UTC takes them, rolling over): UTC midnight
   * of that date, shifted by the zone's offset there. Across a DST change the offset before and the offset after
   * each give a candidate, and the day starts at the earlier one that is on the date. Where clocks jump from
   * 23:59:59 to 01:00 (Havana, Santiago, the Azores), there is no local midnight: the day starts at the jump,
   * which is midnight at the old offset. Checked against every zone's own calendar for 2025-2026 (unit test).
   */
  private localMidnight(y: number, monthIndex: number, d: number): number {
    const utcMidnight = Date.UTC(y, monthIndex, d);
    const date = new Date(utcMidnight).toISOString().slice(0, 10);
    const a = utcMidnight - this.offsetAt(utcMidnight);
    const b = utcMidnight - this.offsetAt(a);
    const [early, late] = a <= b ? [a, b] : [b, a];
    return dateOf(this.parts(early)) >= date ? early : late;
  }

  /** Local wall time minus UTC at `t`, in ms. */
  private offsetAt(t: number): number {
    const p = this.parts(t);
    return Date.UTC(p.y, p.mo - 1, p.d, p.h, p.mi, p.s) - Math.floor(t / 1000) * 1000;
  }

  private parts(t: number): { y: number; mo: number; d: number; h: number; mi: number; s: number } {
    const o: Record<string, number> = {};
    for (const p of this.fmt.formatToParts(t)) if (p.type !== 'literal') o[p.type] = Number(p.value);
    return { y: o.year as number, mo: o.month as number, d: o.day as number, h: o.hour as number, mi: o.minute as number, s: o.second as number };
  }
}

/** A local date as YYYY-MM-DD: a day window's id, its first 7 characters a month's, and it orders as dates do. */
function dateOf(p: { y: number; mo: number; d: number }): string {
  return `${p.y}-${String(p.mo).padStart(2, '0')}-${String(p.d).padStart(2, '0')}`;
}

export const WINDOW_MS = { minute: MINUTE, day: DAY } as const;
