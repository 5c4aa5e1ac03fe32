// Plain shapes exchanged between the ext_proc transport and the rest of tiergate.
// The protobuf shapes never leave src/extproc/: the transport decodes Envoy's messages into these
// and encodes decisions back (architecture.md §2).

/**
 * Read access to a message's headers by lower-cased name. Repeated headers are joined with ", " (RFC 9110 §5.3).
 * A Map satisfies it; the transport passes a lazy view that decodes only the values asked for.
 */
export interface HeaderMap {
  get(name: string): string | undefined;
  has(name: string): boolean;
}

export type BodySendMode = 'NONE' | 'STREAMED' | 'BUFFERED' | 'BUFFERED_PARTIAL' | 'FULL_DUPLEX_STREAMED';
export type HeaderSendMode = 'DEFAULT' | 'SEND' | 'SKIP';

/** What Envoy 1.34+ tells us about its filter config on the first message (envoy-ext-proc.md §2.2). */
export interface ProtocolConfig {
  requestBodyMode: BodySendMode;
  responseBodyMode: BodySendMode;
}

export interface ModeOverride {
  requestBodyMode?: BodySendMode;
  responseHeaderMode?: HeaderSendMode;
  responseBodyMode?: BodySendMode;
  responseTrailerMode?: HeaderSendMode;
}

export interface HeaderMutation {
  /** Set (overwrite) these headers. Written as raw_value with append=false. */
  set?: ReadonlyArray<readonly [string, string]>;
  remove?: readonly string[];
}

/** Continue the HTTP stream, optionally mutating it. */
export interface ContinueDecision {
  kind: 'continue';
  headers?: HeaderMutation;
  /** Replace the body (or the body chunk) with these bytes. */
  body?: Buffer;
  /** Re-run Envoy's route match; only honoured with a header mutation in the same answer (§6). */
  clearRouteCache?: boolean;
  /** Only sent when config says Envoy allows mode overrides, and only on header answers (§10). */
  modeOverride?: ModeOverride;
  /** Namespace → flat values, emitted as dynamic_metadata (§11). */
  dynamicMetadata?: Record<string, Record<string, string | number | boolean>>;
  /**
   * On a request-headers decision: the headers answer depends on the body (the routing headers come from it).
   * Only FULL_DUPLEX_STREAMED acts on it: there the headers answer is held until the body is whole, and the
   * body's decision is merged into it (duplex.ts). In the other modes the body answer carries those headers.
   */
  awaitBody?: boolean;
}

/** End the HTTP stream with a local reply; the upstream is not contacted (§7). */
export interface ReplyDecision {
  kind: 'reply';
  status: number;
  headers: ReadonlyArray<readonly [string, string]>;
  body: Buffer;
  /** Goes to Envoy's %RESPONSE_CODE_DETAILS%. */
  details: string;
}

export type Decision = ContinueDecision | ReplyDecision;

export const CONTINUE: ContinueDecision = Object.freeze({ kind: 'continue' });

/**
 * Why a stream ended, as seen by the server. `detached`: ended by the server with OK at a shutdown's end, after the
 * request was answered, so that Envoy carries on with the rest of the exchange without it (envoy-ext-proc.md §1, §8).
 */
export type StreamEnd = 'half-closed' | 'cancelled' | 'error' | 'detached';

/**
 * One per ext_proc stream (= one HTTP request). The transport calls these in Envoy's order, one at a time,
 * and writes exactly one answer per call (none in observability mode; in FULL_DUPLEX_STREAMED mode the
 * answers Envoy expects there, duplex.ts).
 */
export interface StreamHandler {
  requestHeaders(headers: HeaderMap, endOfStream: boolean): Decision | Promise<Decision>;
  requestBody(chunk: Buffer, endOfStream: boolean): Decision | Promise<Decision>;
  requestTrailers(trailers: HeaderMap): Decision | Promise<Decision>;
  responseHeaders(headers: HeaderMap, endOfStream: boolean): Decision | Promise<Decision>;
  responseBody(chunk: Buffer, endOfStream: boolean): Decision | Promise<Decision>;
  responseTrailers(trailers: HeaderMap): Decision | Promise<Decision>;
  /** Called once when the stream is over, after the last answer was written. Must not throw. */
  end(reason: StreamEnd): void;
  /**
   * Whether the rest of the exchange may go on without this handler (a stream detached at a shutdown): false
   * while it holds back bytes of the answer that it owes the client with a later chunk, which would be lost.
   * Absent: always. Must not throw.
   */
  detachable?(): boolean;
  /**
   * Headers every immediate response on this stream carries besides its own: the handler's replies and the
   * failure rule's 500 alike (tiergate's: the request's x-request-id). Must not throw.
   */
  replyHeaders?(): ReadonlyArray<readonly [string, string]>;
}

export interface StreamInfo {
  protocolConfig: ProtocolConfig | undefined;
  /**
   * The side stream's own gRPC metadata (its HTTP/2 headers), text values only: where Envoy puts the trace
   * context of its ext_proc client span, and an operator's `initial_metadata` (envoy-ext-proc.md §12).
   */
  callMetadata: HeaderMap;
}

export type StreamHandlerFactory = (info: StreamInfo) => StreamHandler;

/**
 * What an unexpected processing error does to the request (envoy.failureRule): a 500 OpenAI-shaped reply, or the
 * request continues as it is. The config schema and the processing-error metric's preset take their values here.
 */
export const FAILURE_RULES = ['reply', 'continue'] as const;
export type FailureRule = (typeof FAILURE_RULES)[number];
