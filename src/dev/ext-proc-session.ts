// One HTTP request's ext_proc side stream, driven message for message as Envoy's filter drives it.
import * as grpc from '@grpc/grpc-js';
import type { RequestKind, WireCommonResponse, WireProcessingRequest, WireProcessingResponse } from '../extproc/wire.js';
import { CONTINUE, dropsContentLength, spuriousAnswer, storeMetadata, takeAnswer, type HeldRequest, type Taken } from './envoy-answers.js';
import type { Counters, FilterConfig, Headers, Outcome, ProcessingMode } from './envoy-filter.js';
import { removeHeader } from './envoy-mutations.js';


interface Pending {
  kind: RequestKind;
  resolve: (o: Outcome) => void;
  timer: NodeJS.Timeout | undefined;
  /**
   * FULL_DUPLEX_STREAMED: one entry stands for a direction's whole body. It stays first in line while
   * streamed answers arrive, however many, until one says end_of_stream (§2.2).
   */
  duplex?: { injected: Buffer[] };
}

/** Bytes Envoy passes on from a streamed_response in FULL_DUPLEX_STREAMED mode, as they arrive. */
export type StreamedBodyListener = (kind: 'request_body' | 'response_body', body: Buffer, endOfStream: boolean) => void;

/** One HTTP request's side stream. Holds the request/response headers as Envoy would; answers change them (envoy-answers.ts). */
export class ExtProcSession implements HeldRequest {
  readonly requestHeaders: Headers = [];
  readonly responseHeaders: Headers = [];
  /** The stream's dynamic metadata as Envoy stores it: namespace → flat values (%DYNAMIC_METADATA(ns:key)%). */
  readonly dynamicMetadata: Record<string, Record<string, string | number | boolean | null>> = {};
  mode: ProcessingMode;
  private readonly pending: Pending[] = [];
  private first = true;
  /** After an ImmediateResponse, a clean close, an error or a fail-open, nothing more is sent (§7, §8). */
  private done = false;
  private closed = false;
  /**
   * How the exchange was given up (abandon): skipped (a clean close or a fail-open: what follows passes on
   * unprocessed) or the local reply Envoy failed the request with.
   */
  private abandonedWith: Outcome | undefined;
  private readonly statusListeners: Array<(s: grpc.StatusObject) => void> = [];
  lastStatus: grpc.StatusObject | undefined;
  /** FULL_DUPLEX_STREAMED: the data plane forwards injected bytes as they come (data-plane.ts). */
  onStreamedBody: StreamedBodyListener | undefined;
  /** The duplex body entry of each direction, once its first chunk went out. */
  private readonly duplexFlows = new Map<RequestKind, Promise<Outcome>>();

  constructor(
    private readonly call: grpc.ClientDuplexStream<WireProcessingRequest, WireProcessingResponse>,
    readonly filter: FilterConfig,
    readonly counters: Counters,
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

  /**
   * Processing ended with the server's clean close or a fail-open (§8): Envoy passes what follows on unprocessed.
   * Not after an ImmediateResponse or a failure, nor after the data plane's own close.
   */
  get passesThrough(): boolean {
    return this.abandonedWith?.kind === 'skipped';
  }

  /** Resolves when the server's status arrives (or at once if it already has). */
  status(): Promise<grpc.StatusObject> {
    if (this.lastStatus) return Promise.resolve(this.lastStatus);
    return new Promise((resolve) => this.statusListeners.push(resolve));
  }

  sendRequestHeaders(headers: Headers, endOfStream: boolean, attributes?: Record<string, string>): Promise<Outcome> {
    this.requestHeaders.splice(0, this.requestHeaders.length, ...headers.map(([k, v]): [string, string] => [k.toLowerCase(), v]));
    if (dropsContentLength(this.mode.requestBodyMode, this.mode.requestHeaderMode)) removeHeader(this.requestHeaders, 'content-length');
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

  /**
   * A body sent in one message (BUFFERED), or one STREAMED chunk; STREAMED chunks may be pipelined. In
   * FULL_DUPLEX_STREAMED mode chunks go out without waiting for any answer, even the headers', and every chunk's
   * promise is the direction's whole body as the server passed it on (onStreamedBody has it piece by piece).
   */
  sendRequestBody(chunk: Buffer, endOfStream = true): Promise<Outcome> {
    if (!this.sendsBody(this.mode.requestBodyMode)) return Promise.resolve(CONTINUE);
    if (this.mode.requestBodyMode === 'BUFFERED' && chunk.length > this.filter.bufferLimitBytes) return this.overBuffer(413, 'request_payload_too_large');
    const msg: WireProcessingRequest = { request_body: { body: chunk, ...(endOfStream ? { end_of_stream: true } : {}) } };
    if (this.mode.requestBodyMode === 'FULL_DUPLEX_STREAMED') return this.sendDuplex('request_body', msg);
    return this.send('request_body', msg);
  }

  sendRequestTrailers(trailers: Headers): Promise<Outcome> {
    if (this.mode.requestTrailerMode !== 'SEND') return Promise.resolve(CONTINUE);
    return this.send('request_trailers', { request_trailers: { trailers: { headers: encodeHeaders(trailers) } } });
  }

  sendResponseHeaders(headers: Headers, endOfStream: boolean): Promise<Outcome> {
    this.responseHeaders.splice(0, this.responseHeaders.length, ...headers.map(([k, v]): [string, string] => [k.toLowerCase(), v]));
    if (dropsContentLength(this.mode.responseBodyMode, this.mode.responseHeaderMode)) removeHeader(this.responseHeaders, 'content-length');
    if (this.mode.responseHeaderMode === 'SKIP') return Promise.resolve(CONTINUE);
    return this.send('response_headers', {
      response_headers: { headers: { headers: encodeHeaders(this.responseHeaders) }, ...(endOfStream ? { end_of_stream: true } : {}) },
    });
  }

  sendResponseTrailers(trailers: Headers): Promise<Outcome> {
    if (this.mode.responseTrailerMode !== 'SEND') return Promise.resolve(CONTINUE);
    return this.send('response_trailers', { response_trailers: { trailers: { headers: encodeHeaders(trailers) } } });
  }

  sendResponseBody(chunk: Buffer, endOfStream: boolean): Promise<Outcome> {
    if (!this.sendsBody(this.mode.responseBodyMode)) return Promise.resolve(CONTINUE);
    if (this.mode.responseBodyMode === 'BUFFERED' && chunk.length > this.filter.bufferLimitBytes) return this.overBuffer(500, 'response_payload_too_large');
    const msg: WireProcessingRequest = { response_body: { body: chunk, ...(endOfStream ? { end_of_stream: true } : {}) } };
    if (this.mode.responseBodyMode === 'FULL_DUPLEX_STREAMED') return this.sendDuplex('response_body', msg);
    return this.send('response_body', msg);
  }

  /** Observability mode sends only STREAMED bodies (§9); otherwise every mode but NONE sends the body. */
  private sendsBody(mode: ProcessingMode['requestBodyMode']): boolean {
    return this.filter.observabilityMode ? mode === 'STREAMED' : mode !== 'NONE';
  }

  /**
   * A BUFFERED body outgrew the stream's buffer: Envoy sends its own local reply and the filter, destroyed with
   * the stream, closes the side stream; the server never sees the body.
   */
  private overBuffer(status: number, details: string): Promise<Outcome> {
    if (this.done) return Promise.resolve({ kind: 'skipped' });
    this.close();
    return Promise.resolve({ kind: 'error', status, details });
  }

  /** A FULL_DUPLEX_STREAMED chunk: no timer and no answer of its own; the first one opens the body's entry. */
  private sendDuplex(kind: 'request_body' | 'response_body', msg: WireProcessingRequest): Promise<Outcome> {
    const open = this.duplexFlows.get(kind);
    if (open) {
      if (!this.done) this.call.write(msg);
      return open;
    }
    const flow = this.send(kind, msg, true);
    this.duplexFlows.set(kind, flow);
    return flow;
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

  private send(kind: RequestKind, msg: WireProcessingRequest, duplex = false): Promise<Outcome> {
    if (this.done) return Promise.resolve(this.abandonedWith?.kind === 'error' ? this.abandonedWith : { kind: 'skipped' });
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
      const p: Pending = { kind, resolve, timer: undefined, ...(duplex ? { duplex: { injected: [] } } : {}) };
      // The timer restarts on every message Envoy sends and stops on its answer (§8); a direction in
      // FULL_DUPLEX_STREAMED mode has none (SRC ProcessorState::onStartProcessorCall).
      if (!this.isDuplex(kind)) p.timer = setTimeout(() => this.onTimeout(p), this.filter.messageTimeoutMs);
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
    // Envoy fails the request with its local reply at once, whether or not a message was waiting for its answer
    // (SRC Filter::onGrpcError): a message sent after that gets the same failure, not a pass.
    this.abandonedWith = o;
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

  private isDuplex(kind: RequestKind): boolean {
    return (kind.startsWith('request_') ? this.mode.requestBodyMode : this.mode.responseBodyMode) === 'FULL_DUPLEX_STREAMED';
  }

  private onAnswer(msg: WireProcessingResponse): void {
    // Observability mode: Envoy ignores whatever comes back and goes on sending (§9).
    if (this.filter.observabilityMode) {
      this.counters.ignoredAnswers++;
      return;
    }
    const head = this.pending[0];
    if (head?.duplex && msg.response !== 'immediate_response') {
      const trailers = head.kind === 'request_body' ? 'request_trailers' : 'response_trailers';
      // The body ended without end_of_stream because trailers follow: its answer is the trailers' (§2.4).
      if (msg.response === trailers) {
        this.pending.shift();
        head.resolve({ kind: 'continue', body: Buffer.concat(head.duplex.injected), clearedRouteCache: false });
        this.onAnswer(msg);
        return;
      }
      const o = this.applyStreamed(head, msg);
      if (o) {
        this.pending.shift();
        head.resolve(o);
      }
      return;
    }
    const p = this.pending.shift();
    if (!p) {
      // An answer nobody asked for (e.g. a second answer to one message) is spurious (§2.5).
      this.settle(spuriousAnswer(this));
      return;
    }
    clearTimeout(p.timer);
    p.resolve(this.settle(takeAnswer(this, p.kind, msg)));
  }

  /**
   * A body answer in FULL_DUPLEX_STREAMED mode: only streamed_response is accepted, anything else is spurious
   * (SRC ProcessorState::handleBodyInStreamedState). Envoy injects the bytes at once; the entry is done (an
   * outcome is returned) with the answer that says end_of_stream.
   */
  private applyStreamed(p: Pending, msg: WireProcessingResponse): Outcome | undefined {
    const streamed = msg.response === p.kind ? (msg[p.kind] as { response?: WireCommonResponse } | undefined)?.response?.body_mutation?.streamed_response : undefined;
    if (!streamed) return this.settle(spuriousAnswer(this));
    if (msg.dynamic_metadata) storeMetadata(this, msg.dynamic_metadata);
    const body = streamed.body ?? Buffer.alloc(0);
    const eos = streamed.end_of_stream === true;
    const injected = (p.duplex as { injected: Buffer[] }).injected;
    if (body.length > 0) injected.push(body);
    if (body.length > 0 || eos) this.onStreamedBody?.(p.kind as 'request_body' | 'response_body', body, eos);
    return eos ? { kind: 'continue', body: Buffer.concat(injected), clearedRouteCache: false } : undefined;
  }

  /** Ends or closes the stream as the filter does after an answer (envoy-answers.ts), and gives its outcome. */
  private settle(taken: Taken): Outcome {
    if (taken.stream === 'done') {
      this.done = true;
      this.failPending({ kind: 'skipped' });
    } else if (taken.stream === 'abandoned') {
      this.abandon(taken.outcome);
    }
    return taken.outcome;
  }
}

function encodeHeaders(h: Headers) {
  return h.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') }));
}
