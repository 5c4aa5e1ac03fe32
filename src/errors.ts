// The one error catalogue: every error tiergate answers a client with is declared here with its HTTP status,
// OpenAI error type and a message that is safe to show (no secrets, no prompt text).

export interface CatalogueEntry {
  status: number;
  type: string;
  code: string;
}

export const ERRORS = {
  invalid_json: { status: 400, type: 'invalid_request_error', code: 'invalid_json' },
  invalid_request: { status: 400, type: 'invalid_request_error', code: 'invalid_request' },
  empty_array: { status: 400, type: 'invalid_request_error', code: 'empty_array' },
  empty_string: { status: 400, type: 'invalid_request_error', code: 'empty_string' },
  integer_below_min_value: { status: 400, type: 'invalid_request_error', code: 'integer_below_min_value' },
  invalid_value: { status: 400, type: 'invalid_request_error', code: 'invalid_value' },
  missing_body: { status: 400, type: 'invalid_request_error', code: 'missing_body' },
  invalid_path: { status: 400, type: 'invalid_request_error', code: 'invalid_path' },
  invalid_tenant_id: { status: 400, type: 'invalid_request_error', code: 'invalid_tenant_id' },
  // OpenAI's own answer to a continuation whose response it does not hold, which clients that resend the whole
  // history on it recognise. A response asked for by id is a 404 (response_not_found).
  previous_response_not_found: { status: 400, type: 'invalid_request_error', code: 'previous_response_not_found' },
  // OpenAI's answer to a sealed item (`encrypted_content`) it cannot read; tiergate's to another tenant's.
  invalid_encrypted_content: { status: 400, type: 'invalid_request_error', code: 'invalid_encrypted_content' },
  missing_api_key: { status: 401, type: 'authentication_error', code: 'missing_api_key' },
  invalid_api_key: { status: 401, type: 'authentication_error', code: 'invalid_api_key' },
  expired_api_key: { status: 401, type: 'authentication_error', code: 'expired_api_key' },
  tenant_required: { status: 401, type: 'authentication_error', code: 'tenant_required' },
  tenant_not_allowed: { status: 403, type: 'permission_error', code: 'tenant_not_allowed' },
  model_not_allowed: { status: 403, type: 'permission_error', code: 'model_not_allowed' },
  service_tier_not_allowed: { status: 403, type: 'permission_error', code: 'service_tier_not_allowed' },
  background_not_allowed: { status: 403, type: 'permission_error', code: 'background_not_allowed' },
  tool_not_allowed: { status: 403, type: 'permission_error', code: 'tool_not_allowed' },
  model_not_found: { status: 404, type: 'invalid_request_error', code: 'model_not_found' },
  response_not_found: { status: 404, type: 'invalid_request_error', code: 'response_not_found' },
  conversation_not_found: { status: 404, type: 'invalid_request_error', code: 'conversation_not_found' },
  item_not_found: { status: 404, type: 'invalid_request_error', code: 'item_not_found' },
  method_not_allowed: { status: 405, type: 'invalid_request_error', code: 'method_not_allowed' },
  request_too_large: { status: 413, type: 'invalid_request_error', code: 'request_too_large' },
  // A compressed request body tiergate cannot read (RFC 9110 §15.5.16 names 415 for an unsupported content coding).
  unsupported_content_encoding: { status: 415, type: 'invalid_request_error', code: 'unsupported_content_encoding' },
  // 429s name the limit that tripped; the type follows OpenAI's ("requests" or "tokens").
  requests_per_minute: { status: 429, type: 'requests', code: 'requests_per_minute' },
  tokens_per_minute: { status: 429, type: 'tokens', code: 'tokens_per_minute' },
  daily_token_budget: { status: 429, type: 'tokens', code: 'daily_token_budget' },
  monthly_token_budget: { status: 429, type: 'tokens', code: 'monthly_token_budget' },
  // OpenAI's type for spend that ran out (its own 429 insufficient_quota).
  daily_cost_budget: { status: 429, type: 'insufficient_quota', code: 'daily_cost_budget' },
  monthly_cost_budget: { status: 429, type: 'insufficient_quota', code: 'monthly_cost_budget' },
  global_tokens_per_minute: { status: 429, type: 'tokens', code: 'global_tokens_per_minute' },
  tier_tokens_per_minute: { status: 429, type: 'tokens', code: 'tier_tokens_per_minute' },
  concurrent_requests: { status: 429, type: 'requests', code: 'concurrent_requests' },
  internal_error: { status: 500, type: 'server_error', code: 'internal_error' },
  // The proxy's ext_proc filter sends no request body (processing_mode.request_body_mode NONE): a fault of the
  // gateway's configuration, not of the request, which tiergate could neither route nor check.
  request_body_not_sent: { status: 500, type: 'server_error', code: 'request_body_not_sent' },
  // The same for the request's headers (request_header_mode SKIP): tiergate knows neither the caller nor the path.
  request_headers_not_sent: { status: 500, type: 'server_error', code: 'request_headers_not_sent' },
  // A STREAMED request body (request_body_mode STREAMED): Envoy picks the route before tiergate reads the body.
  request_body_streamed: { status: 500, type: 'server_error', code: 'request_body_streamed' },
  dependency_unavailable: { status: 503, type: 'server_error', code: 'dependency_unavailable' },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorName = keyof typeof ERRORS;

/** Thrown by stages; the pipeline turns it into an OpenAI-shaped local reply. */
export class TiergateError extends Error {
  readonly entry: CatalogueEntry;
  constructor(
    readonly name_: ErrorName,
    message: string,
    readonly param: string | null = null,
    readonly extraHeaders: ReadonlyArray<readonly [string, string]> = [],
  ) {
    super(message);
    this.name = 'TiergateError';
    this.entry = ERRORS[name_];
  }
}

/** The OpenAI error body: {"error":{"message","type","param","code"}} (shared/data/openai-transcripts). */
export function errorBody(entry: CatalogueEntry, message: string, param: string | null): Buffer {
  return Buffer.from(JSON.stringify({ error: { message, type: entry.type, param, code: entry.code } }));
}
