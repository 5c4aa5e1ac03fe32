// Takes the usage chunk back out of a chat or completions stream when tiergate, not the client, asked for it.
// tiergate forces stream_options.include_usage on every stream so spend is always counted (landscape.md
// "Streamed spend"); the backend then ends the stream with one more event, `{"choices": [], "usage": {…}}`,
// which a client that did not ask for it may not expect (code that reads `chunk.choices[0]` unguarded fails on
// it). Envoy sends a STREAMED response body chunk by chunk and takes each answer's body mutation as that chunk's
// replacement (envoy-ext-proc.md §5), so the filter answers each chunk with the bytes to send instead.
//
// It works on bytes and cuts only at event boundaries (a blank line, WHATWG HTML §9.2.6): every event but the
// usage one goes out byte for byte. Chunks are cut wherever the network cut them. The part of an event not yet
// ended goes on at once when it already shows a non-empty `choices` (it cannot be the usage chunk), and is held
// back otherwise, to be sent with the chunk that ends it (a client cannot use half an event anyway). The usage
// accounting reads the chunks as the backend sent them, before this filter.

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);
const USAGE_KEY = Buffer.from('"usage"');
const CHOICES_KEY = Buffer.from('"choices"');

/**
 * An event held back past this size is not a usage chunk (those are a few hundred bytes): the filter sends what
 * it holds and lets the rest of the body through untouched. Bounds what one stream can make tiergate hold.
 */
export const MAX_HELD_BYTES = 64 * 1024;

export class ForcedUsageFilter {
  /** Bytes of an event begun in earlier chunks and not yet ended. */
  private held: Buffer | undefined;
  /** Length of the current line so far (across chunks): a terminator after an empty line ends an event. */
  private lineLength = 0;
  /** The last byte seen was a CR: a LF right after it is the same line terminator. */
  private afterCr = false;
  /**
   * The previous chunk ended with the CR that ended an event, taken out or sent: a LF opening this chunk is
   * that CRLF's second half, and goes (or is left out) with it.
   */
  private endedAtCr: 'sent' | 'removed' | undefined;
  /** The event under way was sent in part already (it cannot be the usage chunk): the rest goes out unread. */
  private passing = false;
  /** The body stopped being filtered (an event too large to be a usage chunk). */
  private off = false;
  /** Usage chunks taken out so far. */
  removed = 0;

  /** Bytes of the answer are held back, owed to the client with a later chunk: the body cannot go on without this filter. */
  get holding(): boolean {
    return this.held !== undefined;
  }

  /**
   * The bytes to send in place of this chunk, or undefined when they are the chunk itself. `last`: the body
   * ends with it, so whatever is held goes out now.
   */
  push(chunk: Buffer, last: boolean): Buffer | undefined {
    if (this.off) return undefined;
    // The usual chunk: whole events (nothing held, and it ends with a blank line), none of them the usage chunk.
    // One native search answers it; the framing below runs only for the others.
    const n = chunk.length;
    const whole = !this.held && !this.passing && !this.endedAtCr && !this.afterCr && n >= 2 && chunk[n - 1] === LF && chunk[n - 2] === LF;
    if (whole && !hasUsageObject(chunk)) return undefined;
    const held = this.held;
    this.held = undefined;
    let passing = this.passing;
    this.passing = false;
    const out: Buffer[] = [];
    let changed = held !== undefined;
    let start = 0;
    if (this.endedAtCr && chunk[0] === LF) {
      start = 1;
      if (this.endedAtCr === 'sent') out.push(chunk.subarray(0, 1));
      else changed = true;
    }
    this.endedAtCr = undefined;
    const keep = (from: number, to: number): void => {
      const event = from === 0 && held ? Buffer.concat([held, chunk.subarray(0, to)]) : chunk.subarray(from, to);
      // The first event here may be the end of one already under way, which goes out as it is.
      const removed = !passing && isUsageChunk(event);
      passing = false;
      if (removed) {
        this.removed++;
        changed = true;
      } else if (event.length > 0) {
        out.push(event);
      }
      if (to === chunk.length && chunk[to - 1] === CR) this.endedAtCr = removed ? 'removed' : 'sent';
    };
    // Most streams use LF only; native searches then find the blank lines. CR (alone or in CRLF) takes the
    // byte-by-byte walk, which also carries a CRLF split between two chunks.
    const ends = this.afterCr || chunk.includes(CR) ? this.walk(chunk) : this.lfEnds(chunk);
    for (const end of ends) {
      keep(start, end);
      start = end;
    }
    if (start < chunk.length || (start === 0 && held)) {
      const rest = start === 0 && held ? Buffer.concat([held, chunk]) : chunk.subarray(start);
      if (last) {
        // A last event without its blank line still counts as one (the SSE parser reads it the same way).
        keep(start, chunk.length);
      } else if (passing || !mayBeUsage(rest)) {
        out.push(rest);
        this.passing = true;
      } else if (rest.length > MAX_HELD_BYTES) {
        this.off = true;
        out.push(rest);
      } else {
        this.held = Buffer.from(rest); // a copy: Envoy's chunk buffer is not ours once answered
        changed = true;
      }
    }
    if (!changed) return undefined;
    return out.length === 0 ? EMPTY : out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
  }

  /** Offsets just past each blank line's terminator, for a chunk with LF terminators only. */
  private lfEnds(chunk: Buffer): number[] {
    const ends: number[] = [];
    let from = 0;
    let lineStart = this.lineLength > 0 ? -1 : 0;
    for (let i = chunk.indexOf(LF); i !== -1; i = chunk.indexOf(LF, from)) {
      if (i === lineStart) ends.push(i + 1);
      from = i + 1;
      lineStart = from;
    }
    this.lineLength = from === 0 ? this.lineLength + chunk.length : chunk.length - from;
    return ends;
  }

  /** The same for any terminator (LF, CR, CRLF), byte by byte. */
  private walk(chunk: Buffer): number[] {
    const ends: number[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] as number;
      if (b === LF && this.afterCr) {
        // The LF of a CRLF: if the CR ended an event, the LF goes with it.
        this.afterCr = false;
        if (ends.at(-1) === i) ends[ends.length - 1] = i + 1;
        continue;
      }
      this.afterCr = b === CR;
      if (b !== LF && b !== CR) {
        this.lineLength++;
        continue;
      }
      if (this.lineLength === 0) ends.push(i + 1);
      this.lineLength = 0;
    }
    return ends;
  }
}

/**
 * Whether an event not yet ended may still turn out to be the usage chunk: not once its `choices` array shows an
 * element (an object). Anything else, including a `choices` not yet seen, may be.
 */
function mayBeUsage(partial: Buffer): boolean {
  const at = partial.indexOf(CHOICES_KEY);
  if (at === -1) return true;
  let i = skipBlank(partial, at + CHOICES_KEY.length);
  if (partial[i] !== 0x5b) return true; // '['
  i = skipBlank(partial, i + 1);
  return partial[i] !== 0x7b; // '{'
}

/** The index of the first byte from `i` that is not blank or a colon. */
function skipBlank(b: Buffer, i: number): number {
  while (i < b.length && (b[i] === 0x20 || b[i] === 0x3a || b[i] === 0x09 || b[i] === LF || b[i] === CR)) i++;
  return i;
}

/** `"usage"` followed by an object somewhere in the bytes (every chunk of such a stream has `"usage":null`). */
function hasUsageObject(bytes: Buffer): boolean {
  for (let at = bytes.indexOf(USAGE_KEY); at !== -1; at = bytes.indexOf(USAGE_KEY, at + 1)) {
    if (bytes[skipBlank(bytes, at + USAGE_KEY.length)] === 0x7b) return true; // '{'
  }
  return false;
}

/** The stream's usage chunk: an event whose data is a JSON object with an empty `choices` and a `usage` object. */
function isUsageChunk(event: Buffer): boolean {
  if (!hasUsageObject(event)) return false;
  const data: string[] = [];
  for (const line of event.toString('utf8').split(/\r\n|\r|\n/)) {
    if (line.startsWith('data:')) data.push(line.charCodeAt(5) === 0x20 ? line.slice(6) : line.slice(5));
  }
  try {
    const o = JSON.parse(data.join('\n')) as { choices?: unknown; usage?: unknown };
    return Array.isArray(o.choices) && o.choices.length === 0 && typeof o.usage === 'object' && o.usage !== null;
  } catch {
    return false;
  }
}
