// How Envoy's ext_proc filter takes one answer (envoy-ext-proc.md §2.5–§11): what it does to the request it
// holds, and whether the side stream goes on. ext-proc-session.ts keeps the stream itself (what is sent, what
// waits for an answer, the timers, the close); envoy-mutations.ts the header mutation rules.
import { httpStatusNumber } from '../extproc/protos.js';
import type { RequestKind, WireCommonResponse, WireProcessingMode, WireProcessingResponse, WireStruct } from '../extproc/wire.js';
import type { Counters, FilterConfig, Headers, Outcome, ProcessingMode } from './envoy-filter.js';
import { applyHeaderMutation, getHeader, removeHeader } from './envoy-mutations.js';

/** What the filter holds for one HTTP request, and what answers change in it. */
export interface HeldRequest {
  readonly filter: FilterConfig;
  /** The processing mode in force: a mode_override changes it (§10). */
  readonly mode: ProcessingMode;
  readonly counters: Counters;
  readonly requestHeaders: Headers;
  readonly responseHeaders: Headers;
  /** The stream's dynamic metadata as Envoy stores it: namespace → flat values (%DYNAMIC_METADATA(ns:key)%). */
  readonly dynamicMetadata: Record<string, Record<string, string | number | boolean | null>>;
}

/**
 * An answer's outcome, and the stream after it: it goes on; it is done (an ImmediateResponse: nothing more is
 * sent, §7); or the filter abandons it (a spurious answer or a processing error: closed, §2.5, §8).
 */
export interface Taken {
  outcome: Outcome;
  stream: 'continues' | 'done' | 'abandoned';
}

/** Continue unmodified: a skipped phase, or an answer that changes nothing. */
export const CONTINUE: Outcome = { kind: 'continue', clearedRouteCache: false };

/** The answer to the message of `kind` Envoy is waiting on. */
export function takeAnswer(held: HeldRequest, kind: RequestKind, msg: WireProcessingResponse): Taken {
  if (msg.dynamic_metadata && (msg.response === 'immediate_response' || msg.response === kind)) storeMetadata(held, msg.dynamic_metadata);
  if (msg.response === 'immediate_response' && msg.immediate_response) return { outcome: immediateReply(held, msg.immediate_response), stream: 'done' };
  if (!msg.response || msg.response !== kind) return spuriousAnswer(held);
  if (msg.mode_override) applyModeOverride(held, kind, msg.mode_override);

  if (kind === 'request_trailers' || kind === 'response_trailers') return { outcome: CONTINUE, stream: 'continues' };
  const common: WireCommonResponse = (msg[kind] as { response?: WireCommonResponse } | undefined)?.response ?? {};
  const isRequest = kind.startsWith('request_');
  const headers = isRequest ? held.requestHeaders : held.responseHeaders;
  const isBody = kind === 'request_body' || kind === 'response_body';
  const bodyMode = isRequest ? held.mode.requestBodyMode : held.mode.responseBodyMode;
  // Header mutations in a body answer take effect only in BUFFERED mode (§5).
  const headersApply = !isBody || bodyMode === 'BUFFERED';
  if (headersApply) {
    const err = applyHeaderMutation(headers, common.header_mutation, held.counters);
    if (err) return processingError(err);
    // Where Envoy removed content-length, it skips a server's too (§5).
    if (dropsContentLength(bodyMode, isRequest ? held.mode.requestHeaderMode : held.mode.responseHeaderMode)) removeHeader(headers, 'content-length');
  }
  // streamed_response belongs to FULL_DUPLEX_STREAMED alone; anywhere else it is spurious (§2.5).
  if (common.body_mutation?.streamed_response) return spuriousAnswer(held);
  let body: Buffer | undefined;
  if (common.body_mutation) {
    if (common.body_mutation.clear_body) body = Buffer.alloc(0);
    else if (common.body_mutation.body !== undefined) body = common.body_mutation.body;
    if (!isBody && common.status !== 'CONTINUE_AND_REPLACE') body = undefined;
  }
  // A headers answer that replaces the body: Envoy drops content-length after applying the mutation, whatever
  // the server set it to (§5, SRC handleHeadersResponse).
  if (!isBody && body !== undefined) removeHeader(headers, 'content-length');
  // BUFFERED + header mode SEND: Envoy keeps content-length and rejects a mismatch with the mutated body (§5).
  if (isBody && bodyMode === 'BUFFERED' && body !== undefined) {
    const cl = getHeader(headers, 'content-length');
    if (cl !== undefined && Number(cl) !== body.length) return processingError('mismatch between content length and the length of the mutated body');
  }
  // clear_route_cache counts only with a header_mutation in the same answer, only on the request path (§6).
  const clearedRouteCache = isRequest && common.clear_route_cache === true && common.header_mutation !== undefined && headersApply;
  return { outcome: { kind: 'continue', ...(body !== undefined ? { body } : {}), clearedRouteCache }, stream: 'continues' };
}

/** An answer that does not fit (§2.5): counted; fail-closed since 1.35 unless failure_mode_allow. */
export function spuriousAnswer(held: HeldRequest): Taken {
  held.counters.spurious++;
  const outcome: Outcome = held.filter.failureModeAllow ? { kind: 'skipped' } : { kind: 'error', status: 500, details: 'ext_proc_error_spurious_message' };
  return { outcome, stream: 'abandoned' };
}

/** Invalid mutations are always a 500, whatever failure_mode_allow says (§2.5, §4). */
function processingError(details: string): Taken {
  return { outcome: { kind: 'error', status: 500, details }, stream: 'abandoned' };
}

/** The local reply an ImmediateResponse becomes (§7); an invalid header in it makes it a 500. */
function immediateReply(held: HeldRequest, ir: NonNullable<WireProcessingResponse['immediate_response']>): Outcome {
  const headers: Headers = [];
  const err = applyHeaderMutation(headers, ir.headers, held.counters);
  if (err) return { kind: 'error', status: 500, details: err };
  const body = ir.body ?? Buffer.alloc(0);
  // A missing or < 200 status becomes 200.
  const code = httpStatusNumber(ir.status?.code);
  const status = code >= 200 ? code : 200;
  // Envoy computes content-length and defaults content-type to text/plain.
  removeHeader(headers, 'content-length');
  if (body.length > 0) {
    headers.push(['content-length', String(body.length)]);
    if (!headers.some(([k]) => k === 'content-type')) headers.push(['content-type', 'text/plain']);
  } else {
    removeHeader(headers, 'content-type');
  }
  return { kind: 'immediate', status, headers, body, details: ir.details ?? '' };
}

/**
 * Envoy keeps a top-level key only if it is a listed receiving namespace and its value is a Struct; values
 * are read from the camelCase Struct fields, so a snake_case `struct_value` arrives as nothing (§11, §16).
 */
export function storeMetadata(held: HeldRequest, md: WireStruct): void {
  for (const [ns, v] of Object.entries(md.fields ?? {})) {
    if (!held.filter.receivingNamespaces.includes(ns) || !v.structValue) continue;
    const target = (held.dynamicMetadata[ns] ??= {});
    for (const [k, x] of Object.entries(v.structValue.fields ?? {})) target[k] = x.stringValue ?? x.numberValue ?? x.boolValue ?? null;
  }
}

function applyModeOverride(held: HeldRequest, kind: RequestKind, m: WireProcessingMode): void {
  // Honoured only with allow_mode_override and only on header answers (§10).
  if (!held.filter.allowModeOverride || (kind !== 'request_headers' && kind !== 'response_headers')) return;
  // Body modes apply as sent (omitted = NONE); header/trailer DEFAULT = no change (1.34+).
  held.mode.requestBodyMode = m.request_body_mode ?? 'NONE';
  held.mode.responseBodyMode = m.response_body_mode ?? 'NONE';
  if (m.response_header_mode && m.response_header_mode !== 'DEFAULT') held.mode.responseHeaderMode = m.response_header_mode;
  if (m.request_trailer_mode && m.request_trailer_mode !== 'DEFAULT') held.mode.requestTrailerMode = m.request_trailer_mode;
  if (m.response_trailer_mode && m.response_trailer_mode !== 'DEFAULT') held.mode.responseTrailerMode = m.response_trailer_mode;
}

/**
 * Envoy removes content-length itself for a body that will not reach the server whole before the headers go
 * on: STREAMED, BUFFERED_PARTIAL, FULL_DUPLEX_STREAMED, and BUFFERED with the headers not sent (§5, SRC
 * ProcessorState::shouldRemoveContentLength).
 */
export function dropsContentLength(body: ProcessingMode['requestBodyMode'], headers: ProcessingMode['requestHeaderMode']): boolean {
  return body === 'STREAMED' || body === 'BUFFERED_PARTIAL' || body === 'FULL_DUPLEX_STREAMED' || (body === 'BUFFERED' && headers === 'SKIP');
}
