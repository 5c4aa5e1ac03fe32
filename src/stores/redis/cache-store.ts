// Redis cache store: one JSON string per entry (RedisTtlStore). A damaged entry reads as a miss and is
// overwritten by the next store.
import type { CacheEntry } from '../cache-store.js';
import type { RedisConnectOptions } from './connect.js';
import { RedisTtlStore } from './ttl-store.js';

const JSON_ENTRY = {
  encode: (e: CacheEntry) => JSON.stringify(e),
  decode(text: string): CacheEntry | undefined {
    try {
      return JSON.parse(text) as CacheEntry;
    } catch {
      return undefined;
    }
  },
};

export class RedisCacheStore extends RedisTtlStore<CacheEntry> {
  constructor(opts: RedisConnectOptions) {
    super(opts, JSON_ENTRY, 'cache store');
  }
}
