// Shared by the generated (fast-check) tests.
import { expect } from 'vitest';

/** Cases per run: the test's own default, or TIERGATE_FUZZ_RUNS for a longer local hunt. */
export function fuzzRuns(defaultRuns: number): number {
  return Number(process.env.TIERGATE_FUZZ_RUNS ?? defaultRuns);
}

/** A generated test's timeout: `ms` for its own number of cases, and as many times more as TIERGATE_FUZZ_RUNS asks. */
export function fuzzTimeout(defaultRuns: number, ms: number): number {
  return ms * Math.max(1, fuzzRuns(defaultRuns) / defaultRuns);
}

let histories = 0;

/**
 * Plays one generated history on the reference implementation and on each of the others, each under keys of a
 * history of its own number; every answer must be the reference's. Returns the reference's answers.
 */
export async function sameOnAll<S, O>(reference: S, others: readonly S[], ops: O, play: (store: S, ops: O, history: number) => Promise<unknown[]>): Promise<unknown[]> {
  const history = histories++;
  const expected = await play(reference, ops, history);
  for (const other of others) expect(await play(other, ops, history)).toEqual(expected);
  return expected;
}
