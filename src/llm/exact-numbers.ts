// Integers beyond 2^53 in a request body, kept digit for digit through the body rewrite.
//
// The route stage rewrites `model` (and `stream_options`) and re-serialises the body. JSON.parse turns an
// integer beyond 2^53 into the nearest double, so a 64-bit `seed` or a numeric id in `metadata` would reach the
// backend changed (9223372036854775807 becomes 9223372036854776000): the backend parses integers exactly, so
// that is another seed, another id. Only integers matter: a float that JSON.parse rounds is read back to the
// same double by any backend.
//
// The body is parsed a second time only when a cheap test on the raw text says it may hold such an integer;
// otherwise all this costs is that test. The second parse (lossless-json) keeps unsafe numbers as their source
// text and reads everything else as JSON.parse does (the last duplicate key wins, `__proto__` is an own key).
// What was validated and classified is still JSON.parse's view: the exact body is only sent when it says the
// same thing, checked by reading it back (exactOr below), so no difference between the two parsers can put
// anything in front of the backend that validation did not see.
import { isSafeNumber, LosslessNumber, parse, stringify } from 'lossless-json';

/**
 * Whether the UTF-8 text has a run of 16 or more digits where a JSON value starts (after `:`, `[` or `,`, maybe
 * whitespace and a minus): maybe an integer beyond 2^53, which has 16 digits. Every request body goes through
 * this, and agents send bodies of tens of KB, so it looks at every 16th character only (any run of 16 digits
 * holds one of them) and measures a run only where it lands on a digit, in the body's bytes (no byte of a
 * multi-byte UTF-8 character is an ASCII digit). `npm run bench:long-integers` measures it against the
 * equivalent regular expression, which tries every position. A false positive only costs the second parse.
 */
export function mayHoldLongInteger(s: Uint8Array): boolean {
  for (let i = 15; i < s.length; i += 16) {
    if (!isDigit(s[i] as number)) continue;
    let first = i;
    while (first > 0 && isDigit(s[first - 1] as number)) first--;
    let last = i;
    while (last + 1 < s.length && isDigit(s[last + 1] as number)) last++;
    if (last - first >= 15 && startsValue(s, first)) return true;
    i = last; // the next run starts after last + 1, and last + 16 lies in it if it is 16 long
  }
  return false;
}

const isDigit = (c: number) => c >= 48 && c <= 57;

function startsValue(s: Uint8Array, at: number): boolean {
  let k = at - 1;
  if (s[k] === 45) k--; // '-'
  while (s[k] === 32 || s[k] === 9 || s[k] === 10 || s[k] === 13) k--;
  return s[k] === 58 || s[k] === 91 || s[k] === 44; // ':' '[' ','
}

/**
 * The body as an object whose numbers JSON.parse would change are LosslessNumbers holding their source text;
 * undefined when there are none (or the text does not parse: JSON.parse's view is then all there is).
 */
export function exactView(bytes: Uint8Array, text: string): Record<string, unknown> | undefined {
  if (!mayHoldLongInteger(bytes)) return undefined;
  let unsafe = false;
  try {
    const v = parse(text, null, {
      parseNumber: (s: string) => {
        if (isSafeNumber(s)) return Number(s);
        unsafe = true;
        return new LosslessNumber(s);
      },
      onDuplicateKey: ({ newValue }) => newValue,
    });
    if (!unsafe || typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    return v as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * The exact serialisation of `exact` when it reads back as exactly `lossy` (the body JSON.parse's view
 * produced), that is when the two differ only in digits JSON.parse drops; otherwise `lossy`.
 */
export function exactOr(lossy: string, exact: Record<string, unknown>): { text: string; exact: boolean } {
  const text = stringify(exact);
  if (text !== undefined && JSON.stringify(JSON.parse(text)) === lossy) return { text, exact: true };
  return { text: lossy, exact: false };
}
