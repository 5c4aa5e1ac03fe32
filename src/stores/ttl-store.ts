// A store of values by key, each with a time to live: what the response cache (answers) and response affinity
// (tiers) keep. One interface, a memory and a Redis implementation; each use names its own value type.
export interface TtlStore<V> {
  readonly kind: 'memory' | 'redis';
  /** The memory store answers synchronously, so a hit costs no event-loop turn. */
  get(key: string): V | undefined | Promise<V | undefined>;
  set(key: string, value: V, ttlMs: number): void | Promise<void>;
  close(): Promise<void>;
}
