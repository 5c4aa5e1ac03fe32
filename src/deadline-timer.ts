// Timers for deadlines on I/O: a store command, a lookup, a sink's write, a connection coming up.
//
// After the event loop has been held up (a long GC pause, a large body parsed, a slow synchronous write), Node
// runs the timers that expired meanwhile before it reads the sockets and the thread-pool completions that
// arrived meanwhile. A deadline on a plain setTimeout then declares late an answer that came in time and is
// waiting to be read: a 200 ms stall failed half of a run of Redis commands with a 50 ms timeout, every one
// of them answered within a millisecond (ioredis' own commandTimeout behaves the same). With budgets failing
// closed, that is a 503 for a request whose admission Redis had already granted; with the ledger, a batch
// spooled and written twice.
//
// These deadlines, once expired, let the loop take in what is already waiting (its poll phase) and decide only
// after it (the check phase, setImmediate): an answer that arrived in time wins. A deadline that passes while
// the loop runs freely is late by one turn of the loop at most.

/** Calls `onLate` once `ms` have passed and the I/O already waiting has been handled; returns the cancel. */
export function setDeadline(ms: number, onLate: () => void): () => void {
  let immediate: NodeJS.Immediate | undefined;
  const timer = setTimeout(() => {
    immediate = setImmediate(onLate);
  }, ms);
  return () => {
    clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
  };
}

/**
 * `p`'s outcome, or `late` if it has not settled within `ms` (an answer already waiting to be read when the
 * time is up still counts); the timer never outlives the race.
 */
export function withDeadline<T>(p: Promise<T>, ms: number, late: T): Promise<T> {
  let cancel: (() => void) | undefined;
  const deadline = new Promise<T>((resolve) => {
    cancel = setDeadline(ms, () => resolve(late));
  });
  return Promise.race([p, deadline]).finally(() => cancel?.());
}
