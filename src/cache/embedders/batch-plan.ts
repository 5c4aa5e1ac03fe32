// Which waiting questions the local model embeds together. A batch costs about its size times what its longest
// question costs alone: 32 questions of 64 characters took ~300 ms, 31 of them and one of 1,024 characters
// ~1,400 ms (`npm run bench:embedder-mix`). Batched first come first served, one tenant's long question made the
// 31 short ones beside it each cost as much as itself: under load, on a mix of 1 long question to 9 short, the
// embedder took 2.3-3.9 times fewer questions a second than with batches of like length. So a
// batch holds questions of one length class only. The oldest waiting question's class goes next: a question
// waits for at most as many batches as there are questions older than it, as in plain arrival order, and a short
// one may go before a long one older than it.

/** A waiting question with its length class (lengthClass of its text), worked out once when it is queued. */
export interface Queued {
  readonly lengthClass: number;
}

/**
 * 0: up to 64 characters, 1: up to 128, 2: up to 256, 3: longer. Within a class a question costs at most about
 * twice another; past ~512 characters the model's time per question hardly grows (~70 ms at 512, ~90 at 4,096).
 */
export function lengthClass(text: string): number {
  const n = text.length;
  return n <= 64 ? 0 : n <= 128 ? 1 : n <= 256 ? 2 : 3;
}

/**
 * Takes the next batch out of `queue` (oldest first) and returns it: the oldest question and, in order, up to
 * `max - 1` more of its class. The rest stay queued in their order.
 */
export function takeBatch<T extends Queued>(queue: T[], max: number): T[] {
  const head = queue[0];
  if (head === undefined) return [];
  const batch: T[] = [];
  let kept = 0;
  for (const q of queue) {
    if (batch.length < max && q.lengthClass === head.lengthClass) batch.push(q);
    else queue[kept++] = q;
  }
  queue.length = kept;
  return batch;
}
