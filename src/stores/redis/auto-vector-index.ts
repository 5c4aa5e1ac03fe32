// The Redis vector index, chosen by what the server can do: its own vector search when it has it (Redis 8, Redis
// Stack, standalone), else buckets in plain data structures (stock Redis 7, or a Cluster). Decided on first use;
// `mode` says which (the /metrics info gauge and the startup log show it).
import type { Cluster, Redis } from 'ioredis';
import type { VectorEntry, VectorIndex, VectorMatch } from '../vector-index.js';
import { connectRedis, connectionState, type RedisConnectOptions } from './connect.js';
import { RedisSearchVectorIndex, hasVectorSearch } from './search-vector-index.js';
import { RedisVectorIndex } from './vector-index.js';

export class AutoRedisVectorIndex implements VectorIndex {
  readonly kind = 'redis';
  readonly redis: Redis | Cluster;
  mode: 'pending' | 'search' | 'buckets' = 'pending';
  private chosen: Promise<VectorIndex> | undefined;

  constructor(
    private readonly opts: RedisConnectOptions & { keyPrefix: string; maxEntriesPerTenant?: number },
    private readonly now: () => number = Date.now,
    private readonly onChosen: (mode: 'search' | 'buckets') => void = () => undefined,
  ) {
    this.redis = connectRedis(opts);
  }

  private index(): Promise<VectorIndex> {
    if (this.chosen) return this.chosen;
    if (this.redis.status !== 'ready') return Promise.reject(new Error(`vector index not connected (${connectionState(this.redis)})`));
    const pick = async (): Promise<VectorIndex> => {
      const search = !this.opts.cluster && (await hasVectorSearch(this.redis as Redis));
      this.mode = search ? 'search' : 'buckets';
      this.onChosen(this.mode);
      const cap = this.opts.maxEntriesPerTenant;
      return search ? new RedisSearchVectorIndex(this.redis as Redis, this.opts.keyPrefix, this.now, cap) : new RedisVectorIndex(this.redis, this.opts.keyPrefix, this.now, cap);
    };
    this.chosen = pick();
    // A failed probe (connection lost mid-way) is retried on the next call.
    this.chosen.catch(() => (this.chosen = undefined));
    return this.chosen;
  }

  async search(tenant: string, partition: string, buckets: readonly string[], vector: Float32Array, minScore: number, limit: number): Promise<VectorMatch[]> {
    return (await this.index()).search(tenant, partition, buckets, vector, minScore, limit);
  }

  async add(tenant: string, partition: string, buckets: readonly string[], entry: VectorEntry, ttlMs: number, maxEntries: number): Promise<number> {
    return (await this.index()).add(tenant, partition, buckets, entry, ttlMs, maxEntries);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
