// An incremental Server-Sent Events parser (WHATWG HTML §9.2.6) over raw byte chunks cut anywhere: inside a
// line, inside a UTF-8 sequence, between the CR and LF of a CRLF. Lines are split on bytes (CR and LF never
// occur inside a multi-byte UTF-8 sequence), so each line is decoded only once it is whole.

const LF = 0x0a;
const CR = 0x0d;

export interface SseEvent {
  /** The `event:` field, or 'message' when absent. */
  type: string;
  /** The `data:` lines joined with "\n". */
  data: string;
}

export class SseParser {
  /** Bytes of a line not yet terminated. */
  private carry: Buffer | undefined;
  /** The previous chunk ended in CR: a LF at the start of the next one belongs to it. */
  private skipLf = false;
  private data: string[] = [];
  private eventType = '';

  constructor(private readonly onEvent: (e: SseEvent) => void) {}

  push(chunk: Buffer): void {
    let start = 0;
    if (this.skipLf && chunk.length > 0) {
      this.skipLf = false;
      if (chunk[0] === LF) start = 1;
    }
    const n = chunk.length;
    let i = start;
    while (i < n) {
      const b = chunk[i] as number;
      if (b !== LF && b !== CR) {
        i++;
        continue;
      }
      this.line(this.take(chunk, start, i));
      if (b === CR) {
        if (i + 1 < n) {
          if (chunk[i + 1] === LF) i++;
        } else {
          this.skipLf = true;
        }
      }
      i++;
      start = i;
    }
    if (start < n) {
      const rest = chunk.subarray(start);
      // Copied: Envoy's buffer may be reused once the answer is written.
      this.carry = this.carry ? Buffer.concat([this.carry, rest]) : Buffer.from(rest);
    }
  }

  /**
   * The body is over. A last event without its blank line is still dispatched: the spec would drop it, but
   * servers that end the connection right after the data line exist, and its usage must still count.
   */
  end(): void {
    if (this.carry) this.line(this.take(Buffer.alloc(0), 0, 0));
    this.line('');
  }

  private take(chunk: Buffer, from: number, to: number): string {
    if (!this.carry) return chunk.toString('utf8', from, to);
    const whole = Buffer.concat([this.carry, chunk.subarray(from, to)]);
    this.carry = undefined;
    return whole.toString('utf8');
  }

  private line(line: string): void {
    if (line.length === 0) {
      if (this.data.length > 0) {
        this.onEvent({ type: this.eventType || 'message', data: this.data.length === 1 ? (this.data[0] as string) : this.data.join('\n') });
      }
      this.data = [];
      this.eventType = '';
      return;
    }
    if (line.charCodeAt(0) === 0x3a) return; // ':' comment
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.eventType = value;
    // id and retry do not matter to usage accounting.
  }
}
