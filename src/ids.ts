// Ids tiergate makes (ledger event ids, vector entries, reservations). node:crypto's randomUUID() returns its
// 36 characters as a chain of concatenated pieces (a V8 cons string, about 500 bytes of heap) rather than one
// flat string (about 85 bytes). Kept ids add up: 200,000 of them (what the file sink once remembered per day
// file) held 101 MB of heap instead of 17 MB. Reading a character makes V8 flatten the
// string in place, and the garbage collector then drops the pieces (test/unit/ids.test.ts checks the heap).
import { randomUUID } from 'node:crypto';

export function newId(): string {
  const id = randomUUID();
  id.charCodeAt(0);
  return id;
}
