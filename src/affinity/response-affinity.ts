// Response affinity: which tier answered each stored Responses API response, so that a turn continuing it
// (previous_response_id), or a request about it (GET /v1/responses/{id}), reaches the backend that holds it.
// Keys are scoped by tenant: one tenant's ids never steer another's requests. It fails open: a store that is
// down or slow gives no answer (the turn goes to routing.statefulTier) and a lost write is a later miss.
import type { Config } from '../config/schema.js';
import type { AffinityStore } from '../stores/affinity-store.js';
import { withDeadline } from '../deadline-timer.js';
import { MemoryAffinityStore } from '../stores/memory/affinity-store.js';
import { RedisAffinityStore } from '../stores/redis/affinity-store.js';
import { StoreGuard } from '../stores/store-guard.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';

export type AffinityConfig = Config['routing']['affinity'];

/** The configured store, or none when affinity is off. Built once from the startup config, like the others. */
export function createAffinityStore(cfg: AffinityConfig, now?: () => number): AffinityStore | undefined {
  if (cfg.store === 'redis' && cfg.redis) return new RedisAffinityStore(cfg.redis);
  if (cfg.store === 'memory') return new MemoryAffinityStore(cfg.maxEntries, now);
  return undefined;
}

/**
 * Response ids are short (OpenAI's and vLLM's are ~50 characters); a client-sent previous_response_id or path is
 * not looked up beyond this, so nobody can make tiergate build or send megabyte keys.
 */
const MAX_ID_LENGTH = 256;

/** What a call came to, for the metric, and its value. */
type Outcome<T> = [result: 'hit' | 'miss' | 'stored' | 'failed' | 'deadline', value: T | undefined];
const LATE: Outcome<never> = ['deadline', undefined];

export class ResponseAffinity {
  private readonly guard: StoreGuard;

  constructor(
    readonly store: AffinityStore | undefined,
    private readonly prefix: string,
    private readonly metrics: Metrics,
    log: Logger,
    now: () => number = Date.now,
  ) {
    this.guard = new StoreGuard('affinity.store_failed', log, now, (open) => metrics.affinityStoreDegraded.set(open ? 1 : 0));
  }

  /** Off unless the startup config named a store (and the live config still has it on). */
  on(cfg: AffinityConfig): boolean {
    return this.store !== undefined && cfg.store !== 'off';
  }

  /** The tier remembered for this tenant's response; undefined when unknown, or when the store fails or is slow. */
  lookup(tenant: string, responseId: string, cfg: AffinityConfig): string | undefined | Promise<string | undefined> {
    return this.call('lookup', tenant, responseId, cfg, (store, key) => store.get(key), (tier) => [tier ? 'hit' : 'miss', tier]);
  }

  /**
   * Remembers the tier of a response; the promise (if any) settles once stored or given up, never rejects. The
   * caller holds the answer that carries the response id until then, so the client cannot continue the
   * conversation before its tier is known.
   */
  remember(tenant: string, responseId: string, tier: string, cfg: AffinityConfig): void | Promise<void> {
    const r = this.call('remember', tenant, responseId, cfg, (store, key) => store.set(key, tier, cfg.ttlSeconds * 1000, tenant), (): Outcome<never> => ['stored', undefined]);
    return r instanceof Promise ? r.then(() => undefined) : undefined;
  }

  async close(): Promise<void> {
    await this.store?.close();
  }

  /** Hash-tagged by tenant, as the cache's keys are: on a Redis Cluster a tenant's entries share a slot. */
  private key(tenant: string, responseId: string): string {
    return `${this.prefix}{t:${tenant}}:${responseId}`;
  }

  /**
   * One store call, the same way for both operations: ids too long to be real are not sent, a store known to be
   * down is not called, a failure or a throw is the breaker's, a slow answer is abandoned at the deadline, and
   * the outcome is counted once.
   */
  private call<R, V>(
    op: 'lookup' | 'remember',
    tenant: string,
    responseId: string,
    cfg: AffinityConfig,
    run: (store: AffinityStore, key: string) => R | Promise<R>,
    outcome: (r: R) => Outcome<V>,
  ): V | undefined | Promise<V | undefined> {
    const store = this.store;
    if (responseId.length > MAX_ID_LENGTH) return this.counted(op, [op === 'lookup' ? 'miss' : 'failed', undefined]);
    if (!store || !this.guard.allows()) return this.counted(op, ['failed', undefined]);
    let got: R | Promise<R>;
    try {
      got = run(store, this.key(tenant, responseId));
    } catch (err) {
      return this.counted(op, this.failed(op, err, cfg));
    }
    if (!(got instanceof Promise)) return this.counted(op, outcome(got));
    const answer = got.then(
      (r) => {
        this.guard.succeeded();
        return outcome(r);
      },
      (err: unknown): Outcome<V> => this.failed(op, err, cfg),
    );
    return withDeadline(answer, cfg.deadlineMs, LATE as Outcome<V>).then((o) => this.counted(op, o));
  }

  private failed(op: 'lookup' | 'remember', err: unknown, cfg: AffinityConfig): Outcome<never> {
    this.guard.failed(op, err, cfg.breaker);
    return ['failed', undefined];
  }

  /** Counted once per call, by what the caller got (a store answering after the deadline is not counted again). */
  private counted<T>(op: 'lookup' | 'remember', [result, value]: Outcome<T>): T | undefined {
    this.metrics.responseAffinity.inc({ op, result });
    return value;
  }
}
