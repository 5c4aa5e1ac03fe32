// The end of a JSON Lines file (the file sink's day files, the spool) after a crash cut an append short: a last
// line with no newline. Left as it is, the next append runs on from it, and the two make one line that is no
// row: the row appended next is lost, and a day file's rollup refuses it. The torn line's own row was never
// acknowledged (its write had not finished), so its replay writes it again; it is cut off. Unless the crash came
// between a whole row and its newline: then the row is kept and the newline added.

/**
 * What to do with a buffer's last line: nothing (it ends with a newline), `complete` it with a newline, or cut
 * the buffer back to `cutTo` bytes (the end of its last whole line).
 */
export function tornTail(buf: Buffer, isWholeRow: (line: Buffer) => boolean): undefined | 'complete' | { cutTo: number } {
  if (buf.length === 0 || buf[buf.length - 1] === 0x0a) return undefined;
  const whole = buf.lastIndexOf(0x0a) + 1;
  return isWholeRow(buf.subarray(whole)) ? 'complete' : { cutTo: whole };
}
