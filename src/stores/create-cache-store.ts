// The configured cache store. Redis connects here, when the app is assembled, never on import.
import type { Config } from '../config/schema.js';
import type { CacheStore } from './cache-store.js';
import { MemoryCacheStore } from './memory/cache-store.js';
import { RedisCacheStore } from './redis/cache-store.js';

export function createCacheStore(cfg: Config['cache'], now?: () => number): CacheStore {
  if (cfg.store === 'redis' && cfg.redis) return new RedisCacheStore(cfg.redis, cfg.redis.maxEntriesPerTenant);
  return new MemoryCacheStore(cfg.maxEntries, cfg.maxBytes, now);
}
