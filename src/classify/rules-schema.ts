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

export const versionSchema = z.strictObject({
  description: z.string().optional(),
  rules: z.array(ruleSchema),
  default: z.string().min(1),
});

export type Condition = z.infer<typeof conditionSchema>;
export type RuleConfig = z.infer<typeof ruleSchema>;
export type VersionConfig = z.infer<typeof versionSchema>;
