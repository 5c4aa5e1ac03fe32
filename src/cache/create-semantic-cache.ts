// The semantic cache as configured: the embedder (local model or endpoint) and the vector index on the same
// store as the exact cache. Both are chosen at startup, like the stores: changing them needs a restart.
import type { Config } from '../config/schema.js';
import type { CacheStore } from '../stores/cache-store.js';
import { MemoryVectorIndex } from '../stores/memory/vector-index.js';
import { AutoRedisVectorIndex } from '../stores/redis/auto-vector-index.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { Embedder } from './embedders/embedder.js';
import { LocalEmbedder } from './embedders/local-embedder.js';
import { OpenAiEmbedder } from './embedders/openai-embedder.js';
import { SemanticCache } from './semantic-cache.js';

export function createEmbedder(cfg: Config['cache']['semantic']['embedder'], env: NodeJS.ProcessEnv = process.env): Embedder {
  if (cfg.type === 'openai') return new OpenAiEmbedder({ url: cfg.url, model: cfg.model, apiKey: cfg.apiKeyEnv ? env[cfg.apiKeyEnv] : undefined, timeoutMs: cfg.timeoutMs, maxConcurrency: cfg.maxConcurrency });
  return new LocalEmbedder();
}

export function createSemanticCache(config: Config, store: CacheStore, metrics: Metrics, log: Logger, now?: () => number, embedder?: Embedder): SemanticCache {
  const c = config.cache;
  const index = c.store === 'redis' && c.redis
    ? new AutoRedisVectorIndex(c.redis, now, (mode) => log.info({ event: 'cache.vector_index', mode: mode === 'search' ? 'redis vector search (FT.SEARCH)' : 'buckets on plain Redis' }))
    : new MemoryVectorIndex(now, c.maxEntries);
  return new SemanticCache(embedder ?? createEmbedder(c.semantic.embedder), index, store, metrics, log, now);
}

/** Whether any plan or tenant turns the semantic cache on. */
export function usesSemantic(config: Config): boolean {
  return [...Object.values(config.plans), ...Object.values(config.tenants)].some((p) => p.cache?.mode === 'semantic');
}
