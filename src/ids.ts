// Ids tiergate makes (ledger event ids, vector entries, reservations). node:crypto's randomUUID() returns its
// 36 characters as a chain of concatenated pieces (a V8 cons string, about 500 bytes of heap) rather than one
// flat string (about 85 bytes). Kept ids add up: the file sink remembers 200,000 event ids per day file to skip
// replayed rows, which held 101 MB of heap per file instead of 17 MB. Reading a character makes V8 flatten the
// string in place, and the garbage collector then drops the pieces (test/unit/ids.test.ts checks the heap).
import { randomUUID } from 'node:crypto';

export function newId(): string {
  const id = randomUUID();
  id.charCodeAt(0);
  return id;
}
