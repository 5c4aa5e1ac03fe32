// Config for who may call (auth), what each tenant may do (tenants, plans) and how much (budgets).
// Kept apart from schema.ts so the access-control surface reads in one place.
import { z } from 'zod';
import { cachePolicySchema } from './cache-schema.js';
import { breakerSchema, redisStoreSchema } from './redis-schema.js';

/** Tenant ids end up in Redis keys, headers and ledger rows: a tight charset keeps them inert everywhere. */
export const TENANT_ID = /^[A-Za-z0-9._-]{1,64}$/;
const tenantId = z.string().regex(TENANT_ID, 'expected 1–64 of A-Z a-z 0-9 . _ -');
const positiveInt = z.number().int().positive();

const apiKey = z
  .strictObject({
    /** The principal's name: safe to log, never the key. */
    id: z.string().min(1),
    /** Hex SHA-256 of the key (use ${ENV} to keep it out of the file). */
    sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'expected 64 hex characters').optional(),
    /** A file holding the hex SHA-256 (a mounted Kubernetes Secret); read at every (re)load. */
    sha256File: z.string().min(1).optional(),
    /** The one tenant this key acts as. */
    tenant: tenantId.optional(),
    /** The tenants this key may name in x-tenant-id ("*" for every tenant). */
    tenants: z.array(z.union([tenantId, z.literal('*')])).min(1).optional(),
    /**
     * When the key stops working (ISO 8601 with its offset, e.g. 2027-01-31T00:00:00Z): from then on it is
     * refused with 401 expired_api_key. For a contractor's or a CI job's key; rotate before it comes.
     */
    expiresAt: z.iso.datetime({ offset: true }).optional(),
  })
  .refine((k) => (k.sha256 === undefined) !== (k.sha256File === undefined), { message: 'set exactly one of sha256, sha256File' })
  .refine((k) => (k.tenant === undefined) !== (k.tenants === undefined), { message: 'set exactly one of tenant, tenants' });

export const authSchema = z
  .strictObject({
    /** none: every request is tenant `default` (the embedded default). api_key: gateway keys below. */
    mode: z.enum(['none', 'api_key']).default('none'),
    keys: z.array(apiKey).default([]),
    /**
     * With mode api_key, every request needs a key, whatever its path, except on these: exact paths, or
     * prefixes ending in `*` (`/v1/models`, `/public/*`). Paths tiergate does not account for still reach a
     * backend through Envoy's routes, so they are not left open by default.
     */
    publicPaths: z.array(z.string().startsWith('/')).default([]),
  })
  .prefault({});

const policyFields = {
  /** Model names (aliases, tier model ids) and tier names this tenant may use; "*" for all. */
  models: z.array(z.string().min(1)).min(1).optional(),
  requestsPerMinute: positiveInt.optional(),
  /** Tokens (input + output) per calendar day in budgets.timeZone. */
  dailyTokenBudget: positiveInt.optional(),
  /** Tokens (input + output) per calendar month in budgets.timeZone. */
  monthlyTokenBudget: positiveInt.optional(),
  /**
   * US dollars per calendar day in budgets.timeZone, at the price table's prices: reserved at admission for the
   * routed tier's model, reconciled to the ledger row's cost. Every tier's model needs a price.
   */
  dailyCostBudgetUsd: z.number().positive().optional(),
  /** The same per calendar month in budgets.timeZone. */
  monthlyCostBudgetUsd: z.number().positive().optional(),
  tokensPerMinute: positiveInt.optional(),
  /**
   * Requests of this tenant in flight at once, across every replica (a shared store), from admission until the
   * response ends: long streams hold a backend's capacity that a per-minute rate does not bound. Cache hits are
   * not counted.
   */
  maxConcurrentRequests: positiveInt.optional(),
  /**
   * Where this tenant's requests queue on a tier whose backend schedules by priority (tiers.*.priorityScheduling):
   * vLLM's `priority`, lower first (default 0). The client's own `priority` is replaced on such a tier.
   */
  priority: z.number().int().min(-1_000_000).max(1_000_000).optional(),
  /**
   * The service tiers (the body's `service_tier`: OpenAI's flex, priority, …) this tenant may ask for; unset, any.
   * A request without one, or with `auto` (the provider project's own setting), always passes.
   */
  serviceTiers: z.array(z.string().min(1)).min(1).optional(),
  /**
   * Responses API turns with `background: true` are refused (403) unless this is true. Such a turn is answered
   * `queued` at once and generated afterwards, where tiergate never sees its usage: its tokens and cost would
   * count against no limit and reach no ledger row (README "Responses API").
   */
  backgroundResponses: z.boolean().optional(),
  /**
   * The hosted tools this tenant may declare: a request's `tools` entries other than those the client runs
   * (llm/client-tools.ts: function, custom, Codex's shell and patch tools, computer use), such as the Responses
   * API's web_search, file_search, code_interpreter, mcp; Chat's `web_search_options` counts as web_search. The
   * provider runs them and bills each call apart from tokens. Unset: every tool passes; []: none.
   */
  hostedTools: z.array(z.string().min(1)).optional(),
  /** Request header naming the calling feature (ledger feature_id); defaults to ledger.featureHeader. */
  featureHeader: z.string().toLowerCase().optional(),
  /** model "auto" classified into a tier this tenant may not use: route to an allowed tier, or answer 403. */
  onTierDenied: z.enum(['downgrade', 'refuse']).optional(),
  /** Response cache policy (README "Response cache"). */
  cache: cachePolicySchema.optional(),
};

export const planSchema = z.strictObject(policyFields);
/** A tenant names a plan and may override any of its fields. */
export const tenantSchema = z.strictObject({ plan: z.string().min(1).optional(), ...policyFields });

export const budgetsSchema = z
  .strictObject({
    store: z.enum(['memory', 'redis']).default('memory'),
    redis: redisStoreSchema('tiergate:').optional(),
    /** Store unreachable: open admits under a local per-instance limit; closed answers 503. */
    onStoreFailure: z.enum(['open', 'closed']).default('open'),
    /** Fail-open divides each limit by this (the number of tiergate replicas). */
    expectedInstances: positiveInt.default(1),
    /** IANA zone whose calendar day the daily budgets follow. */
    timeZone: z
      .string()
      .default('UTC')
      .refine((tz) => isTimeZone(tz), { message: 'unknown IANA time zone' }),
    globalTokensPerMinute: positiveInt.optional(),
    /** tier name → tokens per minute across all tenants, protecting that backend. */
    tierTokensPerMinute: z.record(z.string(), positiveInt).default({}),
    /** Completion tokens reserved when a request sets no max_tokens. */
    completionEstimate: positiveInt.default(1024),
    /**
     * Prompt tokens reserved for each content part that is not text (an image, audio, a file), which the
     * tokenizer cannot count: an OpenAI high-detail image of 1024x1024 is 765 tokens, a larger one ~1,100;
     * vision models on vLLM may use several thousand. Also what an estimated ledger row counts for it. 0: none.
     */
    mediaPartEstimate: z.number().int().nonnegative().default(1000),
    /** A reservation not reconciled by then (a stream that died with its process) frees itself. */
    reservationTtlMs: positiveInt.default(10 * 60_000),
    /**
     * A concurrent request's slot is held on a lease its replica renews every third of this while the request
     * is in flight, so the slots of a replica that died come back within this time.
     */
    concurrencyLeaseMs: z.number().int().min(1000).default(30_000),
    /** Share of the daily budget at which responses carry x-budget-warning. */
    warnAt: z.number().gt(0).lte(1).default(0.8),
    breaker: breakerSchema,
  })
  .prefault({});

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
