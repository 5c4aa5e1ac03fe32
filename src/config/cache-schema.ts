// Config of the response cache: where entries live and how long a lookup may take (the `cache` section), and
// what each tenant's policy allows (the `cache` field of a plan or tenant).
import { z } from 'zod';
import { breakerSchema, redisStoreSchema } from './redis-schema.js';

const positiveInt = z.number().int().positive();

/** The conservative default: chosen from bench/semantic-cache.ts (README "Semantic cache precision"). */
export const DEFAULT_SEMANTIC_THRESHOLD = 0.98;

/** Per plan or tenant; fields layer like the other policy fields (tenant over plan over "*"). */
export const cachePolicySchema = z.strictObject({
  /** off: never; exact: identical requests; semantic: also a near-duplicate last question in the same context. */
  mode: z.enum(['off', 'exact', 'semantic']).optional(),
  ttlSeconds: positiveInt.optional(),
  /** Whether requests that carry tools (or functions) may be answered from, and stored in, the cache. */
  toolRequests: z.boolean().optional(),
  /** Bump it (any new string) to invalidate every entry of the tenant, e.g. after a knowledge-base update. */
  namespace: z.union([z.string().min(1), z.number()]).transform(String).optional(),
  /** Semantic similarity needed for a hit (cosine); never below cache.semantic.minThreshold. */
  threshold: z.number().gt(0).lte(1).optional(),
});

const semanticSchema = z
  .strictObject({
    embedder: z
      .discriminatedUnion('type', [
        /** Universal Sentence Encoder lite, in-process (English only): the embedded default. */
        z.strictObject({ type: z.literal('local') }),
        /** Any OpenAI-compatible /v1/embeddings endpoint, e.g. a multilingual model on vLLM or TEI. */
        z.strictObject({
          type: z.literal('openai'),
          url: z.string().regex(/^https?:\/\//, 'expected an http(s) URL up to /v1'),
          model: z.string().min(1),
          apiKeyEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/).optional(),
          timeoutMs: positiveInt.default(40),
          /** POSTs under way at a time; 4 questions a POST may wait beyond them (README "Semantic cache"). */
          maxConcurrency: positiveInt.max(1024).default(32),
        }),
      ])
      .prefault({ type: 'local' }),
    threshold: z.number().gt(0).lte(1).default(DEFAULT_SEMANTIC_THRESHOLD),
    /** The operator's floor: no tenant's threshold may be lower. */
    minThreshold: z.number().gt(0).lte(1).default(0.85),
    /** Content words must match too (README "Semantic cache"): keep on unless the embedder alone is precise enough. */
    lexicalGuard: z.boolean().default(true),
    maxEntriesPerPartition: positiveInt.default(10_000),
    /** Embedding, search and fetch together; past it the request proceeds as a miss. */
    lookupDeadlineMs: positiveInt.default(60),
    /**
     * Longer questions skip the semantic half (the exact one still applies): their guards run on the event loop
     * (~110 ms for 1 MB) and their embedding holds the embedder, while a long text near-duplicated is rare.
     */
    maxQuestionChars: positiveInt.default(4096),
  })
  .prefault({});

export const cacheSchema = z
  .strictObject({
    store: z.enum(['memory', 'redis']).default('memory'),
    redis: redisStoreSchema('tiergate:cache:')
      .extend({
        /**
         * Answers kept per tenant; past it, the tenant's entries that expire soonest make room. Redis's own eviction
         * is one LRU for every tenant: without this, one tenant's stream of one-off answers pushes the others out.
         */
        maxEntriesPerTenant: positiveInt.default(10_000),
      })
      .optional(),
    /** A lookup slower than this is abandoned and the request proceeds as a miss (well inside Envoy's 200 ms). */
    lookupDeadlineMs: positiveInt.default(30),
    /** Memory store: entries kept per instance; past it, the tenant holding the most loses its least recently used. */
    maxEntries: positiveInt.default(10_000),
    /**
     * Memory store: what its answers may take of the heap together, estimated high (two bytes per character);
     * past it, the tenant holding the most bytes loses its least recently used. Keeps long answers from outgrowing a
     * pod's heap whatever maxEntries.
     */
    maxBytes: positiveInt.default(64 * 1024 * 1024),
    /** Answers longer than this (characters of content, reasoning, refusals and tool arguments) are not stored. */
    maxAnswerChars: positiveInt.default(256 * 1024),
    /** TTL when the tenant's policy sets none. */
    defaultTtlSeconds: positiveInt.default(3600),
    breaker: breakerSchema,
    semantic: semanticSchema,
  })
  .prefault({});

export type CachePolicyConfig = z.infer<typeof cachePolicySchema>;
