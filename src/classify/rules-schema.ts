// Config shape of a classifier version. Rules are ordered; the first whose conditions all hold decides.
import { z } from 'zod';

const role = z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']);

export const conditionSchema = z.union([
  z.strictObject({ anyKeyword: z.array(z.string().min(1)).min(1) }),
  z.strictObject({ moreThanChars: z.number().int().nonnegative() }),
  z.strictObject({ moreThanBytes: z.number().int().nonnegative() }),
  z.strictObject({ moreThanMessages: z.number().int().nonnegative() }),
  z.strictObject({ regex: z.string().min(1), flags: z.string().regex(/^[imsu]*$/).optional() }),
]);

export const ruleSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9_]+$/, 'rule names are snake_case (they become metric labels)'),
  tier: z.string().min(1),
  enabled: z.boolean().default(true),
  /** Only these roles' messages feed the text conditions; all roles when absent. Message counts count all. */
  roles: z.array(role).min(1).optional(),
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
    /** Inclusive bounds, in the condition's own unit (code points, UTF-8 bytes or messages). */
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
