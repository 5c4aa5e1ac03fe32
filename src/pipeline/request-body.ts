// The request body as Envoy's ext_proc filter delivers it (envoy-ext-proc.md §5): BUFFERED, one message with
// end_of_stream; FULL_DUPLEX_STREAMED (or STREAMED from an Envoy that does not say its mode), in pieces.
// Collected up to limits.maxRequestBodyBytes for the pipeline, which runs once the body is whole.
import { CONTINUE, type BodySendMode, type ContinueDecision } from '../extproc/types.js';

/** The body went past the limit: the request is answered 413. */
export const TOO_LARGE = Symbol('too large');
/** BUFFERED_PARTIAL: the body outgrew Envoy's buffer, and the rest would pass unseen: answered 413 too. */
export const UNSEEN_REST = Symbol('unseen rest');

export class RequestBody {
  private chunks: Buffer[] = [];
  private received = 0;
  private messages = 0;
  private whole = false;
  /**
   * FULL_DUPLEX_STREAMED: the transport keeps the pieces and sends the body on once it is whole (duplex.ts), so
   * a piece needs no answer of its own and the last answer carries a body only when it changed. With an Envoy
   * older than 1.34, which does not say, a piece may be all we ever see of the body, so it passes unchanged.
   */
  readonly duplex: boolean;
  /**
   * BUFFERED: Envoy sends the body in one message, with end_of_stream false when trailers follow (§2.4, SRC
   * Filter::onTrailers, whatever the trailer mode). That message is the whole body all the same; waiting for an
   * end that never comes would let the request through undecided: unrouted, and past every limit.
   */
  private readonly oneMessage: boolean;
  /** BUFFERED_PARTIAL: a message without end_of_stream means the body outgrew Envoy's buffer (§2.2). */
  private readonly partial: boolean;
  /**
   * NONE, as Envoy 1.34+ says in protocol_config (the effective mode, a route's override included): no body will
   * come, and the request would go upstream unrouted and unchecked once its headers are answered.
   */
  readonly notSent: boolean;
  /**
   * STREAMED, as Envoy 1.34+ says: Envoy releases the request's headers with the answer to them, before any piece
   * of the body comes (§2.2, §6), so the route is chosen before tiergate can read the prompt or the model.
   */
  readonly streamed: boolean;

  constructor(
    mode: BodySendMode | undefined,
    private readonly limit: number,
  ) {
    this.streamed = mode === 'STREAMED';
    this.duplex = mode === 'FULL_DUPLEX_STREAMED';
    this.oneMessage = mode === 'BUFFERED';
    this.partial = mode === 'BUFFERED_PARTIAL';
    this.notSent = mode === 'NONE';
  }

  /** Whether any piece of the body has come. */
  get seen(): boolean {
    return this.messages > 0;
  }

  /** The body has not ended yet (no piece with end_of_stream). */
  get open(): boolean {
    return !this.whole;
  }

  /** The whole body once its last piece is in; before that, the answer to this piece. */
  push(chunk: Buffer, endOfStream: boolean): Buffer | ContinueDecision | typeof TOO_LARGE | typeof UNSEEN_REST {
    this.received += chunk.length;
    this.messages++;
    if (this.received > this.limit) return TOO_LARGE;
    this.chunks.push(chunk);
    if (!endOfStream && !this.oneMessage) {
      if (this.partial) return UNSEEN_REST;
      return CONTINUE;
    }
    const whole = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    this.chunks = [];
    this.whole = true;
    return whole;
  }

  /**
   * Whether the last piece's answer carries the body: one message (or duplex) when it changed. Of several pieces
   * from an Envoy that did not say its mode, the earlier ones went on as they came, so nothing is replaced.
   */
  replaced(changed: boolean): boolean {
    return (this.messages === 1 || this.duplex) && changed;
  }
}
