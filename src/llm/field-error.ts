// The 400 a request body's first schema problem becomes: OpenAI's own codes and words for each kind (a missing
// field, a wrong type, an empty array or string, a count below its least, a value outside a list), naming the
// field as OpenAI does (`messages[0].content`), so that clients and their users read what they would from OpenAI.
import type { z } from 'zod';
import { TiergateError } from '../errors.js';
import { boundedClientText } from '../ledger/client-text.js';

/** OpenAI names params as `messages[0].content`; so do we. */
export function paramName(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), '');
}

/** `body`: the parsed JSON, to tell a missing field from one of the wrong type (zod 4's issues omit the input). */
export function fieldError(err: z.ZodError, body: unknown): TiergateError {
  const issue = err.issues[0];
  if (!issue) return new TiergateError('invalid_request', 'Invalid request body.');
  const param = paramName(issue.path);
  if (issue.code === 'too_small' && issue.origin === 'array') {
    return new TiergateError(
      'empty_array',
      `Invalid '${param}': empty array. Expected an array with minimum length ${String(issue.minimum)}, but got an empty array instead.`,
      param,
    );
  }
  const value = valueAt(body, issue.path);
  // The two other bounds the schemas set, worded as OpenAI words its own (zod's "Too small: expected number to
  // be >0" is not): a model named by an empty string, and a count below its least (`n: 0`, `max_tokens: -1`).
  if (issue.code === 'too_small' && issue.origin === 'string' && value === '') {
    return new TiergateError('empty_string', `Invalid '${param}': empty string. Expected a string with minimum length ${String(issue.minimum)}, but got an empty string instead.`, param);
  }
  if (issue.code === 'too_small' && issue.origin === 'number' && typeof value === 'number') {
    // Every bounded number here is an integer: "> 0" is ">= 1".
    const least = Number(issue.minimum) + (issue.inclusive ? 0 : 1);
    return new TiergateError('integer_below_min_value', `Invalid '${param}': integer below minimum value. Expected a value >= ${least}, but got ${String(value)} instead.`, param);
  }
  // A required field that is absent: zod reports it by the type or the values it wanted (an enum such as a
  // message's role says "invalid option"); OpenAI, and so tiergate, says it is missing.
  if (value === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_value' || issue.code === 'invalid_union')) {
    return new TiergateError('invalid_request', `Missing required parameter: '${param}'.`, param);
  }
  // OpenAI's wording for a value of the wrong type.
  if (issue.code === 'invalid_type') {
    // A number field given an integer of hundreds of digits: JSON.parse made it Infinity, not another type.
    if (typeof value === 'number' && !Number.isFinite(value)) return outOfRange(param);
    return new TiergateError('invalid_request', `Invalid type for '${param}': expected ${EXPECTED[issue.expected] ?? issue.expected}, but got ${typeOf(value)} instead.`, param);
  }
  if (issue.code === 'invalid_union') {
    return new TiergateError('invalid_request', `Invalid type for '${param}': ${typeOf(value)} is not one of the accepted types.`, param);
  }
  // A value outside a list (a message's role): named with the list, under OpenAI's code invalid_value. OpenAI's
  // message leaves the field to `param`; this one names it too, as every other message here does.
  if (issue.code === 'invalid_value') {
    const supported = listed(issue.values.map((v) => `'${String(v)}'`));
    if (typeof value === 'string') return new TiergateError('invalid_value', `Invalid value for '${param}': '${boundedClientText(value)}'. Supported values are: ${supported}.`, param);
    // Not even a string (a role of 5): the wrong type, worded as the others are, with the values it may take.
    return new TiergateError('invalid_request', `Invalid type for '${param}': expected one of ${supported}, but got ${typeOf(value)} instead.`, param);
  }
  return new TiergateError('invalid_request', `Invalid '${param}': ${issue.message}.`, param);
}

/** "'a'", "'a' and 'b'", "'a', 'b', and 'c'": a list as OpenAI's messages write it. */
function listed(items: readonly string[]): string {
  if (items.length <= 2) return items.join(' and ');
  return `${items.slice(0, -1).join(', ')}, and ${items[items.length - 1] as string}`;
}

const EXPECTED: Readonly<Record<string, string>> = { string: 'a string', number: 'a number', int: 'an integer', boolean: 'a boolean', array: 'an array', object: 'an object' };

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function valueAt(body: unknown, path: readonly PropertyKey[]): unknown {
  let v = body;
  for (const k of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, k)) return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

/** A number beyond a double's range, worded as OpenAI words it. */
export function outOfRange(param: string): TiergateError {
  return new TiergateError('invalid_request', `Invalid '${param}': number out of range. A JSON number must lie within ±${Number.MAX_VALUE}.`, param);
}
