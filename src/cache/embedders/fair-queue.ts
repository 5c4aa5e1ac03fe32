// The local model's waiting questions, shared fairly between tenants. The model is one resource for every tenant:
// taken in arrival order and refused past a full queue, one tenant asking faster than the model embeds (~80
// questions a second) filled the queue, and every other tenant's questions were refused (a bypass, never
// embedded, so never indexed for later hits) or waited behind the whole backlog. So, as in the memory stores
// (src/stores/memory/owners.ts), a tenant takes room from another only while that one holds more than it, and
// tenants take turns at the head of a batch and in its places. With one tenant it is the plain bounded queue it
// replaced.
import type { Queued } from './batch-plan.js';

/** A waiting question and the tenant that asked it. */
export interface Owned extends Queued {
  readonly owner: string;
}

/**
 * For a question of `owner` arriving at a full queue: the position of the question it takes the place of, or -1
 * when it is refused. The tenant holding the most waiting questions (of several, the last of them in the queue)
 * gives up the question of its that stands last, the one that would wait longest (its newest, among questions of
 * one length class), if it would still hold at least as many as `owner` then holds; otherwise the newcomer is
 * refused, as at a full queue before.
 */
export function displacedBy<T extends Owned>(queue: readonly T[], owner: string): number {
  const held = new Map<string, number>();
  let most = 0;
  for (const q of queue) {
    const n = (held.get(q.owner) ?? 0) + 1;
    held.set(q.owner, n);
    if (n > most) most = n;
  }
  if (most - 1 < (held.get(owner) ?? 0) + 1) return -1;
  for (let i = queue.length - 1; i >= 0; i--) if (held.get((queue[i] as T).owner) === most) return i;
  return -1;
}

/**
 * Reorders `queue` so that tenants take turns: among questions of one length class, the oldest of each waiting
 * tenant, then the second of each, and so on; tenants ordered by the turn that last served them (`served`:
 * tenant → turn; a tenant not in it counts as never served and goes first; among equals, the one whose question
 * stands first). A batch built from the front (takeBatch: the first question and others of its class, in order)
 * then starts with a question of the tenant served longest ago and shares its places between tenants. A
 * tenant's questions of one class keep their order.
 */
export function fairOrder<T extends Owned>(queue: T[], served: ReadonlyMap<string, number>): void {
  const first = new Map<string, number>(); // tenant → position of its first question
  queue.forEach((q, i) => first.has(q.owner) || first.set(q.owner, i));
  if (first.size < 2) return;
  const rank = new Map([...first.keys()].sort((a, b) => (served.get(a) ?? -1) - (served.get(b) ?? -1) || (first.get(a) as number) - (first.get(b) as number)).map((o, i) => [o, i]));
  const seen = new Map<string, number>(); // tenant and class → questions of them so far
  const keyed = queue.map((q, i) => {
    const k = `${q.lengthClass}\u0000${q.owner}`;
    const round = seen.get(k) ?? 0;
    seen.set(k, round + 1);
    return { q, round, rank: rank.get(q.owner) as number, i };
  });
  keyed.sort((a, b) => a.round - b.round || a.rank - b.rank || a.i - b.i);
  keyed.forEach((k, i) => (queue[i] = k.q));
}

/** Takes the next batch (at most `max`) out of the waiting questions, the first of them included. */
export type BatchPlanner = <T extends Queued>(queue: T[], max: number) => T[];

export class FairQueue<T extends Owned> {
  private readonly waiting: T[] = [];
  /** Tenant → the turn that last took one of its questions, for tenants served since the one waiting longest. */
  private readonly served = new Map<string, number>();
  private turns = 0;

  constructor(private readonly capacity: number) {}

  get length(): number {
    return this.waiting.length;
  }

  /** Questions of `owner` and length class `lengthClass` waiting: each goes out no later than one of theirs asked now. */
  waitingOf(owner: string, lengthClass: number): number {
    let n = 0;
    for (const q of this.waiting) if (q.owner === owner && q.lengthClass === lengthClass) n++;
    return n;
  }

  /** Queues `q`, unless the queue is full and `q` is refused. Returns the question refused: `q`, one it displaced, or none. */
  offer(q: T): T | undefined {
    if (this.waiting.length >= this.capacity) {
      const at = displacedBy(this.waiting, q.owner);
      if (at < 0) return q;
      const out = this.waiting.splice(at, 1)[0] as T;
      this.waiting.push(q);
      return out;
    }
    this.waiting.push(q);
    return undefined;
  }

  /**
   * The next batch: `plan` builds it from the queue in fairOrder, so around the first question of the tenant
   * served longest ago. A waiting tenant heads a batch before any tenant served after it heads another, so no
   * tenant waits behind another's whole backlog, and none waits for ever.
   */
  take(max: number, plan: BatchPlanner): T[] {
    fairOrder(this.waiting, this.served);
    const batch = plan(this.waiting, max);
    const turn = ++this.turns;
    for (const b of batch) this.served.set(b.owner, turn);
    // A turn older than every waiting tenant's orders nothing any more: forgotten, its tenant counts as never
    // served, which puts it before the same tenants. So the map is empty whenever nothing waits.
    let oldest = Infinity;
    for (const q of this.waiting) oldest = Math.min(oldest, this.served.get(q.owner) ?? -1);
    for (const [o, t] of this.served) if (t < oldest) this.served.delete(o);
    return batch;
  }

  /** Everything waiting, taken out (the embedder is closing). */
  drain(): T[] {
    this.served.clear();
    return this.waiting.splice(0);
  }
}
