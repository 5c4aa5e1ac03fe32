// Ids tiergate makes (ledger event ids, vector entries, reservations). node:crypto's randomUUID() returns its
// 36 characters as a chain of concatenated pieces (a V8 cons string, 500-800 bytes of heap) rather than one
// flat string (about 100 bytes). Kept ids add up: 200,000 of them (what the file sink once remembered per day
// file) held 101 MB of heap instead of 17 MB. trim(), with nothing to trim, returns V8's flattened copy itself.
// Reading a character (what this did first) flattens the string in place: on Node 20 the garbage collector then
// dropped the pieces, on Node 22 the wrapper stays, at ~540 bytes an id. Measured on Node 20.20, 22.23 and 24.22
// with 50,000 kept ids: 100, 96 and 140 bytes each with trim() (randomUUID() alone: 650, 830 and 810), 0.15 µs
// an id on each. test/unit/ids.test.ts checks it.
import { randomUUID } from 'node:crypto';

export function newId(): string {
  return randomUUID().trim();
}
