// A mistake in a command line (the CLI exits 2), as opposed to a failure while running the command (exit 1).
export class UsageError extends Error {}

/**
 * A number given on the command line, or a UsageError naming where it was given (`name`, as the user typed it).
 * Number() alone takes "" as 0 and a typo as NaN, and NaN compares false with everything: a threshold of "2%"
 * judged nothing, a port of "abc" listened on no port anyone asked for, and `canary set ""` set the canary to 0.
 */
export function numberArg(name: string, text: string, rule: { min: number; max: number; integer?: boolean; expects: string }): number {
  const n = text.trim() === '' ? NaN : Number(text);
  if (!Number.isFinite(n) || n < rule.min || n > rule.max || (rule.integer === true && !Number.isInteger(n))) {
    throw new UsageError(`${name} expects ${rule.expects}, got "${text}"`);
  }
  return n;
}

/** numberArg for a `--flag`. */
export const numberFlag = (flag: string, text: string, rule: Parameters<typeof numberArg>[2]): number => numberArg(`--${flag}`, text, rule);
