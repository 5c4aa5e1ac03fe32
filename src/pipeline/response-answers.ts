// What tiergate adds to a response on its way to the client: the routing facts as headers on the
// response-headers answer (tier, resolved model, limits, cache status, request id) and, on the last answer, the usage as
// Envoy dynamic metadata, plus the x-usage-total-tokens header when the body came buffered.
import type { TierRuntime } from '../config/runtime.js';
import type { ContinueDecision } from '../extproc/types.js';
import type { BodyKind } from '../usage/response-usage.js';
import { H } from './contract-headers.js';
import type { UsageMetadata } from './response-accounting.js';

/** Envoy's metadata_options.receiving_namespaces must list it (envoy-ext-proc.md §11). */
export const METADATA_NAMESPACE = 'tiergate';

export interface RoutingFacts {
  tier: TierRuntime | undefined;
  /** x-ratelimit-* and x-budget-warning, from admission. */
  limitHeaders: ReadonlyArray<readonly [string, string]> | undefined;
  cacheStatus: string | undefined;
  /** x-request-id for the client, when the backend's answer carries none. */
  requestId: string | undefined;
}

export interface ResponseHeadersAnswer {
  decision: ContinueDecision;
  /** The body will arrive whole (BUFFERED), so the final answer may still add headers. */
  buffered: boolean;
}

/**
 * `overrideMode`: Envoy allows mode_override and a body follows. `configuredBuffered`: what the filter's
 * processing_mode says about the response body, when no override is sent. `mayBuffer`: a JSON body may be asked
 * for whole. Envoy holds a BUFFERED body within the stream's buffer limit and answers a larger one with its own 500
 * (response_payload_too_large), the backend's answer lost; at the response headers it has already dropped
 * content-length when the configured mode is STREAMED (envoy-ext-proc.md §5), so the size is not known. Only
 * answers of a bounded size are buffered: chat, completions and responses, not an embeddings batch (2,048 inputs
 * of 3,072 floats as JSON are over 100 MB).
 */
export function responseHeadersAnswer(facts: RoutingFacts, kind: BodyKind, overrideMode: boolean, configuredBuffered: boolean, mayBuffer: boolean): ResponseHeadersAnswer {
  const set: Array<readonly [string, string]> = facts.tier ? [[H.tier, facts.tier.name], [H.modelResolved, facts.tier.model]] : [];
  if (facts.limitHeaders) set.push(...facts.limitHeaders);
  if (facts.cacheStatus) set.push([H.cache, facts.cacheStatus]);
  if (facts.requestId !== undefined) set.push([H.requestId, facts.requestId]);
  const decision: ContinueDecision = set.length > 0 ? { kind: 'continue', headers: { set } } : { kind: 'continue' };
  if (!overrideMode) return { decision, buffered: configuredBuffered };
  // SSE is answered chunk by chunk (STREAMED); a JSON body of a bounded size is buffered whole, so its answer
  // can still add headers such as x-usage-total-tokens (§10). Its usage is read either way.
  const sse = kind === 'sse';
  const buffered = !sse && mayBuffer;
  decision.modeOverride = { responseBodyMode: buffered ? 'BUFFERED' : 'STREAMED' };
  // Chunks of a stream may be replaced (the forced usage chunk taken out): its length is not known.
  if (sse) decision.headers = { ...decision.headers, remove: [H.contentLength] };
  return { decision, buffered };
}

/**
 * The last response answer carries the usage for Envoy's access log and rate-limit filters (dynamic
 * metadata, namespace `tiergate`) and, when the body was buffered, the x-usage-total-tokens header.
 */
export function finalAnswer(usage: UsageMetadata, buffered: boolean): ContinueDecision {
  const decision: ContinueDecision = { kind: 'continue', dynamicMetadata: { [METADATA_NAMESPACE]: usage } };
  if (buffered && typeof usage.total_tokens === 'number') decision.headers = { set: [[H.usageTotalTokens, String(usage.total_tokens)]] };
  return decision;
}

/**
 * The answer with the chunk replaced. A BUFFERED body keeps its content-length through ext_proc, and Envoy
 * refuses a replacement of another length unless the same answer sets it (envoy-ext-proc.md §5).
 */
export function withBody(decision: ContinueDecision, body: Buffer, buffered: boolean): ContinueDecision {
  if (!buffered) return { ...decision, body };
  const set = [...(decision.headers?.set ?? []), [H.contentLength, String(body.length)] as const];
  return { ...decision, body, headers: { ...decision.headers, set } };
}
