// What `tiergate ledger rollup` reports: the shape `--json` prints and the table and CSV are formatted from
// (rollup-format.ts). How the rows are summed into it is rollup.ts.

export interface GroupTotals {
  tenant_id: string;
  feature_id: string | null;
  requests: number;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cost_usd: number;
  saved_usd: number;
  cache_hits: number;
  /** Rows without a price (cost_usd null): their cost is missing from cost_usd. */
  unpriced: number;
}

/** The shadow classifier against the version that decided, over rows that carry a shadow decision. */
export interface ShadowSummary {
  rows: number;
  agreement_rate: number;
  /** "tier->shadow_tier" → rows: each direction of disagreement. */
  disagreements: Record<string, number>;
  /** The weak-tier share had the shadow version decided every shadowed row (other routed rows as they were). */
  weak_tier_share: number | null;
}

/** Per service tier an answer named (OpenAI's default, flex, priority, …): what each costs, e.g. priority's premium. */
export interface ServiceTierTotals {
  service_tier: string;
  requests: number;
  cost_usd: number;
  /** Rows without a price (a tier the model's prices do not list, usage nobody measured): missing from cost_usd. */
  unpriced: number;
}

/**
 * Per tier and the model that answered it (model_resolved): what each model is billed, and how often a token cap
 * ended its answers. A tier's answers from another tier's model (Envoy's fallback) are a row of their own.
 */
export interface ModelTotals {
  /** null: a path routed without a tier (embeddings with no fixed tier). */
  tier: string | null;
  model: string;
  requests: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  saved_usd: number;
  /** Rows without a price: their cost is missing from cost_usd. */
  unpriced: number;
  /**
   * Answers a token cap ended (finish_reason `length`, or a Responses API `max_output_tokens`): a tier whose
   * answers are often cut needs larger max_tokens from its clients, or a model that says less. Rows written
   * before 2026-12-07 carry no reason and count as not cut.
   */
  cut_short: number;
}

/** Per hosted tool call type a provider ran (web_search_call, …): how many calls, in how many requests. */
export interface ToolCallTotals {
  type: string;
  calls: number;
  requests: number;
}

/** Per classifier_version: how the active version and a canary candidate compare on live traffic. */
export interface VersionTotals {
  classifier_version: string;
  requests: number;
  weak_tier_share: number | null;
  error_rate: number | null;
  cost_per_1000_requests: number | null;
}

export interface Rollup {
  /** The day, when the period is one day. */
  day: string | null;
  /** The period's first and last day (UTC), both included; null when every row given was counted. */
  from: string | null;
  to: string | null;
  requests: number;
  /** Rows dropped because they repeat a row already counted (the same event_id: delivered twice). */
  duplicates: number;
  /**
   * Lines that were not ledger rows, skipped (`--skip-invalid`); the totals leave out whatever they held.
   * Without `--skip-invalid` such a line stops the rollup instead.
   */
  invalid_skipped: number;
  /**
   * The Redis stream has lost the entries added before this time (ISO) to its trimming (the redis sink's maxLen),
   * and rows of the period may have been among them: the totals can be too low. Null for a file, and for a
   * stream not trimmed past the period's start. Without `--allow-trimmed` such a stream stops the rollup instead.
   */
  trimmed_before: string | null;
  /** Share of tier-routed requests that went to the weak tier. */
  weak_tier_share: number | null;
  cost_usd: number;
  cost_per_1000_requests: number | null;
  /** Upstream errors and tiergate's own 5xx, over all requests. */
  error_rate: number | null;
  rejected: number;
  cancelled: number;
  p95_latency_ms: number | null;
  shadow: ShadowSummary | null;
  /** Classifier-decided rows only (not alias or path routes). */
  versions: VersionTotals[];
  /** Rows whose answer named its service tier; empty when none did (rows written before 2026-12-03 never do). */
  service_tiers: ServiceTierTotals[];
  /** Rows that name the model that answered (or was routed to), by tier and model, most costly first. */
  models: ModelTotals[];
  /** Rows that made hosted tool calls; empty when none did (rows written before 2026-12-03 never do). */
  tool_calls: ToolCallTotals[];
  /** What those calls cost at prices.toolCalls: the part of cost_usd that is not tokens. */
  tool_calls_cost_usd: number;
  groups: GroupTotals[];
}
