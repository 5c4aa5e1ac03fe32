// The ledger row: one JSON object per request (JSON Lines). The cost-ledger v1 fields plus tiergate's own
// (tier, classifier, usage_source, http_status, error_code); bump LEDGER_SCHEMA_VERSION on any incompatible change.

export const LEDGER_SCHEMA_VERSION = 1;

/**
 * success: the upstream answered 2xx and the body ended; upstream_error: it answered ≥ 400 or sent an error
 * mid-stream; rejected: tiergate answered itself with an error (400/401/403/413/429/5xx); cache_hit: tiergate
 * answered from its cache; cancelled: the stream ended before the response did (client gone, upstream reset).
 */
export type RowStatus = 'success' | 'upstream_error' | 'rejected' | 'cache_hit' | 'cancelled';

export interface LedgerRow {
  schema_version: number;
  /** Unique per row. */
  event_id: string;
  /** When the request reached tiergate (ISO 8601, UTC). */
  timestamp: string;
  /** From x-request-id (generated when absent): joins the row with Envoy's and the backend's logs. A client may choose it. */
  request_id: string;
  trace_id: string | null;
  tenant_id: string;
  feature_id: string | null;
  user_id_hash: string | null;
  /** The model name the client asked for (e.g. "auto" or an alias). */
  model_alias: string | null;
  /** The model that answered (the response's `model`), else the one tiergate routed to. */
  model_resolved: string | null;
  provider: string | null;
  /** The service tier the response says served it (OpenAI's `service_tier`), priced at its own prices; else null. */
  service_tier: string | null;
  path: string;
  stream: boolean;
  tier: string | null;
  classifier_version: string | null;
  classifier_rule: string | null;
  classifier_reason: string | null;
  /** The shadow classifier version's tier and reason (the reason starts with the version), when one runs. */
  shadow_tier: string | null;
  shadow_reason: string | null;
  cache_hit: boolean;
  usage: {
    input_tokens: number;
    output_tokens: number;
    total_tokens: number;
    cached_input_tokens: number;
    reasoning_tokens: number;
    // Written on every row since 2026-12-04; rows from before have none (optional for whoever reads them).
    /** Parts of input_tokens and output_tokens that were audio, priced at the model's audio prices. */
    audio_input_tokens?: number;
    audio_output_tokens?: number;
    /** Seconds of input audio a model billed by duration reported (whisper-1); 0 otherwise. */
    audio_seconds?: number;
    /** Characters of text a speech request asked to be spoken (tts-1 bills by them); 0 otherwise. */
    input_characters?: number;
    /** Parts of input_tokens and output_tokens that were images, priced at the model's image prices when it has them. */
    image_input_tokens?: number;
    image_output_tokens?: number;
  };
  usage_source: 'reported' | 'estimated' | 'none';
  /**
   * Hosted tool calls the provider ran (a Responses API answer's `web_search_call`, `file_search_call`… output
   * items), by type; null when there were none, and on a cache hit.
   */
  tool_calls: Record<string, number> | null;
  /**
   * Why the answer ended, as it says (ResponseFacts.finishReason): `stop`, `length`, `tool_calls`,
   * `content_filter`…; a Responses API response's `completed` or `failed`, or the reason an incomplete one gives.
   * null when it named none (an error, a stream cut short), and on a cache hit. Written since 2026-12-07.
   */
  finish_reason?: string | null;
  /** null when the model has no price in the table. `tool_calls`: those calls at prices.toolCalls, when priced. */
  cost_usd: { input: number; output: number; tool_calls?: number; total: number; price_table_version: string } | null;
  /** What a cache hit would have cost; null otherwise. */
  saved_usd: number | null;
  latency_ms: {
    /** Time tiergate spent deciding (request pipeline), excluding the client's upload. */
    gateway: number;
    cache_lookup: number | null;
    /** Request-body answer → last response byte seen. */
    provider: number | null;
    /** Request headers → end of the stream. */
    total: number;
    /** Request-body answer → response headers. */
    ttft: number | null;
  };
  status: RowStatus;
  http_status: number | null;
  error_code: string | null;
  /** The answering model belongs to another tier than the one routed to (Envoy's aggregate-cluster fallback). */
  fallback_used: boolean;
  rate_limit_tier: string | null;
}
