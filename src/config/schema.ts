// The config file's schema. Every key has a default, so an empty file (or none) is a working config;
// unknown keys are rejected so a typo never silently does nothing.
import { z } from 'zod';
import { isNumericCondition, NUMERIC_CONDITIONS, REGEX_FLAGS, versionSchema } from '../classify/rules-schema.js';
import { V7 } from '../classify/v7.js';
import { priceTableSchema } from '../usage/price-table.js';
import { DEFAULT_MAX_JSON_DEPTH } from '../llm/parse-request.js';
import { cacheSchema } from './cache-schema.js';
import { authSchema, budgetsSchema, planSchema, tenantSchema, TENANT_ID } from './policy-schema.js';
import { routingSchema } from './routing-schema.js';
import { FAILURE_RULES } from '../extproc/types.js';
import { HOST_PORT_EXPECTED, isHostPort } from '../host-port.js';

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
    stream: z.string().min(1).default('tiergate:ledger'),
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

export const configSchema = z
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
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
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
  })
  .superRefine((c, ctx) => {
    const tiers = new Set(Object.keys(c.tiers));
    const needTier = (t: string | undefined, path: PropertyKey[]) => {
      if (t !== undefined && !tiers.has(t)) ctx.addIssue({ code: 'custom', path, message: `unknown tier "${t}" (tiers: ${[...tiers].join(', ')})` });
    };
    const auto = new Set(c.routing.autoModels);
    for (const [alias, t] of Object.entries(c.aliases)) {
      needTier(t, ['aliases', alias]);
      // The classify stage reads autoModels first: such an alias would route nothing, silently.
      if (auto.has(alias)) ctx.addIssue({ code: 'custom', path: ['aliases', alias], message: `"${alias}" is also in routing.autoModels, which are classified: this alias would never apply` });
    }
    for (const [p, u] of Object.entries(c.routing.unclassifiedPaths)) needTier(u.tier, ['routing', 'unclassifiedPaths', p, 'tier']);
    needTier(c.routing.statefulTier, ['routing', 'statefulTier']);
    const versions = { v7: V7, ...c.classifier.versions };
    const needVersion = (v: string | undefined, path: PropertyKey[]) => {
      if (v !== undefined && !(v in versions)) ctx.addIssue({ code: 'custom', path, message: `unknown classifier version "${v}" (versions: ${Object.keys(versions).join(', ')})` });
    };
    needVersion(c.classifier.active, ['classifier', 'active']);
    needVersion(c.classifier.shadow, ['classifier', 'shadow']);
    needVersion(c.classifier.canary?.version, ['classifier', 'canary', 'version']);
    if (c.classifier.canary?.version === c.classifier.active) {
      ctx.addIssue({ code: 'custom', path: ['classifier', 'canary', 'version'], message: 'the canary version is the active version' });
    }
    for (const [name, v] of Object.entries(c.classifier.versions)) {
      needTier(v.default, ['classifier', 'versions', name, 'default']);
      v.rules.forEach((r, i) => needTier(r.tier, ['classifier', 'versions', name, 'rules', i, 'tier']));
      v.nearThreshold.forEach((b, i) => {
        const path = ['classifier', 'versions', name, 'nearThreshold', i];
        needTier(b.tier, [...path, 'tier']);
        const rule = v.rules.find((r) => r.name === b.rule && r.enabled);
        const numeric = rule?.when.filter(isNumericCondition).length ?? 0;
        if (!rule) ctx.addIssue({ code: 'custom', path: [...path, 'rule'], message: `no enabled rule named "${b.rule}"` });
        else if (numeric !== 1) ctx.addIssue({ code: 'custom', path: [...path, 'rule'], message: `rule "${b.rule}" needs exactly one numeric condition (${NUMERIC_CONDITIONS.join(', ')}) for a band` });
      });
      v.rules.forEach((r, i) =>
        r.when.forEach((w, j) => {
          if (!('regex' in w)) return;
          try {
            // Flags the schema refused are reported there, once: the pattern is still checked, without them.
            new RegExp(w.regex, REGEX_FLAGS.test(w.flags ?? '') ? w.flags : '');
          } catch (e) {
            ctx.addIssue({ code: 'custom', path: ['classifier', 'versions', name, 'rules', i, 'when', j, 'regex'], message: (e as Error).message });
          }
        }),
      );
    }
    const names = c.ledger.sinks.map((x) => x.name);
    names.forEach((n, i) => {
      if (names.indexOf(n) !== i) ctx.addIssue({ code: 'custom', path: ['ledger', 'sinks', i, 'name'], message: `duplicate sink name "${n}"` });
    });
    const floor = c.cache.semantic.minThreshold;
    if (c.cache.semantic.threshold < floor) ctx.addIssue({ code: 'custom', path: ['cache', 'semantic', 'threshold'], message: `below the floor cache.semantic.minThreshold (${floor})` });
    for (const [where, entries] of [['plans', c.plans], ['tenants', c.tenants]] as const) {
      for (const [name, p] of Object.entries(entries)) {
        const t = p.cache?.threshold;
        if (t !== undefined && t < floor) ctx.addIssue({ code: 'custom', path: [where, name, 'cache', 'threshold'], message: `below the floor cache.semantic.minThreshold (${floor})` });
      }
    }
    for (const [t, p] of Object.entries(c.tenants)) {
      if (t !== '*' && !TENANT_ID.test(t)) ctx.addIssue({ code: 'custom', path: ['tenants', t], message: 'expected a tenant id (1–64 of A-Z a-z 0-9 . _ -) or "*"' });
      if (p.plan !== undefined && !(p.plan in c.plans)) ctx.addIssue({ code: 'custom', path: ['tenants', t, 'plan'], message: `unknown plan "${p.plan}"` });
    }
    for (const t of Object.keys(c.budgets.tierTokensPerMinute)) needTier(t, ['budgets', 'tierTokensPerMinute', t]);
    if (c.cache.store === 'redis' && !c.cache.redis) ctx.addIssue({ code: 'custom', path: ['cache', 'redis'], message: 'store "redis" needs cache.redis.url' });
    if (c.routing.affinity.store === 'redis' && !c.routing.affinity.redis) {
      ctx.addIssue({ code: 'custom', path: ['routing', 'affinity', 'redis'], message: 'store "redis" needs routing.affinity.redis.url' });
    }
    if (c.budgets.store === 'redis' && !c.budgets.redis) ctx.addIssue({ code: 'custom', path: ['budgets', 'redis'], message: 'store "redis" needs budgets.redis.url' });
    if (c.auth.mode === 'api_key' && c.auth.keys.length === 0) ctx.addIssue({ code: 'custom', path: ['auth', 'keys'], message: 'mode "api_key" needs at least one key' });
    if (!c.classifier.versions.v7) {
      needTier(V7.default, ['classifier', 'versions', 'v7']);
      for (const r of V7.rules) needTier(r.tier, ['classifier', 'versions', 'v7']);
    }
  });

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
