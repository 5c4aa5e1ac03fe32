// The command line's mistakes, and the checks that find them.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { HOST_PORT_EXPECTED, isHostPort } from './host-port.js';
import { parseDecimal } from './decimal.js';

/** A mistake in a command line (the CLI exits 2), as opposed to a failure while running the command (exit 1). */
export class UsageError extends Error {}

/**
 * node:util's parseArgs, its complaints (an unknown flag, a flag without its value, a value given to a boolean)
 * as UsageErrors: a mistake in the command line exits 2 whichever command it was made in. Every command parses
 * its flags here; until 2026-12-05 `serve`, `dev`, `mock` and `ledger` let them through as failures (exit 1).
 */
export function parseFlags<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    // parseArgs's errors about the arguments all carry an ERR_PARSE_ARGS_ code; anything else is a bug here.
    if (String((e as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS_')) throw new UsageError((e as Error).message);
    throw e;
  }
}

/**
 * A number given on the command line, or a UsageError naming where it was given (`name`, as the user typed it).
 * Number() alone takes "" as 0 and a typo as NaN, and NaN compares false with everything: a threshold of "2%"
 * judged nothing, a port of "abc" listened on no port anyone asked for, and `canary set ""` set the canary to 0.
 * Only decimal notation: Number() also reads "0x10" as 16 and "1e1" as 10, so `canary set 0x10` moved 16% of the
 * strong tier's traffic.
 */
export function numberArg(name: string, text: string, rule: { min: number; max: number; integer?: boolean; expects: string }): number {
  const n = parseDecimal(text) ?? NaN;
  if (!Number.isFinite(n) || n < rule.min || n > rule.max || (rule.integer === true && !Number.isInteger(n))) {
    throw new UsageError(`${name} expects ${rule.expects}, got "${text}"`);
  }
  return n;
}

/** numberArg for a `--flag`. */
export const numberFlag = (flag: string, text: string, rule: Parameters<typeof numberArg>[2]): number => numberArg(`--${flag}`, text, rule);

/** A `--listen`/`--admin` address, or a UsageError naming the flag: checked as the config checks server.listen. */
export function hostPortFlag(flag: string, text: string | undefined): string | undefined {
  if (text !== undefined && !isHostPort(text)) throw new UsageError(`--${flag} expects ${HOST_PORT_EXPECTED}, got "${text}"`);
  return text;
}
