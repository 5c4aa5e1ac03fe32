// What every optional or shared store on the request path does when it fails: a circuit breaker, so no request
// waits on a store known to be down, and a throttled warning, so an outage is one log line per interval rather
// than one per request. Budgets, the exact cache and the semantic cache each hold one.
import { CircuitBreaker, type BreakerSettings } from '../budget/circuit-breaker.js';
import type { Logger } from '../telemetry/logger.js';
import { FAILURE_LOG_INTERVAL_MS, ThrottledWarning } from '../telemetry/throttled-log.js';

export class StoreGuard {
  private readonly breaker: CircuitBreaker;
  private readonly warning: ThrottledWarning;
  /** When the breaker opened: the recovery line says how long the store was away. */
  private openedAt = 0;

  constructor(
    /** The log event of a failure, e.g. `cache.store_failed`; its recovery is logged as `cache.store_recovered`. */
    private readonly event: string,
    log: Logger,
    now: () => number,
    /** Told when the breaker opens (degraded) or closes. */
    onChange: (open: boolean) => void,
  ) {
    // The failure lines stop when the store is back, and silence alone does not say it is: the end of the
    // degraded mode is one line of its own (as the ledger's sink_failed has its sink_recovered).
    const recovered = event.replace(/_failed$/, '_recovered');
    this.breaker = new CircuitBreaker(now, (open) => {
      if (open) this.openedAt = now();
      else log.info({ event: recovered, degraded_ms: now() - this.openedAt });
      onChange(open);
    });
    this.warning = new ThrottledWarning(log, FAILURE_LOG_INTERVAL_MS, now);
  }

  allows(): boolean {
    return this.breaker.allows();
  }

  succeeded(): void {
    this.breaker.succeeded();
  }

  /** `settings` absent (a background call): counted with the last settings seen. */
  failed(op: string, err: unknown, settings: BreakerSettings | undefined): void {
    this.breaker.failed(settings);
    this.warn(op, err);
  }

  /** Logged (throttled) without counting toward the breaker: a call refused for its input, not a store down. */
  warn(op: string, err: unknown): void {
    this.warning.warn({ event: this.event, op, err: err instanceof Error ? err.message : String(err) });
  }
}
