// An incremental Server-Sent Events parser (WHATWG HTML §9.2.6) over raw byte chunks cut anywhere: inside a
// line, inside a UTF-8 sequence, between the CR and LF of a CRLF. Lines are split on bytes (CR and LF never
// occur inside a multi-byte UTF-8 sequence), so each line is decoded only once it is whole. A line cut into
// many chunks is joined once, when it ends: joining at every chunk made a 16 MiB line in 16 KiB chunks cost
// ~30 s of one core, every stream of the process waiting. An event larger than its bound is dropped whole.

const LF = 0x0a;
const CR = 0x0d;

export interface SseEvent {
  /** The `event:` field, or 'message' when absent. */
  type: string;
  /** The `data:` lines joined with "\n". */
  data: string;
}

export class SseParser {
  /** The pieces of a line not yet terminated (copies), joined once the line ends. */
  private carry: Buffer[] = [];
  private carryBytes = 0;
  /** The previous chunk ended in CR: a LF at the start of the next one belongs to it. */
  private skipLf = false;
  private data: string[] = [];
  private eventType = '';
  /** Bytes of the event under way (its lines so far, the unterminated one included). */
  private eventBytes = 0;
  /** The event under way outgrew maxEventBytes: the rest of it is skipped, up to its blank line. */
  private dropping = false;
  /** While dropping: bytes of the unterminated line were skipped, so its end is not a blank line. */
  private droppedLineOpen = false;
  /** No line has ended yet: the stream's first line may start with a byte order mark. */
  private atStart = true;

  constructor(
    private readonly onEvent: (e: SseEvent) => void,
    /** Larger events are dropped, and reported to onDropped, rather than held in memory. */
    private readonly maxEventBytes = 32 * 1024 * 1024,
    private readonly onDropped?: () => void,
  ) {}

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
      this.lineEnded(chunk, start, i);
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
    if (start === n) return;
    if (this.grow(n - start)) {
      // Copied: Envoy's buffer may be reused once the answer is written.
      this.carry.push(Buffer.from(chunk.subarray(start)));
      this.carryBytes += n - start;
    } else {
      this.droppedLineOpen = true;
    }
  }

  /**
   * The body is over. A last event without its blank line is still dispatched: the spec would drop it, but
   * servers that end the connection right after the data line exist, and its usage must still count.
   */
  end(): void {
    if (this.carry.length > 0) this.lineEnded(EMPTY, 0, 0);
    this.line('');
  }

  /** Counts `bytes` more of the event under way; false once it is (or already was) too large to keep. */
  private grow(bytes: number): boolean {
    if (this.dropping) return false;
    this.eventBytes += bytes;
    if (this.eventBytes <= this.maxEventBytes) return true;
    this.dropping = true;
    this.carry = [];
    this.carryBytes = 0;
    this.data = [];
    this.onDropped?.();
    return false;
  }

  private lineEnded(chunk: Buffer, from: number, to: number): void {
    const first = this.atStart;
    this.atStart = false;
    if (this.dropping) {
      // Only the blank line that ends the dropped event matters: the next event starts clean after it.
      const blank = to === from && !this.droppedLineOpen;
      this.droppedLineOpen = false;
      if (blank) {
        this.dropping = false;
        this.eventBytes = 0;
        this.eventType = '';
      }
      return;
    }
    if (!this.grow(to - from)) return;
    let line: string;
    if (this.carry.length === 0) {
      line = chunk.toString('utf8', from, to);
    } else {
      this.carry.push(chunk.subarray(from, to));
      line = Buffer.concat(this.carry, this.carryBytes + to - from).toString('utf8');
      this.carry = [];
      this.carryBytes = 0;
    }
    // The spec's decoder drops one byte order mark before the stream; Node's does not. Kept, it would make the
    // first line's field "\uFEFFdata", and the first event (a whole answer, in a one-event stream) would be lost.
    this.line(first && line.charCodeAt(0) === 0xfeff ? line.slice(1) : line);
  }

  private line(line: string): void {
    if (line.length === 0) {
      if (this.data.length > 0) {
        this.onEvent({ type: this.eventType || 'message', data: this.data.length === 1 ? (this.data[0] as string) : this.data.join('\n') });
      }
      this.data = [];
      this.eventType = '';
      this.eventBytes = 0;
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

const EMPTY = Buffer.alloc(0);
