// Storing a cache miss's answer (and its question's vector) once its response has ended whole. It runs on the
// answer path, at the response's end (LlmStream), so it must never throw: an exception there would reach the
// transport's failure rule, and the client would get a 500 in place of the answer it was about to receive.
import type { Config } from '../config/schema.js';
import type { CacheEntry } from '../stores/cache-store.js';
import { FAILURE_LOG_INTERVAL_MS, ThrottledWarning } from '../telemetry/throttled-log.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { ResponseCache } from './response-cache.js';
import type { PendingSeed, SemanticCache } from './semantic-cache.js';

/** What a miss leaves to store: its key and TTL, its vector's seed, and the entry (null: the answer is not fit). */
export interface AnswerToStore {
  storeKey: string;
  ttlMs: number;
  semantic?: PendingSeed;
  entry: CacheEntry | null;
}

export type StoreAnswer = (tenant: string, save: AnswerToStore, cfg: Config['cache']) => void;

/**
 * The exact entry is a synchronous write to the memory store or a command sent to Redis, not awaited; the vector
 * goes to the semantic index the same way. A miss whose answer was not fit is counted as such.
 */
export function answerStore(cache: ResponseCache, semantic: () => SemanticCache | undefined, metrics: Metrics, log: Logger, now: () => number = Date.now): StoreAnswer {
  const warning = new ThrottledWarning(log, FAILURE_LOG_INTERVAL_MS, now);
  return (tenant, save, cfg) => {
    try {
      if (!save.entry) {
        metrics.cacheWrites.inc({ result: 'not_storable' });
        return;
      }
      cache.save(tenant, save.storeKey, save.entry, save.ttlMs, cfg);
      // The vector points at the exact entry just stored: a semantic hit reads the answer from there.
      if (save.semantic) semantic()?.add(tenant, save.semantic, save.storeKey, save.ttlMs, cfg.semantic);
    } catch (err) {
      // A bug, not a store that is down (the stores' failures are caught and counted where they happen).
      metrics.cacheWrites.inc({ result: 'failed' });
      warning.warn({ event: 'cache.store_answer_failed', error: err instanceof Error ? err.message : String(err) });
    }
  };
}
