// A store that is down fails every request; one log line per interval, carrying how many were folded into it,
// keeps an outage visible without a log storm pinning a core (landscape.md, "Redis outage").
import type { Logger } from './logger.js';

export class ThrottledWarning {
  private last = Number.NEGATIVE_INFINITY;
  private suppressed = 0;

  constructor(
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly now: () => number,
  ) {}

  warn(fields: Record<string, unknown>): void {
    const now = this.now();
    if (now - this.last < this.intervalMs) {
      this.suppressed++;
      return;
    }
    this.log.warn({ ...fields, suppressed: this.suppressed });
    this.last = now;
    this.suppressed = 0;
  }
}

export const STORE_FAILURE_LOG_INTERVAL_MS = 10_000;
