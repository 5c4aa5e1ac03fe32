// Taking a run of characters off the end of a string in linear time. The obvious regex, /[…]+$/, is quadratic:
// not anchored at the start, it is tried at every position of a run, and each try runs to the run's end before
// `$` fails on whatever follows. On client text (a question of 16k characters ending ". . . x") that held the
// event loop for a third of a second (bench/trailing-runs.ts).

/**
 * `s` without its trailing characters that `oneChar` matches. `oneChar` is a class of one character, anchored
 * (`/^[\s.?!]$/u`); the end is read by code point, so a class with `u` sees astral characters whole.
 */
export function withoutTrailing(s: string, oneChar: RegExp): string {
  let end = s.length;
  while (end > 0) {
    const low = s.charCodeAt(end - 1);
    const width = end >= 2 && low >= 0xdc00 && low <= 0xdfff && isHighSurrogate(s.charCodeAt(end - 2)) ? 2 : 1;
    if (!oneChar.test(s.slice(end - width, end))) break;
    end -= width;
  }
  return end === s.length ? s : s.slice(0, end);
}

const isHighSurrogate = (c: number) => c >= 0xd800 && c <= 0xdbff;
