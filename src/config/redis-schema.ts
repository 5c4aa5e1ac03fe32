// The Redis connection a store on the request path uses (budgets, the cache, response affinity), and the circuit
// breaker in front of it: one shape, one set of defaults each.
import { z } from 'zod';

const positiveInt = z.number().int().positive();

/** A Redis that a store on the request path uses. */
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


/** The circuit breaker in front of a shared store (StoreGuard): when it opens and how long it stays open. */
export const breakerSchema = z
  .strictObject({
    /** Consecutive store failures that open the circuit. */
    failures: positiveInt.default(3),
    /** How long it stays open before one trial request. */
    cooldownMs: positiveInt.default(2000),
  })
  .prefault({});
