// The config file's schema. Every key has a default, so an empty file (or none) is a working config;
// unknown keys are rejected so a typo never silently does nothing.
import { z } from 'zod';
import { versionSchema } from '../classify/rules-schema.js';
import { V7 } from '../classify/v7.js';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'expected HOST:PORT');

const tier = z.strictObject({
  /** The upstream model id written into the body's `model` and `x-llm-model`. */
  model: z.string().min(1),
  /** Env var holding the upstream API key; when set, it replaces the client's `authorization`. */
  credentialsEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/).optional(),
});

export const configSchema = z
  .strictObject({
    server: z
      .strictObject({
        listen: hostPort.default('0.0.0.0:9002'),
        admin: hostPort.default('0.0.0.0:9090'),
        /** SIGTERM: how long in-flight streams may take before the server is forced down. */
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
        failureRule: z.enum(['reply', 'continue']).default('reply'),
      })
      .prefault({}),
    limits: z
      .strictObject({
        /** Request bodies above this answer 413 request_too_large. */
        maxRequestBodyBytes: z.number().int().positive().default(16 * 1024 * 1024),
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
      .default({ weak: { model: 'weak-model' }, strong: { model: 'strong-model' } }),
    /** Model names clients may send that route straight to a tier (no classification). */
    aliases: z.record(z.string().min(1), z.string()).default({}),
    routing: z
      .strictObject({
        /** Model names that ask tiergate to classify. Any model that is neither alias nor tier model is classified too. */
        autoModels: z.array(z.string().min(1)).default(['auto']),
        /** Paths whose bodies are classified and routed. */
        classifyPaths: z.array(z.string().startsWith('/')).default(['/v1/chat/completions', '/v1/completions']),
        /** Paths routed without classification: to a fixed tier, or with no tier header when tier is absent. */
        unclassifiedPaths: z
          .record(z.string().startsWith('/'), z.strictObject({ tier: z.string().optional() }))
          .default({ '/v1/embeddings': {} }),
      })
      .prefault({}),
    classifier: z
      .strictObject({
        active: z.string().default('v7'),
        /** Extra versions; v7 is built in (and may be overridden under its own name). */
        versions: z.record(z.string().regex(/^[a-z0-9_.-]+$/), versionSchema).default({}),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    const tiers = new Set(Object.keys(c.tiers));
    const needTier = (t: string | undefined, path: PropertyKey[]) => {
      if (t !== undefined && !tiers.has(t)) ctx.addIssue({ code: 'custom', path, message: `unknown tier "${t}" (tiers: ${[...tiers].join(', ')})` });
    };
    for (const [alias, t] of Object.entries(c.aliases)) needTier(t, ['aliases', alias]);
    for (const [p, u] of Object.entries(c.routing.unclassifiedPaths)) needTier(u.tier, ['routing', 'unclassifiedPaths', p, 'tier']);
    const versions = { v7: V7, ...c.classifier.versions };
    if (!(c.classifier.active in versions)) {
      ctx.addIssue({ code: 'custom', path: ['classifier', 'active'], message: `unknown classifier version "${c.classifier.active}"` });
    }
    for (const [name, v] of Object.entries(c.classifier.versions)) {
      needTier(v.default, ['classifier', 'versions', name, 'default']);
      v.rules.forEach((r, i) => needTier(r.tier, ['classifier', 'versions', name, 'rules', i, 'tier']));
      v.rules.forEach((r, i) =>
        r.when.forEach((w, j) => {
          if (!('regex' in w)) return;
          try {
            new RegExp(w.regex, w.flags ?? '');
          } catch (e) {
            ctx.addIssue({ code: 'custom', path: ['classifier', 'versions', name, 'rules', i, 'when', j, 'regex'], message: (e as Error).message });
          }
        }),
      );
    }
    if (!c.classifier.versions.v7) {
      needTier(V7.default, ['classifier', 'versions', 'v7']);
      for (const r of V7.rules) needTier(r.tier, ['classifier', 'versions', 'v7']);
    }
  });

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
