// Summary statistics the benches share.

/** The middle value (for an even count, the upper of the two middle ones). */
export function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
}

/** Nanoseconds per call of `f`, the median of 7 rounds of `calls` calls each. */
export function nsPerCall(f: () => unknown, calls: number): number {
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) f();
    rounds.push(Number(process.hrtime.bigint() - t) / calls);
  }
  return median(rounds);
}

/** The value at quantile `q` (0 to 1) of `xs`: the element at floor(q × length) of the sorted values. */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}
