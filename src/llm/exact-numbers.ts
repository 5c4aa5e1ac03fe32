// Integers beyond 2^53 in a request body, kept digit for digit through the body rewrite.
//
// The route stage rewrites `model` (and `stream_options`) and re-serialises the body. JSON.parse turns an
// integer beyond 2^53 into the nearest double, so a 64-bit `seed` or a numeric id in `metadata` would reach the
// backend changed (9223372036854775807 becomes 9223372036854776000): the backend parses integers exactly, so
// that is another seed, another id. Only integers matter: a float that JSON.parse rounds is read back to the
// same double by any backend.
//
// How, without a JSON parser of our own (Node 20's JSON.parse cannot hand over a number's source text):
// 1. Every body gets a cheap scan for runs of 16 or more digits that start a value, are a whole integer and do
//    not fit a double exactly. Almost every body has none, and that scan is all it costs.
// 2. Each such run is wrapped into a marked string (`"\u0001tg` digits `"`) and the text parsed again by
//    JSON.parse: the exact view. A run inside a string cannot survive this: the inserted quote ends the string
//    and the `\` after it is a syntax error, so if the text parses, every wrapped run was a number, and the two
//    views are the same parse of the same structure.
// 3. The route stage serialises the exact view and unwraps the marked strings into bare digits. The result is
//    only sent if JSON.parse reads it back as exactly the body built from the validated view (exactOr), so a
//    client string that looks like a mark can never turn into anything validation did not see.

/** The mark's text inside a JSON string, as JSON.stringify writes it back: \u0001 is escaped on output. */
const MARK = '\\u0001tg';
const UNWRAP = /"\\u0001tg(-?[0-9]+)"/g;

/**
 * Byte ranges [first, end) of the integers JSON.parse would round: runs of 16 or more digits (with their minus)
 * where a value starts (after `:`, `[` or `,` and maybe whitespace), ending where the value ends, beyond 2^53.
 * Every request body goes through this and agents send bodies of tens of KB, so it looks at every 16th byte
 * only (any run of 16 digits holds one of them) and measures a run only where it lands on a digit; no byte of a
 * multi-byte UTF-8 character is an ASCII digit. `npm run bench:long-integers` measures it against the
 * equivalent regular expression, which tries every position.
 */
export function longIntegers(s: Buffer): Array<[number, number]> {
  let found: Array<[number, number]> | undefined;
  for (let i = 15; i < s.length; i += 16) {
    if (!isDigit(s[i] as number)) continue;
    let first = i;
    while (first > 0 && isDigit(s[first - 1] as number)) first--;
    let last = i;
    while (last + 1 < s.length && isDigit(s[last + 1] as number)) last++;
    if (last - first >= 15) {
      const start = valueStart(s, first);
      if (start >= 0 && endsValue(s[last + 1]) && !fitsDouble(s, start, last + 1)) (found ??= []).push([start, last + 1]);
    }
    i = last; // the next run starts after last + 1, and last + 16 lies in it if it is 16 long
  }
  return found ?? NONE;
}

const NONE: Array<[number, number]> = [];
const isDigit = (c: number) => c >= 48 && c <= 57;

/** Where the number whose digits start at `at` begins (its minus sign), or -1 when no value starts there. */
function valueStart(s: Buffer, at: number): number {
  const start = s[at - 1] === 45 ? at - 1 : at; // '-'
  let k = start - 1;
  while (s[k] === 32 || s[k] === 9 || s[k] === 10 || s[k] === 13) k--;
  return s[k] === 58 || s[k] === 91 || s[k] === 44 ? start : -1; // ':' '[' ','
}

/** An integer ends at whitespace, `,`, `]` or `}`; a `.` or an exponent makes it a float, which needs nothing. */
const endsValue = (c: number | undefined) => c === 44 || c === 93 || c === 125 || c === 32 || c === 9 || c === 10 || c === 13;

/**
 * Whether the integer in s[start, end) (digits, after an optional minus) is a safe integer, as
 * Number.isSafeInteger(Number(text)) says, read from the bytes: no string per run, which a body of many long
 * integers paid for each (bench/long-integer-scan.ts).
 */
function fitsDouble(s: Buffer, start: number, end: number): boolean {
  let first = s[start] === 45 ? start + 1 : start; // '-'
  while (first < end - 1 && s[first] === 48) first++; // leading zeros ('0'), as Number() drops them
  const digits = end - first;
  if (digits !== MAX_SAFE.length) return digits < MAX_SAFE.length;
  return s.compare(MAX_SAFE, 0, MAX_SAFE.length, first, end) <= 0;
}
/** Number.MAX_SAFE_INTEGER's digits; a safe integer's magnitude is at most this, whatever its sign. */
const MAX_SAFE = Buffer.from(String(Number.MAX_SAFE_INTEGER));

/**
 * The body parsed with every integer JSON.parse would round wrapped into a marked string; undefined when there
 * is none (almost always). A candidate run can lie inside a string (`"note": ": 9223372036854775807,"` looks
 * like a value to the scan); then the wrapped text does not parse, and the runs are sorted out by a walk that
 * knows where strings are, which only such bodies pay. Before, one such string lost every other integer of the
 * body to rounding, a 64-bit seed included (test/integration/fuzz.test.ts found it).
 */
export function exactView(body: Buffer): Record<string, unknown> | undefined {
  const runs = longIntegers(body);
  if (runs.length === 0) return undefined;
  const all = parseWrapped(body, runs);
  if (all !== undefined) return all;
  const values = outsideStrings(body, runs);
  return values.length > 0 && values.length < runs.length ? parseWrapped(body, values) : undefined;
}

function parseWrapped(body: Buffer, runs: ReadonlyArray<[number, number]>): Record<string, unknown> | undefined {
  // One buffer, copied into: a list of four slices per run cost a Buffer object each, which a body of many long
  // integers paid hundreds of thousands of times.
  const wrapped = Buffer.allocUnsafe(body.length + runs.length * (OPEN.length + QUOTE.length));
  let at = 0;
  let from = 0;
  for (const [start, end] of runs) {
    at += body.copy(wrapped, at, from, start);
    at += OPEN.copy(wrapped, at);
    at += body.copy(wrapped, at, start, end);
    at += QUOTE.copy(wrapped, at);
    from = end;
  }
  body.copy(wrapped, at, from);
  try {
    const v: unknown = JSON.parse(wrapped.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The runs (in order) that do not start inside a JSON string: one walk over the bytes, escapes included. */
export function outsideStrings(body: Buffer, runs: ReadonlyArray<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let inString = false;
  let next = 0;
  for (let i = 0; i < body.length && next < runs.length; i++) {
    // A run that starts on a byte skipped as escaped is inside a string.
    while (next < runs.length && (runs[next] as [number, number])[0] < i) next++;
    if (next < runs.length && (runs[next] as [number, number])[0] === i) {
      if (!inString) out.push(runs[next] as [number, number]);
      next++;
    }
    const c = body[i] as number;
    if (inString && c === 0x5c) i++; // a backslash: the next byte is escaped, a quote included
    else if (c === 0x22) inString = !inString;
  }
  return out;
}

const OPEN = Buffer.from(`"${MARK}`);
const QUOTE = Buffer.from('"');

/**
 * The exact view (after the route's changes) serialised with its marked strings unwrapped into bare integers,
 * when JSON.parse reads that back as exactly `lossy`, the body built from the validated view; otherwise `lossy`.
 */
export function exactOr(lossy: string, exact: Record<string, unknown>): { text: string; exact: boolean } {
  const text = JSON.stringify(exact).replace(UNWRAP, '$1');
  try {
    if (JSON.stringify(JSON.parse(text)) === lossy) return { text, exact: true };
  } catch {
    // a mark unwrapped where a number cannot stand (a key): not the validated body
  }
  return { text: lossy, exact: false };
}
