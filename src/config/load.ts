// Reads, interpolates and validates a config file, collecting every problem with its path.
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { paramName } from '../llm/field-error.js';
import { interpolateEnv, type InterpolationProblem } from './interpolate.js';
import { configSchema, type Config } from './schema.js';
import type { z } from 'zod';
import { parseDecimal } from '../decimal.js';

export type LoadResult =
  | { ok: true; config: Config; source: string }
  | {
      ok: false;
      problems: InterpolationProblem[];
      /**
       * When only unset variables stood in the way: the config read without the values that named them (each
       * left out, its default in its place), for the checks that need a whole config (compileRuntime) to report
       * their problems in the same pass.
       */
      withoutUnset?: Config;
    };

export function parseConfigText(text: string, env: NodeJS.ProcessEnv, fileName = 'config'): LoadResult {
  let raw: unknown;
  try {
    // YAML is a superset of JSON, so one parser reads both. What the parser only warns about (a tag it does
    // not know, say) is a problem here too: a config means exactly what it says, or it is refused.
    const doc = parseDocument(text, { prettyErrors: true });
    // After a syntax error the parser reports every token it can no longer place: one unquoted `${X}` in a flow
    // mapping gave 28 problems, each quoting the file again. The first is the mistake; the rest follow from it.
    const [first, ...more] = doc.errors;
    if (first) {
      // `{ model: ${X} }`: the `{` of an unquoted ${X} opens a flow mapping, which is what the parser then says.
      const at = first.pos[0];
      const hint = text[at] === '{' && text[at - 1] === '$' ? '\n(an ${VAR} inside { } or [ ] must be quoted: "${VAR}")' : '';
      const rest = more.length > 0 ? `\n(${more.length} more syntax error${more.length === 1 ? '' : 's'} after it, most often caused by this one)` : '';
      return { ok: false, problems: [{ path: fileName, message: `${first.message}${hint}${rest}` }] };
    }
    if (doc.warnings.length > 0) return { ok: false, problems: doc.warnings.map((e) => ({ path: fileName, message: e.message })) };
    raw = text.trim() === '' ? {} : doc.toJS();
  } catch (e) {
    return { ok: false, problems: [{ path: fileName, message: (e as Error).message }] };
  }
  if (raw === null || raw === undefined) raw = {};
  if (deeperThan(raw, MAX_CONFIG_DEPTH)) {
    return { ok: false, problems: [{ path: fileName, message: `nested more than ${MAX_CONFIG_DEPTH} levels deep, or a YAML alias used inside its own anchor` }] };
  }
  const problems: InterpolationProblem[] = [];
  const wholeRefs = new Set<string>();
  const interpolated = interpolateEnv(raw, env, problems, '', wholeRefs);
  let parsed = configSchema.safeParse(interpolated);
  // `requestsPerMinute: ${RPM}`: interpolation gives text, and the schema refused it ("expected number, received
  // string"), so no limit could come from the environment. Where a value is one ${VAR} and the schema wants a
  // number or a boolean, the variable's text is read as one, and the config checked again. Text meant as text
  // stays text (a numeric password in a URL), and text that is no number is still refused.
  if (!parsed.success && readScalars(interpolated, parsed.error.issues, wholeRefs)) parsed = configSchema.safeParse(interpolated);
  const unset = new Set(problems.map((p) => p.path));
  const unsetProblems = problems.length;
  if (!parsed.success) {
    // A variable that is not set reads as '' so that the rest of the file is still checked; what the schema then
    // says about that '' (too short, not a URL) is not a second problem of the user's.
    for (const issue of parsed.error.issues) {
      const path = paramName(issue.path) || '(root)';
      if (!unset.has(path)) problems.push({ path, message: issue.message });
    }
  }
  if (problems.length === 0 && parsed.success) return { ok: true, config: parsed.data, source: text };
  // Only unset variables in the way: `config check` should still name every problem at once, those a whole config
  // is needed to find (a tier's credentialsEnv not set either) with them, not one round of fixes after another.
  if (problems.length > unsetProblems) return { ok: false, problems };
  const reduced = withoutPaths(interpolated, unset, '');
  const again = reduced === undefined ? undefined : configSchema.safeParse(reduced);
  return again?.success ? { ok: false, problems, withoutUnset: again.data } : { ok: false, problems };
}

/**
 * `value` without the values at `paths` (written as interpolateEnv names them); undefined when one is an array's
 * element, which cannot be left out without changing what the array means.
 */
function withoutPaths(value: unknown, paths: ReadonlySet<string>, path: string): unknown {
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const [i, v] of value.entries()) {
      const at = `${path}[${i}]`;
      const kept = paths.has(at) ? undefined : withoutPaths(v, paths, at);
      if (kept === undefined) return undefined;
      out.push(kept);
    }
    return out;
  }
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const at = path ? `${path}.${k}` : k;
    if (paths.has(at)) continue;
    const kept = withoutPaths(v, paths, at);
    if (kept === undefined) return undefined;
    out[k] = kept;
  }
  return out;
}

/**
 * Whether `text` holds no config at all: nothing, or only comments and blank lines. Read as the embedded defaults
 * at start; a reload refuses it (ConfigStore).
 */
export function isBlankConfig(text: string): boolean {
  return parseDocument(text).contents === null;
}

/** Reads as numbers or booleans the whole-`${VAR}` values the schema refused as text; whether any was read. */
function readScalars(root: unknown, issues: readonly z.core.$ZodIssue[], wholeRefs: ReadonlySet<string>): boolean {
  let read = false;
  for (const issue of typeIssues(issues, [])) {
    if (issue.expected !== 'number' && issue.expected !== 'boolean') continue;
    if (!wholeRefs.has(paramName(issue.path))) continue;
    const parent = issue.path.slice(0, -1).reduce<unknown>((o, k) => (o as Record<PropertyKey, unknown>)?.[k], root) as Record<PropertyKey, unknown>;
    const key = issue.path[issue.path.length - 1] as PropertyKey;
    const text = parent?.[key];
    if (typeof text !== 'string') continue;
    const value = issue.expected === 'number' ? parseDecimal(text) : booleanText(text);
    if (value === undefined) continue;
    parent[key] = value;
    read = true;
  }
  return read;
}

/** `true` or `false` in any case (a lookup in an object literal also found "constructor"). */
function booleanText(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  return t === 'true' ? true : t === 'false' ? false : undefined;
}

/**
 * The type issues among `issues`, those inside a union's options included (a classifier condition is one of
 * several shapes), each with its whole path: an option's issues have paths from the union's value.
 */
function typeIssues(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[]): Array<{ expected: string; path: PropertyKey[] }> {
  return issues.flatMap((issue) => {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'invalid_type') return [{ expected: issue.expected, path }];
    if (issue.code === 'invalid_union') return issue.errors.flatMap((option) => typeIssues(option, path));
    return [];
  });
}

/**
 * Far deeper than any config (they nest a handful of levels). A YAML alias inside its own anchor (`a: &x [*x]`)
 * parses to a structure that contains itself: without this limit, interpolation walked it until the stack
 * overflowed, and `tiergate config check` crashed instead of naming the problem. (yaml's own alias limit already
 * stops exponential expansion.)
 */
const MAX_CONFIG_DEPTH = 64;

/** Depth-first without recursion, stopping at the first branch past `max`, so a cycle ends the walk too. */
function deeperThan(root: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[root, 0]];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [v, depth] = top;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= max) return true;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    return { ok: false, problems: [{ path: file, message: (e as Error).message }] };
  }
  return parseConfigText(text, env, file);
}

/** The embedded defaults: what runs with no config file. */
export function defaultConfig(): Config {
  return configSchema.parse({});
}
