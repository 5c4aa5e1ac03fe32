// Envoy's FULL_DUPLEX_STREAMED body mode (envoy-ext-proc.md §2.2; Envoy 1.34+, announced in protocol_config),
// for the directions configured with it. Envoy then sends body chunks without waiting for answers, runs no
// message timer, and takes only `streamed_response` body answers: a plain body answer, even an empty CONTINUE,
// is a spurious message (§2.5; SRC ProcessorState::handleBodyInStreamedState), which fails the request closed
// on Envoy ≥ 1.35. Answers need not match chunks one for one (M chunks, N answers, the last one with
// end_of_stream), but a direction's answers keep their order: headers, then body, then trailers.
//
// Envoy releases the headers with their answer, so a header change that comes from the body (tiergate's
// routing headers) must travel in the headers answer. A request whose decision needs its body (awaitBody) has
// its headers answer held until the body is whole; then the body decision's header changes are merged into it,
// and the body follows in one streamed answer. The chunks are kept here meanwhile, so a request passed on
// unmodified (the body decision leaves the body alone, or a failure under the 'continue' rule) goes upstream
// with its own bytes. Every other body chunk is answered at once with its bytes, or with the decision's
// replacement (the forced usage chunk taken out of an SSE stream).
import { continueAnswer } from './response-encoder.js';
import { streamedBodyResponse } from './responses.js';
import { CONTINUE, type ContinueDecision, type HeaderMutation, type ProtocolConfig } from './types.js';
import type { Answer, RequestKind, WireProcessingRequest } from './wire.js';

const EMPTY = Buffer.alloc(0);

/** The duplex directions of a stream, from its first message's protocol_config; undefined when there are none. */
export function duplexOf(pc: ProtocolConfig | undefined): DuplexShaper | undefined {
  const request = pc?.requestBodyMode === 'FULL_DUPLEX_STREAMED';
  const response = pc?.responseBodyMode === 'FULL_DUPLEX_STREAMED';
  return request || response ? new DuplexShaper(request, response) : undefined;
}

export class DuplexShaper {
  /** The request-headers decision held for its body, and the body's chunks so far. */
  private held: { headers: ContinueDecision; chunks: Buffer[] } | undefined;

  constructor(
    readonly request: boolean,
    readonly response: boolean,
  ) {}

  /** Whether a message of `kind` is answered the duplex way. */
  covers(kind: RequestKind): boolean {
    return kind.startsWith('request_') ? this.request : this.response;
  }

  /**
   * The answers due now for a continue decision on `msg`: none while a request body is being held, the headers
   * answer and the whole body once it is in, one streamed answer per chunk otherwise. mode_override is never
   * sent: Envoy ignores it when either direction is duplex (§10).
   */
  answers(kind: RequestKind, d: ContinueDecision, msg: WireProcessingRequest): Answer[] {
    switch (kind) {
      case 'request_headers':
        if (d.awaitBody && msg.request_headers?.end_of_stream !== true) {
          this.held = { headers: d, chunks: [] };
          return [];
        }
        return [continueAnswer(kind, d, false)];
      case 'request_body':
      case 'response_body': {
        const part = msg[kind];
        const chunk = part?.body ?? EMPTY;
        const eos = part?.end_of_stream === true;
        if (kind === 'request_body' && this.held) {
          this.held.chunks.push(chunk);
          return eos ? this.release(d, true) : [];
        }
        // Headers have gone on already: a header change here could not apply, so the decision's body is all.
        return [streamedBodyResponse(kind, d.body ?? chunk, eos, d.dynamicMetadata)];
      }
      case 'request_trailers':
        // The body ended without end_of_stream because trailers follow (§2.4): it is whole now. The decision
        // is the body's (LlmStream completes it on the trailers); the trailers themselves go on unchanged.
        if (this.held) return [...this.release(d, false), continueAnswer(kind, CONTINUE, false)];
        return [continueAnswer(kind, d, false)];
      default:
        return [continueAnswer(kind, d, false)];
    }
  }

  /** The held headers answer with the body decision's header changes, then the body in one streamed answer. */
  private release(d: ContinueDecision, eos: boolean): Answer[] {
    const { headers: h, chunks } = this.held as { headers: ContinueDecision; chunks: Buffer[] };
    this.held = undefined;
    const merged: ContinueDecision = { kind: 'continue', headers: mergeMutations(h.headers, d.headers) };
    if (h.clearRouteCache || d.clearRouteCache) merged.clearRouteCache = true;
    if (h.dynamicMetadata) merged.dynamicMetadata = h.dynamicMetadata;
    const headers = continueAnswer('request_headers', merged, false);
    // No body message came at all (trailers straight after the headers): Envoy then waits for the trailers'
    // answer, and a body answer would be spurious.
    if (chunks.length === 0) return [headers];
    const body = d.body ?? (chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
    return [headers, streamedBodyResponse('request_body', body, eos, d.dynamicMetadata)];
  }
}

function mergeMutations(a: HeaderMutation | undefined, b: HeaderMutation | undefined): HeaderMutation {
  return { set: [...(a?.set ?? []), ...(b?.set ?? [])], remove: [...(a?.remove ?? []), ...(b?.remove ?? [])] };
}
