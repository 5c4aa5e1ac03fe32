// A complete, valid ledger row with overridable fields, and the settle step's record of a request.
import { randomUUID } from 'node:crypto';
import type { RequestRecord } from '../../src/ledger/build-row.js';
import { LEDGER_SCHEMA_VERSION, type LedgerRow } from '../../src/ledger/row.js';

export function sampleRow(over: Partial<LedgerRow> = {}): LedgerRow {
  return {
    schema_version: LEDGER_SCHEMA_VERSION,
    event_id: randomUUID(),
    timestamp: '2026-11-22T10:00:00.000Z',
    request_id: 'req',
    trace_id: null,
    tenant_id: 'default',
    feature_id: null,
    user_id_hash: null,
    model_alias: 'auto',
    model_resolved: 'weak-model',
    provider: 'openai-compatible',
    service_tier: null,
    path: '/v1/chat/completions',
    stream: false,
    tier: 'weak',
    classifier_version: 'v7',
    classifier_rule: 'default',
    classifier_reason: 'default',
    shadow_tier: null,
    shadow_reason: null,
    cache_hit: false,
    usage: { input_tokens: 10, output_tokens: 5, total_tokens: 15, cached_input_tokens: 0, reasoning_tokens: 0 },
    usage_source: 'reported',
    tool_calls: null,
    cost_usd: { input: 0.000001, output: 0.000002, total: 0.000003, price_table_version: 'test' },
    saved_usd: null,
    latency_ms: { gateway: 0.2, cache_lookup: null, provider: 100, total: 101, ttft: 50 },
    status: 'success',
    http_status: 200,
    error_code: null,
    fallback_used: false,
    rate_limit_tier: null,
    ...over,
  };
}

/** All rows of a reader (rowsFromFiles, rowsFromRedis) in an array. */
export async function collectRows(g: AsyncGenerator<LedgerRow>): Promise<LedgerRow[]> {
  const out: LedgerRow[] = [];
  for await (const r of g) out.push(r);
  return out;
}

/** A request routed to the weak tier that ended with a 200 and reported no usage, with overridable fields. */
export function sampleRecord(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    requestId: 'r1',
    startedAt: Date.now(),
    traceId: null,
    tenant: 'default',
    featureId: null,
    userIdHash: null,
    rateLimitTier: null,
    modelAlias: 'auto',
    path: '/v1/chat/completions',
    stream: false,
    tier: 'weak',
    routedModel: 'weak-model',
    provider: 'openai-compatible',
    classifierVersion: 'v7',
    classifierRule: 'default',
    classifierReason: 'default',
    cache: undefined,
    cacheSave: undefined,
    shadowTier: null,
    shadowReason: null,
    upstreamCalled: true,
    localReply: undefined,
    httpStatus: 200,
    responseEnded: true,
    facts: undefined,
    requestUnread: false,
    answerUnread: false,
    inputCharacters: 0,
    trailerUsage: undefined,
    prompt: () => undefined,
    fallbackUsed: false,
    admission: undefined,
    span: undefined,
    timings: { gatewayMs: 1, ttftMs: 1, providerMs: 1, totalMs: 3 },
    ...over,
  };
}
