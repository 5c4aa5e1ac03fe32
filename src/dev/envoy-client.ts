// A client that drives an ext_proc server the way Envoy's ext_proc filter does, message for message
// (envoy-ext-proc.md §1–§12, checklist §17). Used by the integration tests and by `tiergate dev`'s local data
// plane. It applies Envoy's rules to the answers — raw_value only, append semantics, disallowed mutations
// ignored, content-length checked, spurious answers fail closed (≥1.35), message timeout → 504 — so a
// server bug shows up here as it would behind a real Envoy.
import * as grpc from '@grpc/grpc-js';
import { extProcClientConstructor, httpStatusNumber } from '../extproc/protos.js';
import type { BodySendMode, HeaderSendMode } from '../extproc/types.js';
import type {
  RequestKind,
  WireCommonResponse,
  WireHeaderMutation,
  WireProcessingMode,
  WireProcessingRequest,
  WireProcessingResponse,
} from '../extproc/wire.js';

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
};

export type Headers = Array<[string, string]>;

/** What Envoy sends for a POST /v1/chat/completions: pseudo-headers first, then the client's headers. */
export function chatRequestHeaders(extra: Headers = []): Headers {
  return [[':method', 'POST'], [':path', '/v1/chat/completions'], [':authority', 'gateway.local'], [':scheme', 'http'], ['content-type', 'application/json'], ...extra];
}

export type Outcome =
  | { kind: 'continue'; body?: Buffer; clearedRouteCache: boolean }
  /** The server ended the exchange with an ImmediateResponse: send this to the client. */
  | { kind: 'immediate'; status: number; headers: Headers; body: Buffer; details: string }
  /** Envoy's own local reply on a processing failure (500, or 504 on message timeout). */
  | { kind: 'error'; status: number; details: string }
  /** Processing is over for this stream (clean close, fail-open, or already finished): continue unmodified. */
  | { kind: 'skipped' };

/** Headers ext_proc may never set/append/remove with default mutation rules (§4). */
const DISALLOWED = new Set(['host', ':authority', ':scheme', ':method']);
const CONTINUE: Outcome = { kind: 'continue', clearedRouteCache: false };

export interface Counters {
  spurious: number;
  rejectedMutations: number;
  timeouts: number;
}

/**
 * Envoy's connection pool to the ext_proc cluster. `maxStreamsPerConnection` is the cluster's
 * `max_requests_per_connection`: after that many streams a connection is drained and a new one opened,
 * which keeps each server session under nghttp2's reset-rate guard (README "Envoy's stream-close pattern").
 */
export class ExtProcPool {
  private client: grpc.Client & { Process?: () => grpc.ClientDuplexStream<WireProcessingRequest, WireProcessingResponse> };
  private used = 0;
  private readonly Ctor = extProcClientConstructor();
  readonly counters: Counters = { spurious: 0, rejectedMutations: 0, timeouts: 0 };
  private readonly retired: grpc.Client[] = [];

  constructor(
    private readonly target: string,
    private readonly maxStreamsPerConnection = 0,
  ) {
    this.client = this.newClient();
  }

  private newClient() {
    // A local subchannel pool gives each client its own HTTP/2 connection, as Envoy's pool rotation does.
    return new this.Ctor(this.target, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
    }) as grpc.Client & { Process?: () => grpc.ClientDuplexStream<WireProcessingRequest, WireProcessingResponse> };
  }

  open(filter: FilterConfig = RECOMMENDED_FILTER): ExtProcSession {
    if (this.maxStreamsPerConnection > 0 && this.used >= this.maxStreamsPerConnection) {
      const old = this.client;
      this.retired.push(old);
      // Drain: streams already on the old connection finish; it closes once they have.
      setTimeout(() => old.close(), 30_000).unref();
      this.client = this.newClient();
      this.used = 0;
    }
    this.used++;
    const process = this.client.Process?.bind(this.client);
    if (!process) throw new Error('ExternalProcessor client has no Process method');
    return new ExtProcSession(process(), filter, this.counters);
  }

  close(): void {
    this.client.close();
    for (const c of this.retired) c.close();
  }
}

interface Pending {
  kind: RequestKind;
  resolve: (o: Outcome) => void;
  timer: NodeJS.Timeout | undefined;
  /** For body answers: the chunk, so a mutation can be applied and content-length checked. */
  chunk?: Buffer;
}

/** One HTTP request's side stream. Holds the request/response headers as Envoy would and mutates them. */
export class ExtProcSession {
  readonly requestHeaders: Headers = [];
  readonly responseHeaders: Headers = [];
  mode: ProcessingMode;
  private readonly pending: Pending[] = [];
  private first = true;
  /** After an ImmediateResponse, a clean close, an error or a fail-open, nothing more is sent (§7, §8). */
  private done = false;
  private closed = false;
  private readonly statusListeners: Array<(s: grpc.StatusObject) => void> = [];
  lastStatus: grpc.StatusObject | undefined;

  constructor(
    private readonly call: grpc.ClientDuplexStream<WireProcessingRequest, WireProcessingResponse>,
    private readonly filter: FilterConfig,
    private readonly counters: Counters,
  ) {
    this.mode = { ...filter.processingMode };
    call.on('data', (msg: WireProcessingResponse) => this.onAnswer(msg));
    call.on('status', (s: grpc.StatusObject) => this.onStatus(s));
    // Errors also arrive as a status; the listener keeps grpc-js from throwing on an unhandled 'error'.
    call.on('error', () => undefined);
  }

  get isDone(): boolean {
    return this.done;
  }

  /** Resolves when the server's status arrives (or at once if it already has). */
  status(): Promise<grpc.StatusObject> {
    if (this.lastStatus) return Promise.resolve(this.lastStatus);
    return new Promise((resolve) => this.statusListeners.push(resolve));
  }

  sendRequestHeaders(headers: Headers, endOfStream: boolean, attributes?: Record<string, string>): Promise<Outcome> {
    this.requestHeaders.splice(0, this.requestHeaders.length, ...headers.map(([k, v]): [string, string] => [k.toLowerCase(), v]));
    if (this.mode.requestHeaderMode === 'SKIP') return Promise.resolve(CONTINUE);
    const msg: WireProcessingRequest = {
      request_headers: { headers: { headers: encodeHeaders(this.requestHeaders) }, ...(endOfStream ? { end_of_stream: true } : {}) },
    };
    if (attributes) {
      msg.attributes = {
        'envoy.filters.http.ext_proc': { fields: Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, { stringValue: v }])) },
      };
    }
    return this.send('request_headers', msg);
  }

  /** A body sent in one message (BUFFERED), or one STREAMED chunk; STREAMED chunks may be pipelined. */
  sendRequestBody(chunk: Buffer, endOfStream = true): Promise<Outcome> {
    if (this.mode.requestBodyMode === 'NONE') return Promise.resolve(CONTINUE);
    return this.send('request_body', { request_body: { body: chunk, ...(endOfStream ? { end_of_stream: true } : {}) } }, chunk);
  }

  sendRequestTrailers(trailers: Headers): Promise<Outcome> {
    if (this.mode.requestTrailerMode !== 'SEND') return Promise.resolve(CONTINUE);
    return this.send('request_trailers', { request_trailers: { trailers: { headers: encodeHeaders(trailers) } } });
  }

  sendResponseHeaders(headers: Headers, endOfStream: boolean): Promise<Outcome> {
    this.responseHeaders.splice(0, this.responseHeaders.length, ...headers.map(([k, v]): [string, string] => [k.toLowerCase(), v]));
    // Envoy removes content-length itself when the response body will be STREAMED (§5).
    if (this.mode.responseBodyMode === 'STREAMED') removeHeader(this.responseHeaders, 'content-length');
    if (this.mode.responseHeaderMode === 'SKIP') return Promise.resolve(CONTINUE);
    return this.send('response_headers', {
      response_headers: { headers: { headers: encodeHeaders(this.responseHeaders) }, ...(endOfStream ? { end_of_stream: true } : {}) },
    });
  }

  sendResponseBody(chunk: Buffer, endOfStream: boolean): Promise<Outcome> {
    if (this.mode.responseBodyMode === 'NONE') return Promise.resolve(CONTINUE);
    return this.send('response_body', { response_body: { body: chunk, ...(endOfStream ? { end_of_stream: true } : {}) } }, chunk);
  }

  /** Envoy's close: half-close, then reset at once (§2.6). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.done = true;
    this.call.end();
    this.call.cancel();
    this.failPending({ kind: 'skipped' });
  }

  /**
   * Envoy's opt-in graceful close (1.34+, ext_proc_graceful_grpc_close): half-close and wait for the server to
   * finish the call; resolves with the server's status.
   */
  halfClose(): Promise<grpc.StatusObject> {
    if (!this.closed) {
      this.closed = true;
      this.done = true;
      this.call.end();
    }
    return this.status();
  }

  /** A bare stream reset, as when the downstream connection dies under the filter (§8). */
  cancel(): void {
    if (this.closed) return;
    this.closed = true;
    this.done = true;
    this.call.cancel();
    this.failPending({ kind: 'skipped' });
  }

  private send(kind: RequestKind, msg: WireProcessingRequest, chunk?: Buffer): Promise<Outcome> {
    if (this.done) return Promise.resolve({ kind: 'skipped' });
    if (this.first) {
      this.first = false;
      if (this.filter.sendProtocolConfig && !this.filter.observabilityMode) {
        msg.protocol_config = {
          request_body_mode: this.filter.processingMode.requestBodyMode,
          response_body_mode: this.filter.processingMode.responseBodyMode,
        };
      }
    }
    if (this.filter.observabilityMode) {
      msg.observability_mode = true;
      this.call.write(msg);
      return Promise.resolve(CONTINUE);
    }
    return new Promise((resolve) => {
      const p: Pending = { kind, resolve, timer: undefined, ...(chunk ? { chunk } : {}) };
      // The timer restarts on every message Envoy sends and stops on its answer (§8).
      p.timer = setTimeout(() => this.onTimeout(p), this.filter.messageTimeoutMs);
      this.pending.push(p);
      this.call.write(msg);
    });
  }

  private onTimeout(p: Pending): void {
    this.counters.timeouts++;
    if (!this.pending.includes(p)) return;
    this.abandon(this.filter.failureModeAllow ? { kind: 'skipped' } : { kind: 'error', status: 504, details: 'ext_proc_error_per-message_timeout_exceeded' });
  }

  private onStatus(s: grpc.StatusObject): void {
    this.lastStatus = s;
    for (const l of this.statusListeners.splice(0)) l(s);
    if (this.done) return;
    // Clean close = "continue without me", even fail-closed; an error status = status_on_error (500) (§8).
    if (s.code === grpc.status.OK || this.filter.failureModeAllow) this.abandon({ kind: 'skipped' });
    else this.abandon({ kind: 'error', status: 500, details: `ext_proc_error_gRPC_error_${s.code}` });
  }

  private abandon(o: Outcome): void {
    this.done = true;
    this.failPending(o);
    if (!this.closed) {
      this.closed = true;
      this.call.end();
      this.call.cancel();
    }
  }

  private failPending(o: Outcome): void {
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.resolve(o);
    }
  }

  private onAnswer(msg: WireProcessingResponse): void {
    const p = this.pending.shift();
    if (!p) {
      // An answer nobody asked for (e.g. a second answer to one message) is spurious (§2.5).
      this.spurious();
      return;
    }
    clearTimeout(p.timer);
    p.resolve(this.apply(p, msg));
  }

  private spurious(): Outcome {
    this.counters.spurious++;
    const o: Outcome = this.filter.failureModeAllow ? { kind: 'skipped' } : { kind: 'error', status: 500, details: 'ext_proc_error_spurious_message' };
    this.abandon(o);
    return o;
  }

  private apply(p: Pending, msg: WireProcessingResponse): Outcome {
    if (msg.response === 'immediate_response' && msg.immediate_response) {
      const ir = msg.immediate_response;
      const headers: Headers = [];
      const err = applyHeaderMutation(headers, ir.headers, this.counters);
      const body = ir.body ?? Buffer.alloc(0);
      // A missing or < 200 status becomes 200 (§7).
      const code = httpStatusNumber(ir.status?.code);
      const status = code >= 200 ? code : 200;
      this.done = true;
      this.failPending({ kind: 'skipped' });
      if (err) return { kind: 'error', status: 500, details: err };
      // Envoy computes content-length and defaults content-type to text/plain (§7).
      removeHeader(headers, 'content-length');
      if (body.length > 0) {
        headers.push(['content-length', String(body.length)]);
        if (!headers.some(([k]) => k === 'content-type')) headers.push(['content-type', 'text/plain']);
      } else {
        removeHeader(headers, 'content-type');
      }
      return { kind: 'immediate', status, headers, body, details: ir.details ?? '' };
    }
    if (!msg.response || msg.response !== p.kind) return this.spurious();
    if (msg.mode_override) this.applyModeOverride(p.kind, msg.mode_override);

    if (p.kind === 'request_trailers' || p.kind === 'response_trailers') return CONTINUE;
    const common: WireCommonResponse = (msg[p.kind] as { response?: WireCommonResponse } | undefined)?.response ?? {};
    const isRequest = p.kind.startsWith('request_');
    const headers = isRequest ? this.requestHeaders : this.responseHeaders;
    const isBody = p.kind === 'request_body' || p.kind === 'response_body';
    const bodyMode = isRequest ? this.mode.requestBodyMode : this.mode.responseBodyMode;
    // Header mutations in a body answer take effect only in BUFFERED mode (§5).
    const headersApply = !isBody || bodyMode === 'BUFFERED';
    if (headersApply) {
      const err = applyHeaderMutation(headers, common.header_mutation, this.counters);
      if (err) return this.processingError(err);
    }
    let body: Buffer | undefined;
    if (common.body_mutation) {
      if (common.body_mutation.clear_body) body = Buffer.alloc(0);
      else if (common.body_mutation.body !== undefined) body = common.body_mutation.body;
      if (!isBody && common.status !== 'CONTINUE_AND_REPLACE') body = undefined;
    }
    // BUFFERED + header mode SEND: Envoy keeps content-length and rejects a mismatch with the mutated body (§5).
    if (isBody && bodyMode === 'BUFFERED' && body !== undefined) {
      const cl = getHeader(headers, 'content-length');
      if (cl !== undefined && Number(cl) !== body.length) {
        return this.processingError('mismatch between content length and the length of the mutated body');
      }
    }
    // clear_route_cache counts only with a header_mutation in the same answer, only on the request path (§6).
    const clearedRouteCache = isRequest && common.clear_route_cache === true && common.header_mutation !== undefined && headersApply;
    return { kind: 'continue', ...(body !== undefined ? { body } : {}), clearedRouteCache };
  }

  /** Invalid mutations are always a 500, whatever failure_mode_allow says (§2.5, §4). */
  private processingError(details: string): Outcome {
    const o: Outcome = { kind: 'error', status: 500, details };
    this.abandon(o);
    return o;
  }

  private applyModeOverride(kind: RequestKind, m: WireProcessingMode): void {
    // Honoured only with allow_mode_override and only on header answers (§10).
    if (!this.filter.allowModeOverride || (kind !== 'request_headers' && kind !== 'response_headers')) return;
    // Body modes apply as sent (omitted = NONE); header/trailer DEFAULT = no change (1.34+).
    this.mode.requestBodyMode = m.request_body_mode ?? 'NONE';
    this.mode.responseBodyMode = m.response_body_mode ?? 'NONE';
    if (m.response_header_mode && m.response_header_mode !== 'DEFAULT') this.mode.responseHeaderMode = m.response_header_mode;
    if (m.request_trailer_mode && m.request_trailer_mode !== 'DEFAULT') this.mode.requestTrailerMode = m.request_trailer_mode;
    if (m.response_trailer_mode && m.response_trailer_mode !== 'DEFAULT') this.mode.responseTrailerMode = m.response_trailer_mode;
  }
}

function encodeHeaders(h: Headers) {
  return h.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') }));
}

/** Applies a HeaderMutation like Envoy's MutationUtils; returns an error string for a 500-worthy mutation. */
export function applyHeaderMutation(headers: Headers, m: WireHeaderMutation | undefined, counters: Counters): string | undefined {
  if (!m) return undefined;
  // Envoy applies all removals first, then the sets (§3.3).
  for (const name of m.remove_headers ?? []) {
    const k = name.toLowerCase();
    if (k.startsWith(':') || k === 'host' || k.startsWith('x-envoy-')) {
      counters.rejectedMutations++;
      continue;
    }
    removeHeader(headers, k);
  }
  for (const opt of m.set_headers ?? []) {
    const k = opt.header.key.toLowerCase();
    const hasValue = opt.header.value !== undefined && opt.header.value !== '';
    const hasRaw = opt.header.raw_value !== undefined && opt.header.raw_value.length > 0;
    if (hasValue && hasRaw) return 'Only one of value or raw_value in the HeaderValue message should be set';
    if (DISALLOWED.has(k) || k.startsWith('x-envoy-')) {
      counters.rejectedMutations++;
      continue;
    }
    // Since 1.32 only raw_value is read: a value-only header becomes empty (§3.2).
    const v = hasRaw ? (opt.header.raw_value as Buffer).toString('latin1') : '';
    if (/[\0\r\n]/.test(v) || !/^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(k)) return `invalid header ${k}`;
    // ext_proc honours only `append` (default false = overwrite); append_action is ignored (§3.3).
    if (opt.append?.value === true) headers.push([k, v]);
    else {
      removeHeader(headers, k);
      headers.push([k, v]);
    }
  }
  return undefined;
}

export function getHeader(h: Headers, name: string): string | undefined {
  return h.find(([k]) => k === name)?.[1];
}

export function removeHeader(h: Headers, name: string): void {
  for (let i = h.length - 1; i >= 0; i--) if ((h[i] as [string, string])[0] === name) h.splice(i, 1);
}
