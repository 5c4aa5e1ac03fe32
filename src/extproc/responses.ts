// Turns decisions into ProcessingResponse objects. Each builder encodes one fact from envoy-ext-proc.md.
import { encodeHeaderMutation } from './header-codec.js';
import type { ContinueDecision, ModeOverride, ReplyDecision } from './types.js';
import type {
  RequestKind,
  WireCommonResponse,
  WireProcessingMode,
  WireProcessingResponse,
  WireStruct,
  WireValue,
} from './wire.js';

const isHeadersKind = (kind: RequestKind) => kind === 'request_headers' || kind === 'response_headers';

/**
 * The Envoy rules that decide the shape of a continue answer, in one place for both ways of writing it (this
 * module's objects and answer-writer.ts's bytes).
 */
export const answerRules = {
  /**
   * mode_override is honoured only on header answers and only with allow_mode_override (§10); sending it
   * otherwise is harmless but misleading, so we never do.
   */
  sendsModeOverride: (kind: RequestKind, d: ContinueDecision, allowModeOverride: boolean): boolean =>
    d.modeOverride !== undefined && allowModeOverride && isHeadersKind(kind),
  /**
   * clear_route_cache is ignored in the response direction, and ignored without a header_mutation in the same
   * answer (§6): when it is sent, an empty mutation is enough to make it count.
   */
  clearsRouteCache: (kind: RequestKind, d: ContinueDecision): boolean => d.clearRouteCache === true && kind.startsWith('request_'),
  /** A body in a headers answer only applies with CONTINUE_AND_REPLACE (§2.3). */
  replacesWithBody: (kind: RequestKind, d: ContinueDecision): boolean => d.body !== undefined && isHeadersKind(kind),
};

/** The answer for a message of `kind` that continues the stream. */
export function continueResponse(kind: RequestKind, d: ContinueDecision, allowModeOverride: boolean): WireProcessingResponse {
  const out: WireProcessingResponse = { response: kind };
  if (kind === 'request_trailers' || kind === 'response_trailers') {
    const header_mutation = encodeHeaderMutation(d.headers);
    out[kind] = header_mutation ? { header_mutation } : {};
  } else {
    out[kind] = { response: commonResponse(kind, d) };
  }
  if (d.modeOverride && answerRules.sendsModeOverride(kind, d, allowModeOverride)) out.mode_override = encodeModeOverride(d.modeOverride);
  if (d.dynamicMetadata) out.dynamic_metadata = encodeDynamicMetadata(d.dynamicMetadata);
  return out;
}

function commonResponse(kind: RequestKind, d: ContinueDecision): WireCommonResponse {
  const common: WireCommonResponse = {};
  let header_mutation = encodeHeaderMutation(d.headers);
  if (answerRules.clearsRouteCache(kind, d)) {
    header_mutation ??= {};
    common.clear_route_cache = true;
  }
  if (header_mutation) common.header_mutation = header_mutation;
  if (d.body) {
    common.body_mutation = { body: d.body };
    if (answerRules.replacesWithBody(kind, d)) common.status = 'CONTINUE_AND_REPLACE';
  }
  return common;
}

/**
 * Body modes in an override are applied as sent — an omitted body mode means NONE (§10) — so callers give
 * every mode they want; we spell out only what they gave.
 */
function encodeModeOverride(m: ModeOverride): WireProcessingMode {
  const out: WireProcessingMode = {};
  if (m.requestBodyMode) out.request_body_mode = m.requestBodyMode;
  if (m.responseHeaderMode) out.response_header_mode = m.responseHeaderMode;
  if (m.responseBodyMode) out.response_body_mode = m.responseBodyMode;
  if (m.responseTrailerMode) out.response_trailer_mode = m.responseTrailerMode;
  return out;
}

/**
 * protobufjs' bundled google.protobuf.Struct uses camelCase (structValue, stringValue…) even with keepCase;
 * snake_case keys are silently dropped and Envoy receives an empty namespace (§16).
 */
export function encodeDynamicMetadata(ns: Record<string, Record<string, string | number | boolean>>): WireStruct {
  const fields: Record<string, WireValue> = {};
  for (const [name, values] of Object.entries(ns)) {
    const inner: Record<string, WireValue> = {};
    for (const [k, v] of Object.entries(values)) {
      inner[k] = typeof v === 'string' ? { stringValue: v } : typeof v === 'number' ? { numberValue: v } : { boolValue: v };
    }
    fields[name] = { structValue: { fields: inner } };
  }
  return { fields };
}

/**
 * A local reply. Envoy sets content-type text/plain when none is given (§7), so JSON replies carry their own
 * content-type in the header mutation; content-length is computed by Envoy.
 */
export function immediateResponse(r: ReplyDecision, extraHeaders?: ReadonlyArray<readonly [string, string]>): WireProcessingResponse {
  const headers = encodeHeaderMutation({ set: extraHeaders?.length ? [...r.headers, ...extraHeaders] : r.headers });
  return {
    response: 'immediate_response',
    immediate_response: {
      status: { code: r.status },
      ...(headers ? { headers } : {}),
      body: r.body,
      details: r.details.replace(/\s+/g, '_'),
    },
  };
}

/**
 * A body answer in FULL_DUPLEX_STREAMED mode: the bytes Envoy passes on for this direction, and whether they are
 * the last (§2.2). Envoy injects nothing for an empty body that does not end the stream.
 */
export function streamedBodyResponse(
  kind: 'request_body' | 'response_body',
  body: Buffer,
  endOfStream: boolean,
  dynamicMetadata?: ContinueDecision['dynamicMetadata'],
): WireProcessingResponse {
  const out: WireProcessingResponse = { response: kind, [kind]: { response: { body_mutation: { streamed_response: { body, end_of_stream: endOfStream } } } } };
  if (dynamicMetadata) out.dynamic_metadata = encodeDynamicMetadata(dynamicMetadata);
  return out;
}
