// A request's stream span, ended once its ledger row is built, so that it carries what the row knows: the model
// that answered, the tokens (reported or estimated), the cost and the error. Those are named by OpenTelemetry's
// GenAI semantic conventions (gen_ai.*, status Development), which trace stores with an LLM view (Tempo, Datadog,
// Langfuse, Phoenix) read; tiergate's own facts keep the tiergate.* prefix. Nothing here is prompt text: model
// names, counts and catalogue codes only.
//
// The row is built in the ledger's next batch (Ledger.later), a few ms after the stream ended; the span is ended
// with the stream's own end time, so its duration is the request's, not the batch's.
import type { Attributes, Span } from '@opentelemetry/api';
import type { LedgerRow } from '../ledger/row.js';
import type { ResponseFacts } from '../usage/response-usage.js';

/** The span of a stream whose row is still to be built: ended exactly once, with the row or without one. */
export interface RowSpan {
  /** `row` undefined: the row could not be built (the span ends with what the stream knew). */
  end(row: LedgerRow | undefined, facts: ResponseFacts | undefined): void;
}

/**
 * The GenAI operation of a request tiergate accounts for (gen_ai.operation.name's well-known values), or
 * undefined for one the conventions have no name for (speech, transcription, images).
 */
export function genAiOperation(endpoint: 'chat' | 'completions' | 'responses' | undefined, path: string): string | undefined {
  // The Responses API is the successor of Chat Completions: the conventions' "chat" covers both.
  if (endpoint === 'chat' || endpoint === 'responses') return 'chat';
  if (endpoint === 'completions') return 'text_completion';
  return path.endsWith('/embeddings') ? 'embeddings' : undefined;
}

/** `endedAt`: performance.now() when the stream ended. `operation`: genAiOperation's. */
export function rowSpan(span: Span, endedAt: number, operation: string | undefined, requestModel: string | null): RowSpan {
  let ended = false;
  return {
    end(row, facts) {
      if (ended) return;
      ended = true;
      if (row) span.setAttributes(rowAttributes(row, facts, operation, requestModel));
      span.end(endedAt);
    },
  };
}

/** The attributes a row gives its span. */
function rowAttributes(row: LedgerRow, facts: ResponseFacts | undefined, operation: string | undefined, requestModel: string | null): Attributes {
  const a: Attributes = {};
  if (operation !== undefined) a['gen_ai.operation.name'] = operation;
  if (row.provider !== null) a['gen_ai.provider.name'] = row.provider;
  // What tiergate sent upstream (the tier's model), not the alias the client asked for, which is kept beside it.
  if (requestModel !== null) a['gen_ai.request.model'] = requestModel;
  if (row.model_alias !== null) a['tiergate.model_alias'] = row.model_alias;
  // The model the answer named; a cache hit's, the one that made the stored answer.
  const answered = facts?.model ?? (row.cache_hit ? row.model_resolved : null);
  if (answered) a['gen_ai.response.model'] = answered;
  if (facts?.finishReason !== undefined && !row.cache_hit) a['gen_ai.response.finish_reasons'] = [facts.finishReason];
  if (row.usage_source !== 'none') {
    const u = row.usage;
    a['gen_ai.usage.input_tokens'] = u.input_tokens;
    a['gen_ai.usage.output_tokens'] = u.output_tokens;
    if (u.cached_input_tokens > 0) a['gen_ai.usage.cache_read.input_tokens'] = u.cached_input_tokens;
    if (u.reasoning_tokens > 0) a['gen_ai.usage.reasoning.output_tokens'] = u.reasoning_tokens;
  }
  // reported, estimated or none: an estimate's tokens are tiergate's count, not the provider's.
  a['tiergate.usage_source'] = row.usage_source;
  if (row.cost_usd !== null) a['tiergate.cost_usd'] = row.cost_usd.total;
  if (row.error_code !== null) a['error.type'] = row.error_code;
  if (row.tenant_id) a['tiergate.tenant'] = row.tenant_id;
  return a;
}
