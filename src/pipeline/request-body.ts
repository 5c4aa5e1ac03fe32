// The request body as Envoy's ext_proc filter delivers it (envoy-ext-proc.md §5): BUFFERED, one message with
// end_of_stream; STREAMED, in pieces. Collected up to limits.maxRequestBodyBytes for the pipeline, which runs
// once the body is whole.
import { CONTINUE, type ContinueDecision } from '../extproc/types.js';

/** The body went past the limit: the request is answered 413. */
export const TOO_LARGE = Symbol('too large');

const HELD_BACK: ContinueDecision = { kind: 'continue', body: Buffer.alloc(0) };

export class RequestBody {
  private chunks: Buffer[] = [];
  private received = 0;
  private messages = 0;

  /**
   * `hold`: Envoy told us the mode is STREAMED (protocol_config, 1.34+), so pieces are held back (an empty
   * replacement each) and the whole, rewritten body goes out with the last one. Otherwise (BUFFERED_PARTIAL,
   * or an older Envoy) a piece may be all we ever see of the body, so it passes unchanged.
   */
  constructor(
    private readonly hold: boolean,
    private readonly limit: number,
  ) {}

  /** The whole body once its last piece is in; before that, the answer to this piece. */
  push(chunk: Buffer, endOfStream: boolean): Buffer | ContinueDecision | typeof TOO_LARGE {
    this.received += chunk.length;
    this.messages++;
    if (this.received > this.limit) return TOO_LARGE;
    this.chunks.push(chunk);
    if (!endOfStream) return this.hold ? HELD_BACK : CONTINUE;
    const whole = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    this.chunks = [];
    return whole;
  }

  /** Whether the last piece's answer carries the body: one message when it changed; several only if held back. */
  replaced(changed: boolean): boolean {
    return this.messages === 1 ? changed : this.hold;
  }
}
