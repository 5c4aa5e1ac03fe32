// The ledger's user_id_hash: who a request was for, without the name. Keyed (HMAC-SHA-256 with
// ledger.userHashKey) so that a common name cannot be looked up in a table of plain hashes; plain SHA-256 without
// a key. One user has one hash whether the header or the body's `user` named them.
import { createHash, createHmac } from 'node:crypto';

/** The hash of a user's name, or null when nobody is named (absent, not a string, or empty). */
export function userIdHash(user: unknown, key: string | undefined): string | null {
  if (typeof user !== 'string' || user.length === 0) return null;
  return (key ? createHmac('sha256', key) : createHash('sha256')).update(user).digest('hex');
}
