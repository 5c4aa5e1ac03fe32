// Config of routing: which paths are read and classified, and where Responses API turns that keep state on the
// backend go (statefulTier, response affinity; README "Responses API").
import { z } from 'zod';
import { breakerSchema, redisStoreSchema } from './redis-schema.js';

const positiveInt = z.number().int().positive();

export const routingSchema = z
  .strictObject({
    /** Model names that ask tiergate to classify. Any model that is neither alias nor tier model is classified too. */
    autoModels: z.array(z.string().min(1)).default(['auto']),
    /**
     * Paths whose bodies are read, limited, routed and accounted; chat and completions requests are also
     * classified, and so is a Responses API turn that keeps no state on the backend (see statefulTier).
     */
    classifyPaths: z.array(z.string().startsWith('/')).default(['/v1/chat/completions', '/v1/completions', '/v1/responses']),
    /**
     * Where a Responses API turn asking for an auto model goes when it keeps state on the backend (stored, a
     * previous_response_id or conversation, background): every such turn of a conversation must reach the
     * backend holding it, so these are not classified. Default: the first tier listed.
     */
    statefulTier: z.string().optional(),
    /**
     * Response affinity: tiergate remembers which tier answered each stored Responses API response, so a
     * continuation (previous_response_id) goes there, and a new stored turn can be classified. off: every
     * stateful turn goes to statefulTier. memory: one replica only. redis: shared by replicas.
     */
    affinity: z
      .strictObject({
        store: z.enum(['off', 'memory', 'redis']).default('off'),
        redis: redisStoreSchema('tiergate:affinity:').optional(),
        /** How long a response's tier is remembered; match the backend's response retention. */
        ttlSeconds: positiveInt.default(30 * 24 * 3600),
        /**
         * How long a sealed item's tier and owner are kept (reasoning or a compaction a later turn sends back): a
         * session's life, not the backend's retention. One sent back after that is classified afresh (and refused
         * under isolation strict). Each costs ~330 bytes of Redis.
         */
        sealedTtlSeconds: positiveInt.default(7 * 24 * 3600),
        /** Memory store: responses remembered per instance; past it, the tenant holding the most loses its least recently used. */
        maxEntries: positiveInt.default(100_000),
        /** A lookup or write slower than this is abandoned: the turn goes to statefulTier, or unremembered. */
        deadlineMs: positiveInt.default(30),
        /**
         * Whether a tenant may use a response or conversation id another tenant made (its backends hold every
         * tenant's under one credential). known: an id another tenant holds is answered as not found;
         * strict: so is one tiergate has no record of (expired, stored before, or elsewhere), and while the
         * store cannot say, 503; off: ids are not checked.
         */
        isolation: z.enum(['off', 'known', 'strict']).default('known'),
        breaker: breakerSchema,
      })
      .prefault({}),
    /**
     * The model list (OpenAI's GET /v1/models and /v1/models/{id}), answered by tiergate when `serve` is on: the
     * auto models, aliases and tier models the caller's tenant may put in `model`, which is what a client's model
     * picker should offer behind the gateway. Off by default: the path goes to a backend like any non-LLM path,
     * and lists that backend's own models.
     */
    models: z
      .strictObject({
        serve: z.boolean().default(false),
        path: z.string().startsWith('/').default('/v1/models'),
      })
      .prefault({}),
    /** Paths routed without classification: to a fixed tier, or with no tier header when tier is absent. */
    unclassifiedPaths: z
      .record(z.string().startsWith('/'), z.strictObject({ tier: z.string().optional() }))
      .default({ '/v1/embeddings': {} }),
  })
  .prefault({});
