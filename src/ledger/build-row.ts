// Turns what one stream saw into its ledger row: usage from the response (or an estimate), cost from the price
// table, status from how the stream ended. Runs after the last answer, never on the answer path.
import { newId } from '../ids.js';
import type { Admission } from '../budget/budgets.js';
import type { CachedAnswer } from '../cache/answer.js';
import type { AnswerToStore } from '../cache/store-answer.js';
import { readUsage, sumUsage } from '../usage/usage.js';
import { estimateUsage, type PromptForCount } from '../usage/estimate.js';
import type { Cost, PriceTable } from '../usage/price-table.js';
import { UNNAMED_ERROR, type ResponseFacts } from '../usage/response-usage.js';
import type { Usage, UsageSource } from '../usage/usage.js';
import { LEDGER_SCHEMA_VERSION, type LedgerRow, type RowStatus } from './row.js';
import type { RowSpan } from '../telemetry/row-span.js';

/** Everything a stream learned, in plain values. */
export interface RequestRecord {
  requestId: string;
  startedAt: number;
  traceId: string | null;
  tenant: string;
  featureId: string | null;
  userIdHash: string | null;
  rateLimitTier: string | null;
  modelAlias: string | null;
  path: string;
  stream: boolean;
  tier: string | null;
  routedModel: string | null;
  provider: string | null;
  classifierVersion: string | null;
  classifierRule: string | null;
  classifierReason: string | null;
  shadowTier: string | null;
  shadowReason: string | null;
  /** Set when the tenant's cache policy applied: the answer served from the cache (hits), and lookup time. */
  cache: { hit: CachedAnswer | undefined; lookupMs: number } | undefined;
  /** A miss that may be stored: where, and the entry (null when the response was not a complete, normal 200). */
  cacheSave: AnswerToStore | undefined;
  /** The request was sent on to an upstream (not answered by tiergate itself). */
  upstreamCalled: boolean;
  /** tiergate answered itself with this error. */
  localReply: { status: number; code: string } | undefined;
  httpStatus: number | null;
  /**
   * The answer came without its headers (Envoy's response_header_mode SKIP) and was a whole JSON error object:
   * a refusal, as the error status it came with would have said, with nothing spent.
   */
  refusedWithoutStatus?: boolean;
  /** The response reached its end (last body chunk or trailers). */
  responseEnded: boolean;
  /**
   * The stream was handed back to Envoy at a shutdown's end (StreamEnd `detached`): whatever of the answer had not
   * passed yet went on to the client unread.
   */
  detached?: boolean;
  facts: ResponseFacts | undefined;
  /** The request had a body tiergate did not read (a path routed without a pipeline run); false for one without a body. */
  requestUnread: boolean;
  /** The answer's body was not read for what it generated: not JSON or SSE (audio), or unreadable (ResponseFacts.unread). */
  answerUnread: boolean;
  /** Characters of text a speech request asked to be spoken (Usage.inputCharacters); 0 for any other request. */
  inputCharacters: number;
  /** Usage from a configured response trailer; wins over the body's. */
  trailerUsage: Usage | undefined;
  /** Built only when an estimate is needed (most responses report their usage). */
  prompt: () => PromptForCount | undefined;
  fallbackUsed: boolean;
  /** What the request reserved at admission: reconciled with the row's usage, unless reported usage already settled it as the response ended (Admission.reconciled). */
  admission: Admission | undefined;
  /** The stream's span while tracing records it: ended by the settle step, with the row (row-span.ts). */
  span?: RowSpan | undefined;
  timings: { gatewayMs: number; ttftMs: number | null; providerMs: number | null; totalMs: number };
}

export interface BuiltRow {
  row: LedgerRow;
  /** The row has usage but no price: the model is missing from the table, or cannot price what was used. */
  unpriced: boolean;
  /** What an estimate could not see, when that left the row unpriced (Usage.unmeasured). */
  unmeasured?: { input: boolean; output: boolean };
}

/** Synchronous unless usage has to be estimated (the tokenizer yields to the event loop while it counts). */
export function buildRow(r: RequestRecord, prices: PriceTable): BuiltRow | Promise<BuiltRow> {
  const known = knownUsage(r);
  if (known) return rowWith(r, prices, known.source === 'none' ? known.usage : withCharacters(known.usage, r.inputCharacters), known.source);
  // A request tiergate did not read (a path routed without a pipeline run) has no prompt to count, unless it is a
  // speech request; an answer it did not read, nothing generated to count. Their zeros would price spend at $0.
  const prompt = r.prompt();
  const input = prompt === undefined && r.requestUnread;
  const output = r.answerUnread;
  return estimateUsage(prompt, r.facts?.outputText ?? '', r.facts?.outputChars ?? 0).then((usage) =>
    rowWith(r, prices, withCharacters(input || output ? { ...usage, unmeasured: { input, output } } : usage, r.inputCharacters), 'estimated'),
  );
}

/** No answer counts a speech request's characters: they come from the request (RequestRecord.inputCharacters). */
export function withCharacters(usage: Usage, inputCharacters: number): Usage {
  return inputCharacters === 0 ? usage : { ...usage, inputCharacters };
}

/**
 * The price of what a row counts: the answering model's, else the routed model's; a cache hit's tool calls were
 * made for someone else. One function for the row and for the budget's settle as the response ends
 * (ResponseAccounting.reportedCharge), so that the two never differ.
 */
export function costOfUsage(prices: PriceTable, usage: Usage, facts: ResponseFacts | undefined, routedModel: string | null, hit = false): Cost | undefined {
  return prices.cost(usage, [facts?.model, routedModel ?? undefined], facts?.serviceTier, hit ? undefined : facts?.toolCalls);
}

/** The row's cost: its tool calls' part only when they were priced, so rows without any keep their shape. */
function costColumn({ input, output, toolCalls, total, priceTableVersion }: Cost): NonNullable<LedgerRow['cost_usd']> {
  return toolCalls === undefined ? { input, output, total, price_table_version: priceTableVersion } : { input, output, tool_calls: toolCalls, total, price_table_version: priceTableVersion };
}

function rowWith(r: RequestRecord, prices: PriceTable, usage: Usage, source: UsageSource): BuiltRow {
  const status = statusOf(r);
  const hit = r.cache?.hit;
  const modelResolved = hit?.model ?? r.facts?.model ?? r.routedModel;
  const nothingSpent = source === 'none';
  const toolCalls = hit ? undefined : r.facts?.toolCalls;
  const cost = nothingSpent ? { input: 0, output: 0, total: 0, priceTableVersion: prices.version } : costOfUsage(prices, usage, r.facts, r.routedModel, hit !== undefined);
  const row: LedgerRow = {
    schema_version: LEDGER_SCHEMA_VERSION,
    event_id: newId(),
    timestamp: new Date(r.startedAt).toISOString(),
    request_id: r.requestId,
    trace_id: r.traceId,
    tenant_id: r.tenant,
    feature_id: r.featureId,
    user_id_hash: r.userIdHash,
    model_alias: r.modelAlias,
    model_resolved: modelResolved,
    provider: r.provider,
    // What served it, as the response says (null on a cache hit: nothing did); what the request asked for may differ.
    service_tier: hit ? null : (r.facts?.serviceTier ?? null),
    path: r.path,
    stream: r.stream,
    tier: r.tier,
    classifier_version: r.classifierVersion,
    classifier_rule: r.classifierRule,
    classifier_reason: r.classifierReason,
    shadow_tier: r.shadowTier,
    shadow_reason: r.shadowReason,
    cache_hit: hit !== undefined,
    usage: {
      input_tokens: usage.inputTokens,
      output_tokens: usage.outputTokens,
      total_tokens: usage.totalTokens,
      cached_input_tokens: usage.cachedInputTokens,
      reasoning_tokens: usage.reasoningTokens,
      audio_input_tokens: usage.audioInputTokens,
      audio_output_tokens: usage.audioOutputTokens,
      audio_seconds: usage.audioSeconds,
      image_input_tokens: usage.imageInputTokens,
      image_output_tokens: usage.imageOutputTokens,
      input_characters: usage.inputCharacters ?? 0,
    },
    usage_source: source,
    tool_calls: toolCalls ? { ...toolCalls } : null,
    // A cache hit has no response of its own, so no reason: the stored answer's is on the row that stored it.
    finish_reason: r.facts?.finishReason ?? null,
    cost_usd: cost ? costColumn(cost) : null,
    saved_usd: hit ? savedBy(hit, prices, r.routedModel) : null,
    latency_ms: {
      gateway: round3(r.timings.gatewayMs),
      cache_lookup: r.cache ? round3(r.cache.lookupMs) : null,
      provider: r.timings.providerMs === null ? null : round3(r.timings.providerMs),
      total: round3(r.timings.totalMs),
      ttft: r.timings.ttftMs === null ? null : round3(r.timings.ttftMs),
    },
    status,
    http_status: hit ? 200 : (r.localReply?.status ?? r.httpStatus),
    error_code: errorCodeOf(r, status),
    fallback_used: r.fallbackUsed,
    rate_limit_tier: r.rateLimitTier,
  };
  const unpriced = cost === undefined;
  // Unpriced for what was not seen, rather than for the model's price (missing, or not for this service tier). A
  // row that names no model (a path routed to no tier, whose answer never came or named none) is that too: the
  // model is part of what was not seen, and no price could be added for it.
  if (unpriced && usage.unmeasured && (!modelResolved || costOfUsage(prices, { ...usage, unmeasured: undefined }, r.facts, r.routedModel, hit !== undefined))) {
    return { row, unpriced, unmeasured: usage.unmeasured };
  }
  return { row, unpriced };
}

export function statusOf(r: RequestRecord): RowStatus {
  if (r.cache?.hit) return 'cache_hit';
  if (r.localReply) return 'rejected';
  if (!r.responseEnded) return 'cancelled';
  if ((r.httpStatus ?? 0) >= 400 || r.facts?.errorCode) return 'upstream_error';
  return 'success';
}

/** The error_code of a row whose answer went on to its client after tiergate stopped reading it (RequestRecord.detached). */
export const DETACHED_AT_SHUTDOWN = 'detached_at_shutdown';

function errorCodeOf(r: RequestRecord, status: RowStatus): string | null {
  if (r.localReply) return r.localReply.code;
  if (status === 'cancelled' && r.detached) return DETACHED_AT_SHUTDOWN;
  const named = r.facts?.errorCode;
  const failedStatus = (r.httpStatus ?? 0) >= 400;
  // An error body that names nothing says less than the status it came with.
  if (named && !(named === UNNAMED_ERROR && failedStatus)) return named;
  if (status === 'upstream_error') return `http_${r.httpStatus ?? 0}`;
  return null;
}

/**
 * Reported usage when there is any; none (zeros) when the upstream was never called or refused with an error
 * status; undefined when it may have spent tokens without saying how many, which then get estimated.
 */
function knownUsage(r: RequestRecord): { usage: Usage; source: UsageSource } | undefined {
  const reported = r.trailerUsage ?? r.facts?.usage;
  if (reported) return { usage: reported, source: 'reported' };
  const called = r.upstreamCalled && !r.localReply;
  const refused = (r.httpStatus !== null && r.httpStatus >= 400) || r.refusedWithoutStatus === true;
  if (!called || refused) return { usage: ZERO, source: 'none' };
  return undefined;
}

/** What the cached answer cost when it was produced: what serving it from the cache saved. */
function savedBy(hit: CachedAnswer, prices: PriceTable, routedModel: string | null): number | null {
  const usage = hit.usage ? readUsage(hit.usage) : undefined;
  if (!usage) return null;
  // At the default tier's prices: the entry does not keep the tier that produced it.
  return prices.cost(usage, [hit.model, routedModel ?? undefined])?.total ?? null;
}

const ZERO: Usage = sumUsage(0, 0);

function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
