// The config file's schema. Every key has a default, so an empty file (or none) is a working config;
// unknown keys are rejected so a typo never silently does nothing.
import { z } from 'zod';
import { versionSchema } from '../classify/rules-schema.js';
import { priceTableSchema } from '../usage/price-table.js';
import { DEFAULT_MAX_JSON_DEPTH } from '../llm/parse-request.js';
import { cacheSchema } from './cache-schema.js';
import { authSchema, budgetsSchema, planSchema, tenantSchema } from './policy-schema.js';
import { crossFieldChecks } from './cross-field-checks.js';
import { routingSchema } from './routing-schema.js';
import { FAILURE_RULES } from '../extproc/types.js';
import { HOST_PORT_EXPECTED, isHostPort } from '../host-port.js';

/** pino's levels: `logging.level`, and TIERGATE_LOG_LEVEL over it. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The redis sink's stream unless the config names one; `tiergate ledger rollup --redis` reads it without `--stream`. */
export const DEFAULT_LEDGER_STREAM = 'tiergate:ledger';

const hostPort = z.string().refine(isHostPort, `expected ${HOST_PORT_EXPECTED}`);

const tier = z.strictObject({
  /** The upstream model id written into the body's `model` and `x-llm-model`. */
  model: z.string().min(1),
  /** Env var holding the upstream API key; when set, it replaces the client's `authorization`. */
  credentialsEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/).optional(),
  /** Written to ledger rows (`provider`), e.g. "vllm" or "openai". */
  provider: z.string().min(1).default('openai-compatible'),
  /**
   * The backend schedules by the body's `priority` (vLLM with `--scheduling-policy priority`; lower runs first):
   * tiergate then writes the tenant's priority there, in place of whatever the client sent.
   */
  priorityScheduling: z.boolean().default(false),
  /**
   * The backend shares its prefix cache between requests (vLLM's automatic prefix caching): salt each tenant's
   * apart with the body's `cache_salt`, an HMAC of the tenant under the secret in this env var (the same on every
   * replica), so no tenant can time another's cached prompts. A client's own salt narrows it further.
   */
  cacheSaltSecretEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/).optional(),
  /**
   * The backend is a provider that acts on abuse by the end user named in `safety_identifier` (OpenAI; it stops
   * the organisation's access otherwise): send one per tenant, an HMAC of the tenant (and of the client's own
   * identifier, narrowing it to an end user) under the secret in this env var, on chat and Responses requests.
   */
  safetyIdentifierSecretEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/).optional(),
});

const sinkName = z.string().regex(/^[a-z0-9_-]+$/);
const ledgerSink = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('file'),
    name: sinkName.default('file'),
    /** ledger-YYYY-MM-DD.jsonl files, one per UTC day. */
    dir: z.string().min(1),
    fsyncIntervalMs: z.number().int().positive().default(1000),
  }),
  z.strictObject({
    type: z.literal('redis'),
    name: sinkName.default('redis'),
    url: z.string().regex(/^rediss?:\/\//, 'expected redis:// or rediss:// URL'),
    /** A Redis Cluster, `url` being one of its nodes. */
    cluster: z.boolean().default(false),
    stream: z.string().min(1).default(DEFAULT_LEDGER_STREAM),
    /** XADD MAXLEN ~ (approximate trimming). */
    maxLen: z.number().int().positive().default(1_000_000),
  }),
  z.strictObject({ type: z.literal('stdout'), name: sinkName.default('stdout') }),
]);

/** Placeholder prices for the embedded mock models; real deployments list their own. */
const EMBEDDED_PRICES = {
  version: 'embedded-defaults',
  models: {
    'weak-model': { input: 0.1, output: 0.4 },
    'strong-model': { input: 2.5, cachedInput: 1.25, output: 10 },
  },
};

const classifierCanarySchema = z
  .strictObject({
    version: z.string().min(1),
    /** Share of requests (by sticky key) the candidate decides, 0–100; change it with a config reload. */
    percent: z.number().min(0).max(100),
    /**
     * What keeps a request in or out of the cohort: the tenant; the conversation (its system prompt and first
     * user message, which every later turn repeats); or a request header (the conversation when absent).
     */
    stickyBy: z.enum(['tenant', 'conversation', 'header']).default('conversation'),
    header: z.string().toLowerCase().optional(),
  })
  .refine((c) => c.stickyBy !== 'header' || c.header !== undefined, { message: 'stickyBy "header" needs header', path: ['header'] });

const configShape = z
  .strictObject({
    server: z
      .strictObject({
        listen: hostPort.default('0.0.0.0:9002'),
        /**
         * TLS on the ext_proc listener (README "TLS between Envoy and tiergate"); absent: plaintext, for a
         * mesh that encrypts it, or a local stack.
         */
        tls: z
          .strictObject({
            certFile: z.string().min(1),
            keyFile: z.string().min(1),
            /** Envoy must present a client certificate signed by this CA (mutual TLS). */
            clientCaFile: z.string().min(1).optional(),
            /** How often the files are read again: a renewed certificate is served without a restart. */
            refreshSeconds: z.number().int().positive().default(60),
          })
          .optional(),
        admin: hostPort.default('0.0.0.0:9090'),
        /**
         * SIGTERM: how long tiergate goes on taking new streams after it reports not ready, so that Envoy (its
         * health checks) or Kubernetes (the endpoint's removal) stops sending them first. A stream refused while
         * Envoy still routes here is a 500 for its request (envoy-ext-proc.md §8, connect failure). 0 stops taking them at once.
         */
        drainDelayMs: z.number().int().nonnegative().default(5_000),
        /** SIGTERM: after the drain delay, how long in-flight streams may take before the server is forced down. */
        shutdownGraceMs: z.number().int().positive().default(10_000),
        /** Node ≥ 22.10 only (README "Envoy's stream-close pattern"). */
        http2StreamResetBurst: z.number().int().positive().default(1_000_000),
        http2StreamResetRate: z.number().int().positive().default(1_000_000),
      })
      .prefault({}),
    envoy: z
      .strictObject({
        /** Set to match the filter's allow_mode_override; tiergate only sends mode_override when true. */
        allowModeOverride: z.boolean().default(false),
        /** An unexpected processing error becomes a 500 OpenAI-shaped reply, or lets the request continue as is. */
        failureRule: z.enum(FAILURE_RULES).default('reply'),
      })
      .prefault({}),
    limits: z
      .strictObject({
        /** Request bodies above this answer 413 request_too_large. */
        maxRequestBodyBytes: z.number().int().positive().default(16 * 1024 * 1024),
        /**
         * Request bodies whose arrays and objects nest deeper than this (the body itself is level 1) answer 400
         * invalid_request. Real requests nest a dozen levels or so; at a few thousand, serialising the body again
         * would overflow the stack. At most 1,000, which every stage handles.
         */
        maxJsonDepth: z.number().int().min(2).max(1000).default(DEFAULT_MAX_JSON_DEPTH),
      })
      .prefault({}),
    logging: z
      .strictObject({
        level: z.enum(LOG_LEVELS).default('info'),
        /** Prompt text is never logged unless an operator turns this on. */
        logPrompts: z.boolean().default(false),
      })
      .prefault({}),
    tiers: z
      .record(z.string().regex(/^[a-z0-9_-]+$/), tier)
      .prefault({ weak: { model: 'weak-model' }, strong: { model: 'strong-model' } }),
    /** Model names clients may send that route straight to a tier (no classification). */
    aliases: z.record(z.string().min(1), z.string()).default({}),
    routing: routingSchema,
    ledger: z
      .strictObject({
        sinks: z.array(ledgerSink).default([{ type: 'file', name: 'file', dir: './tiergate-ledger', fsyncIntervalMs: 1000 }]),
        /** Rows a sink could not take wait here, on disk, until it recovers (also across restarts). */
        spoolDir: z.string().min(1).default('./tiergate-ledger/spool'),
        queueSize: z.number().int().positive().default(10_000),
        batchSize: z.number().int().positive().default(256),
        writeTimeoutMs: z.number().int().positive().default(2000),
        retryMs: z.number().int().positive().default(500),
        /**
         * Under load a row waits about this long for others to share its write (batching); when traffic stops,
         * up to 5× this. 0 writes each at once.
         */
        lingerMs: z.number().int().nonnegative().default(20),
        /**
         * spoolDir will not outlive this process (a Kubernetes emptyDir is deleted with its pod): at shutdown,
         * rows a sink that is down left in the spool are also logged in full, for `tiergate ledger import`.
         */
        logSpoolAtExit: z.boolean().default(false),
        /**
         * The most a sink's spool file holds (bytes of rows waiting). Past it, new rows go to the log as
         * `ledger.rows_unsaved` lines for `tiergate ledger import`, instead of filling the disk: a Kubernetes
         * emptyDir over its sizeLimit gets the pod evicted, spool and all.
         */
        spoolMaxBytes: z.number().int().positive().default(1024 * 1024 * 1024),
        /** Request header naming the calling feature (ledger feature_id). */
        featureHeader: z.string().toLowerCase().default('x-feature-id'),
        /** Request header naming the end user; else the body's `user`. Stored only as a hash (user_id_hash). */
        userHeader: z.string().toLowerCase().default('x-user-id'),
        /** Key for HMAC-SHA256 of user ids (use ${ENV}); without it a plain SHA-256, which a dictionary can reverse. */
        userHashKey: z.string().min(16).optional(),
      })
      .prefault({}),
    usage: z
      .strictObject({
        /** A response trailer carrying a JSON usage object (for backends that report usage there). */
        trailer: z.string().toLowerCase().optional(),
        /**
         * The usage chunk of a chat or completions stream whose client did not ask for it (tiergate asked on its
         * behalf): `strip` takes it out of the stream on its way to the client, `forward` lets it through.
         */
        forcedUsageChunk: z.enum(['strip', 'forward']).default('strip'),
      })
      .prefault({}),
    prices: priceTableSchema.prefault(EMBEDDED_PRICES),
    auth: authSchema,
    /** Named policy templates that tenants refer to with `plan`. */
    plans: z.record(z.string().regex(/^[A-Za-z0-9._-]+$/), planSchema).default({}),
    /** Per-tenant policy; "*" applies to every tenant without an entry of its own. */
    tenants: z.record(z.string(), tenantSchema).default({}),
    budgets: budgetsSchema,
    cache: cacheSchema,
    classifier: z
      .strictObject({
        active: z.string().default('v7'),
        /** Extra versions; v7 is built in (and may be overridden under its own name). */
        versions: z.record(z.string().regex(/^[a-z0-9_.-]+$/), versionSchema).default({}),
        /** Evaluated on every classified request beside the deciding version; never changes routing. */
        shadow: z.string().optional(),
        /** A share of classified requests decided by a candidate version instead of the active one. */
        canary: classifierCanarySchema.optional(),
      })
      .prefault({}),
  });

/** The config as its fields' schemas read it, before the checks across fields (cross-field-checks.ts). */
export type ConfigShape = z.infer<typeof configShape>;

export const configSchema = configShape.superRefine(crossFieldChecks);

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
