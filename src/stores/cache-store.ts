// The response cache's store: answers by exact key, each with a time to live. One interface, a memory and a
// Redis implementation, one contract suite (test/contract/cache-store.test.ts).
import type { CachedAnswer } from '../cache/answer.js';
import type { TtlStore } from './ttl-store.js';

export interface CacheEntry {
  answer: CachedAnswer;
  /** When it was stored (ms since epoch). */
  storedAt: number;
}

/**
 * Keys are already scoped: each starts with the tenant's prefix and its hash covers tenant and namespace.
 */
export type CacheStore = TtlStore<CacheEntry>;
