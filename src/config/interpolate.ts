// `${ENV_VAR}` in any string value is replaced from the environment, so secrets stay out of config files.
// `$${X}` escapes a literal `${X}`. A missing variable is an error with its path, never an empty string.

export interface InterpolationProblem {
  path: string;
  message: string;
}

const PATTERN = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const WHOLE = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;

/**
 * `wholeRefs` collects the paths of the values that were one `${VAR}` and nothing else: where the schema wants a
 * number or a boolean there, the variable's text is read as one (see load.ts).
 */
export function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, problems: InterpolationProblem[], path = '', wholeRefs?: Set<string>): unknown {
  if (typeof value === 'string') {
    if (wholeRefs && WHOLE.test(value)) wholeRefs.add(path);
    return value.replace(PATTERN, (whole, escape: string, name: string) => {
      if (escape) return whole.slice(1);
      const v = env[name];
      if (v === undefined) {
        problems.push({ path: path || '(root)', message: `environment variable ${name} is not set` });
        return '';
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateEnv(v, env, problems, `${path}[${i}]`, wholeRefs));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolateEnv(v, env, problems, path ? `${path}.${k}` : k, wholeRefs);
    return out;
  }
  return value;
}
