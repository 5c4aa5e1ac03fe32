// Chosen members of a JSON object body, read as its bytes stream past, without keeping or parsing the body.
//
// An embeddings answer is one JSON object whose `usage` comes after all the vectors: 2,048 inputs of 1,536
// floats are ~62 MiB. Kept whole and given to JSON.parse, a 30 MiB one held the event loop ~190 ms, and one
// past the 32 MiB kept was not read at all: its usage was estimated, and for a path whose request tiergate does
// not read that estimate is zero tokens. This reads only the top level of the object: the member names, and the
// bytes of the wanted members' values (each up to a bound), which are then parsed on their own. Everything
// nested is skipped by looking only for quotes, backslashes and brackets, found by native string searches.
//
// Bytes are read as latin1, one character per byte: the characters that matter (quotes, backslashes,
// brackets, commas, colons) are ASCII, and no byte of a multi-byte UTF-8 character is ASCII. A member that
// appears twice counts last, as JSON.parse would have it.

/** Inside nested values: what can change the depth or start a string. */
const NESTED = /["{}[\]]/g;
/** Inside a string: its end, or an escape. */
const IN_STRING = /["\\]/g;
/** Where a number, true, false or null at the top level ends. */
const SCALAR_END = /[,}\s]/g;

type Where =
  | 'before' // before the opening brace
  | 'key' // expecting a member's name or the closing brace
  | 'colon'
  | 'value' // expecting a value
  | 'after' // after a value: a comma or the closing brace
  | 'done' // after the closing brace: only whitespace
  | 'bad'; // not a JSON object: nothing is read

export class TopLevelMembers {
  private where: Where = 'before';
  /** Nesting inside the current top-level value (0 at the top level). */
  private depth = 0;
  private inString = false;
  /** The last chunk ended inside a string, right after a backslash. */
  private escaped = false;
  /** The member whose name is being read or whose value follows. */
  private name = '';
  private readingName = false;
  private readingScalar = false;
  /** Pieces of the wanted value being read (undefined: the value is not wanted, or grew too large). */
  private value: string[] | undefined;
  private valueChars = 0;
  private readonly found = new Map<string, string>();

  constructor(
    private readonly wanted: ReadonlySet<string>,
    /** A wanted value longer than this is not read (a `usage` is a few hundred bytes). */
    private readonly maxValueChars = 64 * 1024,
  ) {}

  push(chunk: Buffer): void {
    if (this.where === 'bad' || chunk.length === 0) return;
    const s = chunk.toString('latin1');
    let from = 0; // start of the part of `s` that belongs to the value being read
    let i = 0;
    while (i < s.length && this.where !== 'bad') {
      if (this.inString) {
        if (this.escaped) {
          this.escaped = false;
          if (this.readingName) this.name += s[i];
          i++;
          continue;
        }
        IN_STRING.lastIndex = i;
        const m = IN_STRING.exec(s);
        if (m === null) {
          if (this.readingName) this.name += s.slice(i);
          i = s.length;
          break;
        }
        if (s.charCodeAt(m.index) === 0x5c) {
          if (this.readingName) this.name += s.slice(i, m.index + 2);
          // The escaped character may be in the next chunk.
          if (m.index + 1 >= s.length) {
            this.escaped = true;
            i = s.length;
          } else i = m.index + 2;
          continue;
        }
        // The string ends.
        this.inString = false;
        if (this.readingName) {
          this.name = nameOf(this.name + s.slice(i, m.index));
          this.readingName = false;
          this.where = 'colon';
        } else if (this.depth === 0) {
          this.where = 'after';
          i = m.index + 1;
          from = this.endValue(s, from, i);
          continue;
        }
        i = m.index + 1;
        continue;
      }
      if (this.depth > 0) {
        NESTED.lastIndex = i;
        const m = NESTED.exec(s);
        if (m === null) {
          i = s.length;
          break;
        }
        const c = s.charCodeAt(m.index);
        i = m.index + 1;
        if (c === 0x22) this.inString = true;
        else if (c === 0x7b || c === 0x5b) this.depth++;
        else if (--this.depth === 0) {
          this.where = 'after';
          from = this.endValue(s, from, i);
        }
        continue;
      }
      if (this.readingScalar) {
        SCALAR_END.lastIndex = i;
        const m = SCALAR_END.exec(s);
        if (m === null) {
          i = s.length;
          break;
        }
        this.readingScalar = false;
        this.where = 'after';
        i = m.index;
        from = this.endValue(s, from, i);
        continue;
      }
      // The top level, one character at a time: names, colons, commas and where values start are few.
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
        i++;
        continue;
      }
      switch (this.where) {
        case 'before':
          this.where = c === 0x7b ? 'key' : 'bad';
          break;
        case 'key':
          if (c === 0x22) {
            this.inString = true;
            this.readingName = true;
            this.name = '';
          } else this.where = c === 0x7d ? 'done' : 'bad';
          break;
        case 'colon':
          this.where = c === 0x3a ? 'value' : 'bad';
          break;
        case 'value':
          from = i;
          this.startValue();
          if (c === 0x22) this.inString = true;
          else if (c === 0x7b || c === 0x5b) this.depth = 1;
          else if (c === 0x2c || c === 0x7d || c === 0x5d || c === 0x3a) this.where = 'bad';
          else {
            this.readingScalar = true;
            continue; // the scalar's first character is read by the scalar search
          }
          break;
        case 'after':
          this.where = c === 0x2c ? 'key' : c === 0x7d ? 'done' : 'bad';
          break;
        case 'done':
          this.where = 'bad';
          break;
      }
      i++;
    }
    if (this.value !== undefined && this.where !== 'bad') this.keep(s.slice(from));
  }

  /**
   * The wanted members, parsed, once the body has ended; undefined when it was not a whole JSON object. A value
   * that does not parse on its own is left out (a body that JSON.parse would refuse).
   */
  finish(): Record<string, unknown> | undefined {
    if (this.where !== 'done') return undefined; // not an object, or one cut short
    const out: Record<string, unknown> = {};
    for (const [name, text] of this.found) {
      try {
        out[name] = JSON.parse(Buffer.from(text, 'latin1').toString('utf8'));
      } catch {
        // not JSON: left out
      }
    }
    return out;
  }

  private startValue(): void {
    this.value = this.wanted.has(this.name) ? [] : undefined;
    this.valueChars = 0;
  }

  /** The value read ended at `end`: kept if wanted. Returns where the next value's part of `s` starts. */
  private endValue(s: string, from: number, end: number): number {
    if (this.value !== undefined) {
      this.keep(s.slice(from, end));
      if (this.value !== undefined) this.found.set(this.name, this.value.join(''));
      this.value = undefined;
    }
    return end;
  }

  private keep(piece: string): void {
    if (this.value === undefined) return;
    this.valueChars += piece.length;
    if (this.valueChars > this.maxValueChars) {
      this.value = undefined;
      this.found.delete(this.name); // an earlier member of the same name is not this one
      return;
    }
    this.value.push(piece);
  }
}

/** A member's name as JSON.parse reads it: escapes undone (`"us\u0061ge"` is `usage`). */
function nameOf(raw: string): string {
  if (!raw.includes('\\')) return raw;
  try {
    return JSON.parse(`"${Buffer.from(raw, 'latin1').toString('utf8')}"`) as string;
  } catch {
    return raw;
  }
}
