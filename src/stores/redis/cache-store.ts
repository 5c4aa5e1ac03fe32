// Redis cache store: one string per entry (JSON), expiring by itself (SET PX). Shared by every tiergate
// replica on the same Redis; memory is bounded by the TTL and Redis's own maxmemory policy.
import type { Cluster, Redis } from 'ioredis';
import type { CacheEntry, CacheStore } from '../cache-store.js';
import { connectRedis, type RedisConnectOptions } from './connect.js';

export class RedisCacheStore implements CacheStore {
  readonly kind = 'redis';
  readonly redis: Redis | Cluster;

  constructor(opts: RedisConnectOptions) {
    this.redis = connectRedis(opts);
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    // A lookup never waits for a reconnect: the cache is optional, and the request goes upstream at once.
    if (this.redis.status !== 'ready') throw new Error(`cache store not connected (${this.redis.status})`);
    const v = await this.redis.get(key);
    if (v === null) return undefined;
    try {
      return JSON.parse(v) as CacheEntry;
    } catch {
      return undefined; // a damaged entry is a miss, and will be overwritten
    }
  }

  async set(key: string, entry: CacheEntry, ttlMs: number): Promise<void> {
    // Nor does a store: the answer is already on its way; a lost entry is only a later miss.
    if (this.redis.status !== 'ready') throw new Error(`cache store not connected (${this.redis.status})`);
    await this.redis.set(key, JSON.stringify(entry), 'PX', Math.max(1, Math.round(ttlMs)));
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
