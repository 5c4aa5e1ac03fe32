// Redis TTL store: one string per key, expiring by itself (SET PX), shared by every replica on the same Redis;
// memory is bounded by the TTL and Redis's own maxmemory policy. A call never waits for a reconnect: it fails
// at once and the caller's rule applies (the cache and affinity both fail open).
import type { Cluster, Redis } from 'ioredis';
import type { TtlStore } from '../ttl-store.js';
import { connectRedis, connectionState, type RedisConnectOptions } from './connect.js';

/** How a value is kept in its Redis string; `decode` gives undefined for a damaged value (read as absent). */
export interface Codec<V> {
  encode(value: V): string;
  decode(text: string): V | undefined;
}

export class RedisTtlStore<V> implements TtlStore<V> {
  readonly kind = 'redis';
  readonly redis: Redis | Cluster;

  constructor(
    opts: RedisConnectOptions,
    private readonly codec: Codec<V>,
    /** Names the store in errors, e.g. "cache store". */
    private readonly name: string,
  ) {
    this.redis = connectRedis(opts);
  }

  async get(key: string): Promise<V | undefined> {
    this.ready();
    const v = await this.redis.get(key);
    return v === null ? undefined : this.codec.decode(v);
  }

  /** Redis keeps no per-owner count here (the cache store does: cache-store.ts), so nothing is removed. */
  async set(key: string, value: V, ttlMs: number, _owner?: string): Promise<number> {
    this.ready();
    await this.redis.set(key, this.codec.encode(value), 'PX', Math.max(1, Math.round(ttlMs)));
    return 0;
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }

  protected ready(): void {
    if (this.redis.status !== 'ready') throw new Error(`${this.name} not connected (${connectionState(this.redis)})`);
  }
}
