// Config shape of a classifier version. Rules are ordered; the first whose conditions all hold decides.
import { z } from 'zod';

/** The regex flags a rule may set: i, m, s and u, each at most once (what RegExp itself accepts of them). */
export const REGEX_FLAGS = /^(?!.*(.).*\1)[imsu]*$/;

const role = z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']);

const CONDITION_SHAPES = [
  z.strictObject({ anyKeyword: z.array(z.string().min(1)).min(1) }),
  z.strictObject({ moreThanChars: z.number().int().nonnegative() }),
  z.strictObject({ moreThanBytes: z.number().int().nonnegative() }),
  z.strictObject({ moreThanMessages: z.number().int().nonnegative() }),
  /**
   * `allowSlow`: accept a pattern the ReDoS check (regex-safety.ts) finds can take more than linear time on
   * some text; without it such a config is refused, since every client writes the text it runs on.
   */
  z.strictObject({ regex: z.string().min(1), flags: z.string().regex(REGEX_FLAGS, 'expected some of i, m, s, u, each at most once').optional(), allowSlow: z.boolean().optional() }),
  /** Any content part of these types (`image_url`, `input_image`, `input_audio`, `file`…), as the request names them. */
  z.strictObject({ anyPart: z.array(z.string().min(1)).min(1) }),
  /** More than N tools declared by the request (`tools`, plus chat's legacy `functions`). */
  z.strictObject({ moreThanTools: z.number().int().nonnegative() }),
] as const;

/** Each condition's name: the first key of its shape (`flags` and `allowSlow` only qualify `regex`). */
const CONDITIONS = CONDITION_SHAPES.map((shape) => Object.keys(shape.shape)[0] as string);
const REGEX_OPTIONS = ['flags', 'allowSlow'];

/**
 * zod says only "Invalid input" when no member of the union fits; a misspelt condition (`anyKeywords`) is the
 * usual cause, so name it. Other misfits keep zod's own message (undefined), which names the field.
 */
function conditionError(iss: { input?: unknown }): string | undefined {
  const input = iss.input;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return 'a condition is an object such as { anyKeyword: [...] }';
  const keys = Object.keys(input);
  const unknown = keys.find((k) => !CONDITIONS.includes(k) && !(REGEX_OPTIONS.includes(k) && keys.includes('regex')));
  if (unknown !== undefined) return `unknown condition "${unknown}" (conditions: ${CONDITIONS.join(', ')})`;
  if (keys.filter((k) => !REGEX_OPTIONS.includes(k)).length !== 1) return `a condition names exactly one of ${CONDITIONS.join(', ')}; list several in "when" to require them all`;
  return undefined;
}

export const conditionSchema = z.union(CONDITION_SHAPES, { error: conditionError });

/** The conditions with a numeric threshold, which a confidence band can surround. */
export const NUMERIC_CONDITIONS = ['moreThanChars', 'moreThanBytes', 'moreThanMessages', 'moreThanTools'] as const;

export function isNumericCondition(c: Condition): boolean {
  return NUMERIC_CONDITIONS.some((k) => k in c);
}

export const ruleSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9_]+$/, 'rule names are snake_case (they become metric labels)'),
  tier: z.string().min(1),
  enabled: z.boolean().default(true),
  /** Only these roles' messages feed the text and part conditions; all roles when absent. Message counts count all. */
  roles: z.array(role).min(1).optional(),
  /**
   * `last`: of those messages, only the last one (with `roles: [user]`, the question being asked, not the
   * conversation or an agent's long system prompt). `all` (the default): every one.
   */
  scope: z.enum(['all', 'last']).optional(),
  when: z.array(conditionSchema).min(1),
});

/**
 * A confidence band around one rule's numeric threshold (e.g. 480–520 characters around "> 500"). A request
 * whose measure falls inside it, where that rule is reached and its other conditions hold, is routed to `tier`
 * with rule `near_threshold`, so these borderline requests can be found in the ledger and sampled for labelling.
 */
export const bandSchema = z
  .strictObject({
    /** The rule whose threshold the band surrounds; it must have exactly one numeric condition. */
    rule: z.string().min(1),
    /** Inclusive bounds, in the condition's own unit (code points, UTF-8 bytes, messages or tools). */
    from: z.number().int().nonnegative(),
    to: z.number().int().nonnegative(),
    tier: z.string().min(1),
  })
  .refine((b) => b.from <= b.to, { message: 'from must not exceed to', path: ['to'] });

export const versionSchema = z.strictObject({
  description: z.string().optional(),
  rules: z.array(ruleSchema),
  default: z.string().min(1),
  nearThreshold: z.array(bandSchema).default([]),
});

export type Band = z.infer<typeof bandSchema>;

export type Condition = z.infer<typeof conditionSchema>;
export type RuleConfig = z.infer<typeof ruleSchema>;
export type VersionConfig = z.input<typeof versionSchema>;
