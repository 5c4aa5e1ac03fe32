// Numbers on the command line (numberArg): what a flag or an argument accepts, and the mistake it names.
import { describe, expect, it } from 'vitest';
import { numberArg, UsageError } from '../../src/usage-error.js';

const PERCENT = { min: 0, max: 100, integer: true, expects: 'a whole percent, 0 to 100' };
const SHARE = { min: 0, max: 1, expects: 'a share from 0 to 1' };

describe('numberArg', () => {
  it.each([
    ['50', PERCENT, 50],
    [' 5 ', PERCENT, 5],
    ['+7', PERCENT, 7],
    ['50.0', PERCENT, 50],
    ['0.02', SHARE, 0.02],
    ['.5', SHARE, 0.5],
    ['1.', SHARE, 1],
  ] as const)('reads %j as a decimal number', (text, rule, n) => {
    expect(numberArg('x', text, rule)).toBe(n);
  });

  it.each([
    // Number() reads these as numbers: hex 16, 10, binary 1, octal 7.
    ['0x10', PERCENT],
    ['1e1', PERCENT],
    ['0b1', PERCENT],
    ['0o7', PERCENT],
    ['2e-2', SHARE],
    ['Infinity', PERCENT],
    ['', PERCENT],
    ['  ', PERCENT],
    ['5%', PERCENT],
    ['1_000', PERCENT],
    ['1.2.3', PERCENT],
    ['.', PERCENT],
    ['50.5', PERCENT],
    ['101', PERCENT],
    ['-1', PERCENT],
  ] as const)('refuses %j, naming the argument and what it expects', (text, rule) => {
    expect(() => numberArg('canary set PERCENT', text, rule)).toThrow(new UsageError(`canary set PERCENT expects ${rule.expects}, got "${text}"`));
  });
});
