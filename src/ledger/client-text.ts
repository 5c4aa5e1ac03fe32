// Strings a client chooses that tiergate records: its x-request-id, the feature header, the body's `model`
// (and those a backend sends: the response's `model` and error code). They go into every ledger row, log line
// and span of the request, and nothing else bounds them (Envoy allows headers up to 60 KiB, a body's `model`
// can be megabytes), so one tenant could make each of its ledger rows thousands of times its usual ~1 KB. An
// over-long value keeps its start, for a reader, and ends in a hash of the whole, so two different values stay
// two values (for a reader joining rows with Envoy's logs).
import { createHash } from 'node:crypto';

/** Longest client string kept as it is; a UUID request id is 36. */
export const MAX_CLIENT_TEXT = 256;
const HASH_CHARS = 16;

export function boundedClientText(s: string): string;
export function boundedClientText(s: string | null): string | null;
export function boundedClientText(s: string | null): string | null {
  if (s === null || s.length <= MAX_CLIENT_TEXT) return s;
  let cut = MAX_CLIENT_TEXT - HASH_CHARS - 1;
  const last = s.charCodeAt(cut - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut--; // never split a surrogate pair
  return `${s.slice(0, cut)}…${createHash('sha256').update(s).digest('hex').slice(0, HASH_CHARS)}`;
}
