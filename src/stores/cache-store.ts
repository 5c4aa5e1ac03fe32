// The response cache's store: answers by exact key, each with a time to live. One interface, a memory and a
// Redis implementation, one contract suite (test/contract/cache-store.test.ts).
import type { CachedAnswer } from '../cache/answer.js';

export interface CacheEntry {
  answer: CachedAnswer;
  /** When it was stored (ms since epoch). */
  storedAt: number;
}

export interface CacheStore {
  readonly kind: 'memory' | 'redis';
  /**
   * `key` is already scoped: it starts with the tenant's prefix and its hash covers tenant and namespace.
   * The memory store answers synchronously, so a hit costs no event-loop turn.
   */
  get(key: string): CacheEntry | undefined | Promise<CacheEntry | undefined>;
  set(key: string, entry: CacheEntry, ttlMs: number): void | Promise<void>;
  close(): Promise<void>;
}
