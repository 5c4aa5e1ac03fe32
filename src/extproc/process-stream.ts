// The Process handler: one StreamHandler per ext_proc stream, messages handled strictly in arrival order,
// exactly one answer per message (envoy-ext-proc.md §1; a FULL_DUPLEX_STREAMED body direction is answered the
// way that mode asks, duplex.ts), nothing thrown out of the loop.
import * as grpc from '@grpc/grpc-js';
import { duplexOf, type DuplexShaper } from './duplex.js';
import { continueAnswer } from './response-encoder.js';
import { immediateResponse } from './responses.js';
import { dispatch, streamInfo } from './stream-message.js';
import { CONTINUE, type ContinueDecision, type Decision, type FailureRule, type StreamEnd, type StreamHandler, type StreamHandlerFactory } from './types.js';
import type { Answer, RequestKind, WireProcessingRequest } from './wire.js';

export interface TransportOptions {
  /** Whether Envoy's filter has allow_mode_override: true; overrides are dropped otherwise (§10). */
  allowModeOverride: () => boolean;
  /** What an unexpected processing error becomes: a 500 local reply, or continue unmodified. */
  failureRule: () => FailureRule;
  /** The reply used for rule 'reply' (an OpenAI-shaped 500, built outside the transport). */
  internalErrorReply: () => Decision;
  hooks: TransportHooks;
}

export interface TransportHooks {
  streamStarted(): void;
  streamEnded(reason: StreamEnd): void;
  /** Seconds from receiving a message to writing its answer. */
  answered(kind: RequestKind, seconds: number): void;
  processingError(kind: RequestKind | 'unknown', err: unknown, rule: FailureRule): void;
}

type Call = grpc.ServerDuplexStream<WireProcessingRequest, Answer>;

export interface ProcessHandler {
  (call: Call): void;
  /**
   * Ends every stream still open as cancelled, now: each handler's end runs (and records the request's ledger
   * row) before this returns. For a forced shutdown, whose cancelled calls would report their end only on a later
   * turn of the loop, after the ledger had closed: a request cut off by the grace period then had no row.
   */
  cancelAll(): void;
  /**
   * A shutdown's grace period is over: every stream still open ends now, and what each request has been
   * told decides how. One whose request Envoy has had its answers for (the request went upstream with
   * tiergate's headers and body) is ended with OK, which Envoy reads as "go on without me" even when it fails
   * closed (envoy-ext-proc.md §1, §8): the client's answer, a long stream most often, goes on to its end, unread
   * by tiergate (StreamLoop.detach). Any other (its request still being decided, a FULL_DUPLEX_STREAMED body,
   * whose pieces only the server sends on, or an answer the handler holds bytes of) ends with UNAVAILABLE, so
   * Envoy fails it as it would a server gone away, and never lets an undecided request through. Each handler's
   * end runs (the row is recorded) before this returns. Returns how many were detached and how many cut.
   */
  endAll(): { detached: number; cut: number };
}

export function createProcessHandler(factory: StreamHandlerFactory, opts: TransportOptions): ProcessHandler {
  const open = new Set<StreamLoop>();
  const handle = ((call: Call) => new StreamLoop(call, factory, opts, open).start()) as ProcessHandler;
  handle.cancelAll = () => {
    for (const loop of [...open]) loop.cancel();
  };
  handle.endAll = () => {
    let detached = 0;
    let cut = 0;
    for (const loop of [...open]) {
      if (loop.detach()) detached++;
      else if (loop.cut()) cut++;
    }
    return { detached, cut };
  };
  return handle;
}

class StreamLoop {
  private handler: StreamHandler | undefined;
  private readonly queue: WireProcessingRequest[] = [];
  private busy = false;
  private halfClosed = false;
  private finished = false;
  /** After an immediate response Envoy sends nothing more and ignores answers (§7). */
  private replied = false;
  /** After an error under rule 'continue', every later message is passed through unmodified. */
  private degraded = false;
  private observability = false;
  /** Set when a body direction is FULL_DUPLEX_STREAMED: its answers take another shape (duplex.ts). */
  private duplex: DuplexShaper | undefined;
  /**
   * Envoy is done asking about the request: an answer went out to its last request message (headers or a body
   * piece with end_of_stream, headers no body follows, or its trailers), or a response message came (Envoy sends those once the request
   * went upstream). Until then, a stream ended with OK would let the request through as the client sent it.
   */
  private requestAnswered = false;
  /** The request headers' answer is the request's last: Envoy sends no body (its mode NONE, by the filter or our override). */
  private headersEndRequest = false;

  constructor(
    private readonly call: Call,
    private readonly factory: StreamHandlerFactory,
    private readonly opts: TransportOptions,
    /** The streams still open (createProcessHandler's cancelAll). */
    private readonly open: Set<StreamLoop>,
  ) {}

  start(): void {
    this.open.add(this);
    this.opts.hooks.streamStarted();
    // A synchronous 'data' listener that only enqueues: an async listener would let messages overtake each
    // other (architecture.md §3).
    this.call.on('data', (msg: WireProcessingRequest) => {
      this.queue.push(msg);
      if (!this.busy) this.drain();
    });
    // Envoy half-closes when it is done (§2.6): finish what is queued, then end the call with OK.
    // grpc-js also emits 'end' just before 'cancelled' on a reset, so the decision waits one turn.
    this.call.on('end', () =>
      setImmediate(() => {
        this.halfClosed = true;
        if (!this.busy) this.finish('half-closed');
      }),
    );
    // Envoy's close is half-close + reset, and a client disconnect is a reset: both are normal ends.
    this.call.on('cancelled', () => this.finish('cancelled'));
    this.call.on('error', () => this.finish('error'));
  }

  /**
   * Answers queued messages in order. Synchronous while the answers are (the usual case: the answer is written
   * inside grpc-js' own 'data' callback, with no promise per message); an answer that is a promise pauses the
   * queue, and the queue resumes from its callback.
   */
  private drain(): void {
    this.busy = true;
    try {
      while (this.queue.length > 0 && !this.finished) {
        const msg = this.queue.shift() as WireProcessingRequest;
        const started = performance.now();
        const out = this.process(msg);
        if (out instanceof Promise) {
          // process() never rejects: failures have become answers already.
          void out.then((answer) => {
            try {
              if (answer && !this.finished) this.write(answer, msg, started);
            } catch (err) {
              return this.broken(err);
            }
            this.drain();
          });
          return;
        }
        if (out && !this.finished) this.write(out, msg, started);
      }
    } catch (err) {
      return this.broken(err);
    }
    this.busy = false;
    if (this.halfClosed) this.finish('half-closed');
  }

  /**
   * Not reached by design (process() and write() do not throw). If it ever is, the error must not escape into
   * grpc-js' event emitter or become an unhandled rejection: the call ends with INTERNAL, and Envoy applies its
   * failure mode, as for any broken side stream.
   */
  private broken(err: unknown): void {
    this.busy = false;
    this.opts.hooks.processingError('unknown', err, this.opts.failureRule());
    this.call.emit('error', { code: grpc.status.INTERNAL, details: 'ext_proc stream failed' });
    this.finish('error');
  }

  private write(answer: Answer | Answer[], msg: WireProcessingRequest, started: number): void {
    if (this.call.cancelled || this.call.destroyed) return;
    const kind = msg.request;
    if (Array.isArray(answer)) {
      // Duplex: none while a body is held, several once it is whole (duplex.ts).
      if (answer.length === 0) return;
      for (const a of answer) this.call.write(a);
    } else {
      this.call.write(answer);
    }
    if (kind) this.opts.hooks.answered(kind, (performance.now() - started) / 1000);
    if (kind === 'request_trailers' || (kind === 'request_headers' && this.headersEndRequest) || ((kind === 'request_headers' || kind === 'request_body') && msg[kind]?.end_of_stream === true)) {
      this.requestAnswered = true;
    }
  }

  /** Returns the answer to write, or undefined when none is due. Never throws. */
  private process(msg: WireProcessingRequest): Outgoing | Promise<Outgoing> {
    const kind = msg.request;
    if (!kind) {
      // An unset oneof cannot be answered in kind; a gRPC error status makes Envoy apply its failure mode.
      // (grpc-js turns an 'error' event on a server stream into the call's final status.)
      const details = 'ProcessingRequest without a request';
      this.opts.hooks.processingError('unknown', new Error(details), 'reply');
      this.call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details });
      this.finish('error');
      return undefined;
    }
    if (this.replied) return undefined;
    if (kind.startsWith('response_')) this.requestAnswered = true;
    if (!this.handler) {
      this.observability = msg.observability_mode === true;
      const info = streamInfo(msg, this.call.metadata);
      if (!this.observability) this.duplex = duplexOf(info.protocolConfig);
      this.headersEndRequest = info.protocolConfig?.requestBodyMode === 'NONE';
      try {
        this.handler = this.factory(info);
      } catch (err) {
        return this.fail(msg, kind, err);
      }
    }
    if (this.degraded) return this.observability ? undefined : this.continueWith(msg, kind, CONTINUE, false);
    let decision: Decision | Promise<Decision>;
    try {
      decision = dispatch(this.handler, kind, msg);
    } catch (err) {
      return this.fail(msg, kind, err);
    }
    if (decision instanceof Promise) {
      return decision.then(
        (d) => this.encode(msg, kind, d),
        (err: unknown) => this.fail(msg, kind, err),
      );
    }
    return this.encode(msg, kind, decision);
  }

  /** A continue answer in the shape the message's direction needs. */
  private continueWith(msg: WireProcessingRequest, kind: RequestKind, d: ContinueDecision, allowModeOverride: boolean): Outgoing {
    return this.duplex?.covers(kind) ? this.duplex.answers(kind, d, msg) : continueAnswer(kind, d, allowModeOverride);
  }

  private encode(msg: WireProcessingRequest, kind: RequestKind, d: Decision): Outgoing {
    // In observability mode Envoy ignores answers and the server should send none (§9).
    if (this.observability) return undefined;
    try {
      if (d.kind === 'reply') {
        this.replied = true;
        return immediateResponse(d, this.handler?.replyHeaders?.());
      }
      // Envoy ignores mode_override when either body direction is duplex (§10): none is sent then.
      const allowOverride = this.opts.allowModeOverride() && !this.duplex;
      // An override's body modes apply as sent, an omitted one meaning NONE (§10): no request body follows then.
      if (kind === 'request_headers' && allowOverride && d.modeOverride && (d.modeOverride.requestBodyMode ?? 'NONE') === 'NONE') this.headersEndRequest = true;
      return this.continueWith(msg, kind, d, allowOverride);
    } catch (err) {
      return this.fail(msg, kind, err);
    }
  }

  private fail(msg: WireProcessingRequest, kind: RequestKind, err: unknown): Outgoing {
    const rule = this.opts.failureRule();
    this.opts.hooks.processingError(kind, err, rule);
    if (this.observability) return undefined;
    if (rule === 'reply') {
      const reply = this.opts.internalErrorReply();
      if (reply.kind === 'reply') {
        this.replied = true;
        let extra: ReadonlyArray<readonly [string, string]> | undefined;
        try {
          extra = this.handler?.replyHeaders?.();
        } catch {
          extra = undefined; // the 500 goes out whatever the failing handler can still say
        }
        return immediateResponse(reply, extra);
      }
    }
    this.degraded = true;
    return this.continueWith(msg, kind, CONTINUE, false);
  }

  /** The stream is being torn down from this side (a forced shutdown): it ends as cancelled. */
  cancel(): void {
    this.finish('cancelled');
  }

  /**
   * Ends the call with OK if Envoy may carry on without this server (createProcessHandler's endAll): the
   * request answered, or an immediate response sent, or observability mode (whose answers Envoy ignores); never
   * with a FULL_DUPLEX_STREAMED body, nor while the handler holds back bytes of the answer (they would never
   * reach the client, and the event they begin would arrive broken). A message still waiting for its answer
   * then goes on unmodified.
   */
  detach(): boolean {
    if (this.finished || this.call.cancelled || this.call.destroyed) return false;
    if (this.duplex || !(this.requestAnswered || this.replied || this.observability)) return false;
    try {
      if (this.handler?.detachable?.() === false) return false;
    } catch {
      return false;
    }
    this.finish('detached');
    return true;
  }

  /** Ends the call with UNAVAILABLE: Envoy fails the request, as for a server that went away (§8). */
  cut(): boolean {
    if (this.finished) return false;
    const open = !this.call.cancelled && !this.call.destroyed;
    // Ended first, so that the 'error' listener finds it finished: the end is a cancellation, not a failure.
    this.finish('cancelled');
    if (open) this.call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'tiergate is shutting down' });
    return true;
  }

  private finish(why: StreamEnd): void {
    if (this.finished) return;
    const reason = why === 'half-closed' && this.call.cancelled ? 'cancelled' : why;
    this.finished = true;
    this.open.delete(this);
    this.queue.length = 0;
    if (reason === 'half-closed' || reason === 'detached') this.call.end();
    // grpc-js' call, and with its listeners this loop, can outlive the stream until the next full GC
    // (docs/performance.md "Reading the numbers"); the handler holds the request's whole state, so it is let go
    // of here: in that GC regime it cut the bytes promoted per request from 7.5–8.3 KB to 5.4–6.2 KB (the bare
    // no-op: ~5 KB).
    const handler = this.handler;
    this.handler = undefined;
    // A duplex request body held for its headers answer is not needed any more either.
    this.duplex = undefined;
    try {
      handler?.end(reason);
    } catch (err) {
      this.opts.hooks.processingError('unknown', err, this.opts.failureRule());
    }
    this.opts.hooks.streamEnded(reason);
  }
}

/** What one message gets: an answer, several (duplex), or none. */
type Outgoing = Answer | Answer[] | undefined;
