/** `p`'s outcome, or `late` if it has not settled within `ms`; the timer never outlives the race. */
export function withDeadline<T>(p: Promise<T>, ms: number, late: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(late), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
