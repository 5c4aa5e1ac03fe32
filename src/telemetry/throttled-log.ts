// A failure that repeats on every request (a store that is down, an optional stage that keeps throwing) is one
// log line per interval, carrying how many were folded into it: it stays visible without a log storm pinning a
// core (landscape.md, "Redis outage").
import type { Logger } from './logger.js';

/** Lets one event through per interval and counts the ones it holds back. */
export class Throttle {
  private last = Number.NEGATIVE_INFINITY;
  private suppressed = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number,
  ) {}

  /** How many were held back since the last one let through, when this one may go; undefined when it may not. */
  pass(): number | undefined {
    const now = this.now();
    if (now - this.last < this.intervalMs) {
      this.suppressed++;
      return undefined;
    }
    const held = this.suppressed;
    this.last = now;
    this.suppressed = 0;
    return held;
  }
}

export class ThrottledWarning {
  private readonly throttle: Throttle;

  constructor(
    private readonly log: Logger,
    intervalMs: number,
    now: () => number,
  ) {
    this.throttle = new Throttle(intervalMs, now);
  }

  warn(fields: Record<string, unknown>): void {
    const suppressed = this.throttle.pass();
    if (suppressed !== undefined) this.log.warn({ ...fields, suppressed });
  }
}

/**
 * One ThrottledWarning per kind of event, so that one kind repeating on every request cannot hold back the first
 * line of another: two misconfigurations are two lines per interval. Kinds come from a fixed set in the code,
 * never from a request, so the map stays small.
 */
export class ThrottledWarnings {
  private readonly byKind = new Map<string, ThrottledWarning>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly now: () => number,
  ) {}

  warn(kind: string, fields: Record<string, unknown>): void {
    let w = this.byKind.get(kind);
    if (!w) this.byKind.set(kind, (w = new ThrottledWarning(this.log, this.intervalMs, this.now)));
    w.warn(fields);
  }
}

export const FAILURE_LOG_INTERVAL_MS = 10_000;
