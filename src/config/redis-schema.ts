// The Redis connection a store on the request path uses (budgets, the cache): one shape, one set of defaults.
import { z } from 'zod';

const positiveInt = z.number().int().positive();

/** A Redis that a store on the request path uses (budgets, the cache). */
export function redisStoreSchema(keyPrefix: string) {
  return z.strictObject({
    url: z.string().regex(/^rediss?:\/\//, 'expected redis:// or rediss:// URL'),
    /** A Redis Cluster, `url` being one of its nodes (README "Stores: memory or Redis"). */
    cluster: z.boolean().default(false),
    keyPrefix: z.string().default(keyPrefix),
    // Both well inside Envoy's ext_proc message_timeout: a slow Redis must not stall the request.
    connectTimeoutMs: positiveInt.default(50),
    commandTimeoutMs: positiveInt.default(50),
  });
}

