// Tenants whose requests-per-minute window is full, remembered until that window ends, so that their next
// requests are refused on the request headers: before Envoy buffers a body for them, and before tiergate
// parses, validates, classifies and counts the tokens of a body it is going to refuse anyway. A client in a
// retry loop with large prompts otherwise costs the process ~10 ms of CPU per MiB on every refused request,
// and every other tenant's streams wait while it is spent (README "Limits").
//
// It is a fact, not a guess: requests are counted at admission and never given back (budget-store.ts), so a
// window's count only grows, on every replica; once the store has said "full" for a window, nothing can be
// admitted in it before it ends. Unless the limit itself changes (a reload), which is checked, as is the key
// (a new key prefix is another counter). Only the shared store's word is remembered: the local limiter of the
// degraded mode counts one replica's share, which says nothing of the shared window.
import { BoundedMap } from '../bounded-map.js';
import type { Bucket } from '../stores/budget-store.js';

interface Full {
  /** The bucket as it was seen full: its key (window included), limit and reset. */
  bucket: Bucket;
  /** What the store counted then (the 429's "used"). */
  counted: number;
}

/** Past this many tenants the memo starts over: forgetting costs a body read, never a wrong answer. */
const MAX_TENANTS = 10_000;

export class FullWindows {
  private readonly full = new BoundedMap<string, Full>(MAX_TENANTS);

  /** Remember `b` (a requests bucket) as full for `tenant`, when `counted` leaves no room for one more. */
  note(tenant: string, b: Bucket, counted: number): void {
    if (b.unit === 'requests' && counted >= b.limit) this.full.set(tenant, { bucket: b, counted });
  }

  /**
   * The full bucket, and what was counted in it, when `current` (the tenant's requests bucket now) is the one
   * seen full: same key and limit, window not over. `now` past the window forgets it.
   */
  known(tenant: string, current: () => Bucket | undefined, now: number): Full | undefined {
    const f = this.full.get(tenant);
    if (f === undefined) return undefined;
    if (now >= f.bucket.resetAt) {
      this.full.delete(tenant);
      return undefined;
    }
    const b = current();
    return b !== undefined && b.key === f.bucket.key && b.limit === f.bucket.limit ? f : undefined;
  }
}
