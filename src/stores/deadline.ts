import { setDeadline } from '../deadline-timer.js';

/**
 * `p`'s outcome, or `late` if it has not settled within `ms` (an answer already waiting to be read when the
 * time is up still counts: src/deadline-timer.ts); the timer never outlives the race.
 */
export function withDeadline<T>(p: Promise<T>, ms: number, late: T): Promise<T> {
  let cancel: (() => void) | undefined;
  const deadline = new Promise<T>((resolve) => {
    cancel = setDeadline(ms, () => resolve(late));
  });
  return Promise.race([p, deadline]).finally(() => cancel?.());
}
