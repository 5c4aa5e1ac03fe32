// What every optional or shared store on the request path does when it fails: a circuit breaker, so no request
// waits on a store known to be down, and a throttled warning, so an outage is one log line per interval rather
// than one per request. Budgets, the exact cache and the semantic cache each hold one.
import type { Cluster, Redis } from 'ioredis';
import { CircuitBreaker, type BreakerSettings } from '../budget/circuit-breaker.js';
import { setDeadline } from '../deadline-timer.js';
import type { Logger } from '../telemetry/logger.js';
import { FAILURE_LOG_INTERVAL_MS, ThrottledWarning } from '../telemetry/throttled-log.js';

/** How long an open breaker waits with no request asking before the guard probes the store itself. */
export const IDLE_PROBE_MS = 10_000;

/** What a store call raced against its deadline came to (see StoreGuard.timed). */
export type Timed<R> = { kind: 'answered'; value: R } | { kind: 'failed' } | { kind: 'late' };
const FAILED: Timed<never> = { kind: 'failed' };
const LATE: Timed<never> = { kind: 'late' };

/** A store's Redis connection, when it is Redis-backed (the stores expose it as `redis`); none for memory stores. */
export function redisOf(store: object | undefined): Redis | Cluster | undefined {
  return store && 'redis' in store ? (store.redis as Redis | Cluster) : undefined;
}

/** A Redis-backed store's health check for the idle probe (PING on its own connection); none for memory stores. */
export function redisPing(store: object | undefined): (() => Promise<unknown>) | undefined {
  const redis = redisOf(store);
  return redis ? () => redis.ping() : undefined;
}

export class StoreGuard {
  private readonly breaker: CircuitBreaker;
  private readonly warning: ThrottledWarning;
  /** When the breaker opened: the recovery line says how long the store was away. */
  private openedAt = 0;
  /** performance.now() of the last request that asked (allows()): real time, as the probe's timer is. */
  private lastAsked = performance.now();
  private probeTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    /** The log event of a failure, e.g. `cache.store_failed`; its recovery is logged as `cache.store_recovered`. */
    private readonly event: string,
    log: Logger,
    now: () => number,
    /** Told when the breaker opens (degraded) or closes. */
    onChange: (open: boolean) => void,
    /**
     * The store's own health check. Only a request's trial call closes the breaker, so after an outage that ended
     * while no traffic came (a night's lull) the degraded gauge stayed 1, and its alert paging, until the next
     * request. With a probe, a breaker open with no request asking for IDLE_PROBE_MS tries it instead.
     */
    private readonly probe?: () => Promise<unknown>,
  ) {
    // The failure lines stop when the store is back, and silence alone does not say it is: the end of the
    // degraded mode is one line of its own (as the ledger's sink_failed has its sink_recovered).
    const recovered = event.replace(/_failed$/, '_recovered');
    this.breaker = new CircuitBreaker(now, (open) => {
      if (open) {
        this.openedAt = now();
        this.armProbe();
      } else log.info({ event: recovered, degraded_ms: now() - this.openedAt });
      onChange(open);
    });
    this.warning = new ThrottledWarning(log, FAILURE_LOG_INTERVAL_MS, now);
  }

  /** Open: the store is taken for down. Unlike allows(), asking never takes the trial call of an open breaker. */
  get isOpen(): boolean {
    return this.breaker.isOpen;
  }

  allows(): boolean {
    this.lastAsked = performance.now();
    return this.breaker.allows();
  }

  /** Stops the idle probe (the store is closing). */
  close(): void {
    this.closed = true;
    clearTimeout(this.probeTimer);
  }

  private armProbe(): void {
    if (!this.probe || this.closed || this.probeTimer) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      this.idleProbe();
    }, IDLE_PROBE_MS).unref();
  }

  private idleProbe(): void {
    const probe = this.probe;
    if (!probe || this.closed || !this.breaker.isOpen) return;
    // Requests still asking make their own trial calls, one per cooldown; the probe stays out of their way.
    if (performance.now() - this.lastAsked < IDLE_PROBE_MS || !this.breaker.allows()) return this.armProbe();
    Promise.resolve()
      .then(probe)
      .then(
      () => {
        if (!this.closed) this.succeeded();
      },
      (err: unknown) => {
        if (this.closed) return;
        this.failed('probe', err, undefined);
        this.armProbe();
      },
    );
  }

  succeeded(): void {
    this.breaker.succeeded();
  }

  /**
   * A store call raced against `ms`, and counted by the breaker: an answer in time is a success; a failure, or no
   * answer in time, is a failure, and an answer that comes after the deadline is not counted at all. A store that
   * answers every call a little late (a loaded Redis at 40 ms against the cache's 30 ms deadline) used to cost
   * every request the whole deadline for nothing, and each late answer counted as a success, so the breaker never
   * opened. Like every I/O deadline here, an answer already waiting to be read when the time is up still counts.
   */
  timed<R>(call: Promise<R>, ms: number, op: string, settings: BreakerSettings): Promise<Timed<R>> {
    return new Promise((resolve) => {
      let decided = false;
      const cancel = setDeadline(ms, () => {
        decided = true;
        this.failed(op, new Error(`no answer within its ${ms} ms deadline`), settings);
        resolve(LATE);
      });
      call.then(
        (value) => {
          if (decided) return;
          decided = true;
          cancel();
          this.succeeded();
          resolve({ kind: 'answered', value });
        },
        (err: unknown) => {
          if (decided) return;
          decided = true;
          cancel();
          this.failed(op, err, settings);
          resolve(FAILED);
        },
      );
    });
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
