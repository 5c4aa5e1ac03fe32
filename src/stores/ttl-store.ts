// A store of values by key, each with a time to live: what the response cache (answers) and response affinity
// (tiers) keep. One interface, a memory and a Redis implementation; each use names its own value type.
export interface TtlStore<V> {
  readonly kind: 'memory' | 'redis';
  /** The memory store answers synchronously, so a hit costs no event-loop turn. */
  get(key: string): V | undefined | Promise<V | undefined>;
  /**
   * `owner` is the tenant the entry belongs to: past its bounds the memory store takes entries from the tenant
   * holding the most (memory/ttl-store.ts); the Redis cache store keeps each tenant within its cap
   * (redis/cache-store.ts). Resolves to how many other entries were removed to make room (0 when none, and for
   * a store that keeps no count: the Redis affinity store, which its maxmemory policy bounds).
   */
  set(key: string, value: V, ttlMs: number, owner: string): number | Promise<number>;
  close(): Promise<void>;
}
