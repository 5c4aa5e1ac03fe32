// The response cache's service: scoped store keys, lookups bounded by a deadline and a circuit breaker, and
// stores after the response, off the answer path. It fails open: a store that is down or slow turns a lookup
// into a bypass (or a miss past the deadline) and the request goes upstream. Missed deadlines count toward the
// breaker as failures do.
import type { Config } from '../config/schema.js';
import type { CacheEntry, CacheStore } from '../stores/cache-store.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { StoreGuard, redisPing } from '../stores/store-guard.js';

export type LookupResult =
  | { result: 'hit'; entry: CacheEntry }
  | { result: 'miss'; reason: 'not_found' | 'deadline' }
  | { result: 'bypass'; reason: 'store_down' | 'store_error' };

const MISS: LookupResult = { result: 'miss', reason: 'not_found' };
const DEADLINE: LookupResult = { result: 'miss', reason: 'deadline' };
const DOWN: LookupResult = { result: 'bypass', reason: 'store_down' };
const ERROR: LookupResult = { result: 'bypass', reason: 'store_error' };

export class ResponseCache {
  private readonly guard: StoreGuard;

  constructor(
    readonly store: CacheStore,
    private readonly prefix: string,
    private readonly metrics: Metrics,
    log: Logger,
    now: () => number = Date.now,
  ) {
    this.guard = new StoreGuard('cache.store_failed', log, now, (open) => metrics.cacheStoreDegraded.set({ part: 'exact' }, open ? 1 : 0), redisPing(store));
  }

  /** Hash-tagged by tenant: on a Redis Cluster a tenant's entries share a slot, and the key names its owner. */
  storeKey(tenant: string, kind: 'x', key: string): string {
    return `${this.prefix}{t:${tenant}}:${kind}:${key}`;
  }

  lookup(storeKey: string, cfg: Config['cache']): LookupResult | Promise<LookupResult> {
    if (!this.guard.allows()) return this.counted(DOWN);
    let got: ReturnType<CacheStore['get']>;
    try {
      got = this.store.get(storeKey);
    } catch (err) {
      return this.counted(this.failed('get', err, cfg));
    }
    if (!(got instanceof Promise)) return this.counted(got ? { result: 'hit', entry: got } : MISS);
    return this.guard.timed(got, cfg.lookupDeadlineMs, 'get', cfg.breaker).then((t) => {
      if (t.kind === 'late') return this.counted(DEADLINE);
      if (t.kind === 'failed') return this.counted(ERROR);
      return this.counted(t.value ? { result: 'hit', entry: t.value } : MISS);
    });
  }

  /**
   * After the response: never throws, never blocks a request. A failed write counts toward the breaker, but a
   * write that succeeds does not close it or clear the failures before it: the breaker judges whether lookups,
   * which requests wait on, are answered in time, and a write says nothing about that. (A Redis answering every
   * call 40 ms late, against a 30 ms lookup deadline, had each request's write clear its lookup's failure, so the
   * breaker never opened.) Nor does a write take the trial call of an open breaker: a lookup does.
   */
  save(tenant: string, storeKey: string, entry: CacheEntry, ttlMs: number, cfg: Config['cache']): void {
    if (this.guard.isOpen) {
      this.metrics.cacheWrites.inc({ result: 'failed' });
      return;
    }
    const done = (evicted: number) => {
      this.metrics.cacheWrites.inc({ result: 'stored' });
      if (evicted > 0) this.metrics.cacheEvictions.inc({ kind: 'exact' }, evicted);
    };
    const fail = (err: unknown) => {
      this.failed('set', err, cfg);
      this.metrics.cacheWrites.inc({ result: 'failed' });
    };
    try {
      const r = this.store.set(storeKey, entry, ttlMs, tenant);
      if (r instanceof Promise) r.then(done, fail);
      else done(r);
    } catch (err) {
      fail(err);
    }
  }

  async close(): Promise<void> {
    this.guard.close();
    await this.store.close();
  }

  private failed(op: 'get' | 'set', err: unknown, cfg: Config['cache']): LookupResult {
    this.guard.failed(op, err, cfg.breaker);
    return ERROR;
  }

  private counted(r: LookupResult): LookupResult {
    this.metrics.cacheLookups.inc({ kind: 'exact', result: r.result, reason: r.result === 'hit' ? 'found' : r.reason });
    return r;
  }
}
