// The Envoy ext_proc filter settings the Envoy-faithful client models, and the shapes it reports back.
import type { BodySendMode, HeaderSendMode } from '../extproc/types.js';

export interface ProcessingMode {
  requestHeaderMode: HeaderSendMode;
  responseHeaderMode: HeaderSendMode;
  requestBodyMode: BodySendMode;
  responseBodyMode: BodySendMode;
  requestTrailerMode: HeaderSendMode;
  responseTrailerMode: HeaderSendMode;
}

export interface FilterConfig {
  processingMode: ProcessingMode;
  allowModeOverride: boolean;
  /** Envoy's default is 200 ms (§2.1). */
  messageTimeoutMs: number;
  failureModeAllow: boolean;
  /** Envoy 1.34+ attaches protocol_config to the first message. */
  sendProtocolConfig: boolean;
  observabilityMode: boolean;
  /** metadata_options.receiving_namespaces.untyped: dynamic metadata under other namespaces is dropped (§11). */
  receivingNamespaces: readonly string[];
  /**
   * The stream's buffer limit (the listener's per_connection_buffer_limit_bytes, envoy/envoy.yaml: 32 MiB). A
   * BUFFERED body above it never reaches the server: Envoy answers 413 for a request body and 500 for a response
   * body (SRC FilterManager's requestDataTooLarge / ActiveStreamEncoderFilter::responseDataTooLarge).
   */
  bufferLimitBytes: number;
}

/** What tiergate's docs recommend (envoy/envoy.yaml): request BUFFERED, response STREAMED. */
export const RECOMMENDED_FILTER: FilterConfig = {
  processingMode: {
    requestHeaderMode: 'SEND',
    responseHeaderMode: 'SEND',
    requestBodyMode: 'BUFFERED',
    responseBodyMode: 'STREAMED',
    requestTrailerMode: 'SKIP',
    responseTrailerMode: 'SKIP',
  },
  allowModeOverride: false,
  messageTimeoutMs: 200,
  failureModeAllow: false,
  sendProtocolConfig: true,
  observabilityMode: false,
  receivingNamespaces: ['tiergate'],
  bufferLimitBytes: 32 * 1024 * 1024,
};

/**
 * The message timeout tiergate ships (envoy/envoy.yaml's message_timeout, the kgateway GatewayExtension's
 * messageTimeout), which the local data plane of `tiergate dev` uses too. The tests keep Envoy's stricter default
 * (RECOMMENDED_FILTER). In `tiergate dev` that timer shares one process and one event loop with tiergate, the mock
 * backends and every client's connection, where Envoy's runs in a process of its own: under a burst of parallel
 * requests its 200 ms ran out on answers the loop had not yet read, and clients got 504s no deployment would give.
 */
export const SHIPPED_MESSAGE_TIMEOUT_MS = 500;

/**
 * The same filter with both bodies FULL_DUPLEX_STREAMED (Envoy 1.34+; kgateway's GatewayExtension offers it):
 * chunks go out without waiting, answers are streamed_response, and Envoy requires trailer mode SEND.
 */
export const DUPLEX_FILTER: FilterConfig = {
  ...RECOMMENDED_FILTER,
  processingMode: {
    ...RECOMMENDED_FILTER.processingMode,
    requestBodyMode: 'FULL_DUPLEX_STREAMED',
    responseBodyMode: 'FULL_DUPLEX_STREAMED',
    requestTrailerMode: 'SEND',
    responseTrailerMode: 'SEND',
  },
};

export type Headers = Array<[string, string]>;

/** What Envoy sends for a POST /v1/chat/completions: pseudo-headers first, then the client's headers. */
export function chatRequestHeaders(extra: Headers = []): Headers {
  return postHeaders('/v1/chat/completions', extra);
}

/** The request headers Envoy sends for a JSON POST to `path`. */
export function postHeaders(path: string, extra: Headers = []): Headers {
  return [[':method', 'POST'], [':path', path], [':authority', 'gateway.local'], [':scheme', 'http'], ['content-type', 'application/json'], ...extra];
}

export type Outcome =
  | { kind: 'continue'; body?: Buffer; clearedRouteCache: boolean }
  /** The server ended the exchange with an ImmediateResponse: send this to the client. */
  | { kind: 'immediate'; status: number; headers: Headers; body: Buffer; details: string }
  /** Envoy's own local reply on a processing failure (500, or 504 on message timeout). */
  | { kind: 'error'; status: number; details: string }
  /** Processing is over for this stream (clean close, fail-open, or already finished): continue unmodified. */
  | { kind: 'skipped' };

export interface Counters {
  spurious: number;
  rejectedMutations: number;
  timeouts: number;
  /**
   * Answers in observability mode, which Envoy ignores (§9). Envoy keeps no such stat; it is counted so that a
   * test can see a server answering when it must not.
   */
  ignoredAnswers: number;
}
