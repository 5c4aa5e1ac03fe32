// The config's checks across fields: what no one field's schema can say. Names that must point at something the
// config defines (a tier, a classifier version, a plan), settings that need another (a Redis store its URL), and
// thresholds under the operator's floor. Each problem is added at its own path, beside those of the fields.
import type { z } from 'zod';
import { isNumericCondition, NUMERIC_CONDITIONS, REGEX_FLAGS } from '../classify/rules-schema.js';
import { V7 } from '../classify/v7.js';
import { TENANT_ID } from './policy-schema.js';
import type { ConfigShape } from './schema.js';

export function crossFieldChecks(c: ConfigShape, ctx: z.core.$RefinementCtx<ConfigShape>): void {
  const tiers = new Set(Object.keys(c.tiers));
  const needTier = (t: string | undefined, path: PropertyKey[]) => {
    if (t !== undefined && !tiers.has(t)) ctx.addIssue({ code: 'custom', path, message: `unknown tier "${t}" (tiers: ${[...tiers].join(', ')})` });
  };
  const auto = new Set(c.routing.autoModels);
  for (const [alias, t] of Object.entries(c.aliases)) {
    needTier(t, ['aliases', alias]);
    // The classify stage reads autoModels first: such an alias would route nothing, silently.
    if (auto.has(alias)) ctx.addIssue({ code: 'custom', path: ['aliases', alias], message: `"${alias}" is also in routing.autoModels, which are classified: this alias would never apply` });
  }
  for (const [p, u] of Object.entries(c.routing.unclassifiedPaths)) needTier(u.tier, ['routing', 'unclassifiedPaths', p, 'tier']);
  needTier(c.routing.statefulTier, ['routing', 'statefulTier']);
  const versions = { v7: V7, ...c.classifier.versions };
  const needVersion = (v: string | undefined, path: PropertyKey[]) => {
    if (v !== undefined && !(v in versions)) ctx.addIssue({ code: 'custom', path, message: `unknown classifier version "${v}" (versions: ${Object.keys(versions).join(', ')})` });
  };
  needVersion(c.classifier.active, ['classifier', 'active']);
  needVersion(c.classifier.shadow, ['classifier', 'shadow']);
  needVersion(c.classifier.canary?.version, ['classifier', 'canary', 'version']);
  if (c.classifier.canary?.version === c.classifier.active) {
    ctx.addIssue({ code: 'custom', path: ['classifier', 'canary', 'version'], message: 'the canary version is the active version' });
  }
  for (const [name, v] of Object.entries(c.classifier.versions)) {
    needTier(v.default, ['classifier', 'versions', name, 'default']);
    v.rules.forEach((r, i) => needTier(r.tier, ['classifier', 'versions', name, 'rules', i, 'tier']));
    v.nearThreshold.forEach((b, i) => {
      const path = ['classifier', 'versions', name, 'nearThreshold', i];
      needTier(b.tier, [...path, 'tier']);
      const rule = v.rules.find((r) => r.name === b.rule && r.enabled);
      const numeric = rule?.when.filter(isNumericCondition).length ?? 0;
      if (!rule) ctx.addIssue({ code: 'custom', path: [...path, 'rule'], message: `no enabled rule named "${b.rule}"` });
      else if (numeric !== 1) ctx.addIssue({ code: 'custom', path: [...path, 'rule'], message: `rule "${b.rule}" needs exactly one numeric condition (${NUMERIC_CONDITIONS.join(', ')}) for a band` });
    });
    v.rules.forEach((r, i) =>
      r.when.forEach((w, j) => {
        if (!('regex' in w)) return;
        try {
          // Flags the schema refused are reported there, once: the pattern is still checked, without them.
          new RegExp(w.regex, REGEX_FLAGS.test(w.flags ?? '') ? w.flags : '');
        } catch (e) {
          ctx.addIssue({ code: 'custom', path: ['classifier', 'versions', name, 'rules', i, 'when', j, 'regex'], message: (e as Error).message });
        }
      }),
    );
  }
  const names = c.ledger.sinks.map((x) => x.name);
  names.forEach((n, i) => {
    if (names.indexOf(n) !== i) ctx.addIssue({ code: 'custom', path: ['ledger', 'sinks', i, 'name'], message: `duplicate sink name "${n}"` });
  });
  const floor = c.cache.semantic.minThreshold;
  if (c.cache.semantic.threshold < floor) ctx.addIssue({ code: 'custom', path: ['cache', 'semantic', 'threshold'], message: `below the floor cache.semantic.minThreshold (${floor})` });
  for (const [where, entries] of [['plans', c.plans], ['tenants', c.tenants]] as const) {
    for (const [name, p] of Object.entries(entries)) {
      const t = p.cache?.threshold;
      if (t !== undefined && t < floor) ctx.addIssue({ code: 'custom', path: [where, name, 'cache', 'threshold'], message: `below the floor cache.semantic.minThreshold (${floor})` });
    }
  }
  for (const [t, p] of Object.entries(c.tenants)) {
    if (t !== '*' && !TENANT_ID.test(t)) ctx.addIssue({ code: 'custom', path: ['tenants', t], message: 'expected a tenant id (1–64 of A-Z a-z 0-9 . _ -) or "*"' });
    if (p.plan !== undefined && !(p.plan in c.plans)) ctx.addIssue({ code: 'custom', path: ['tenants', t, 'plan'], message: `unknown plan "${p.plan}"` });
  }
  for (const t of Object.keys(c.budgets.tierTokensPerMinute)) needTier(t, ['budgets', 'tierTokensPerMinute', t]);
  if (c.cache.store === 'redis' && !c.cache.redis) ctx.addIssue({ code: 'custom', path: ['cache', 'redis'], message: 'store "redis" needs cache.redis.url' });
  if (c.routing.affinity.store === 'redis' && !c.routing.affinity.redis) {
    ctx.addIssue({ code: 'custom', path: ['routing', 'affinity', 'redis'], message: 'store "redis" needs routing.affinity.redis.url' });
  }
  if (c.budgets.store === 'redis' && !c.budgets.redis) ctx.addIssue({ code: 'custom', path: ['budgets', 'redis'], message: 'store "redis" needs budgets.redis.url' });
  if (c.auth.mode === 'api_key' && c.auth.keys.length === 0) ctx.addIssue({ code: 'custom', path: ['auth', 'keys'], message: 'mode "api_key" needs at least one key' });
  // The built-in v7 is the user's own config only where it is used: with tiers of other names and a version of
  // their own active, it routes nothing, and requiring its tiers made such a config fail its check. Each tier it
  // lacks is named once (its four rules share two tiers).
  const usesV7 = [c.classifier.active, c.classifier.shadow, c.classifier.canary?.version].includes('v7');
  if (!c.classifier.versions.v7 && usesV7) {
    for (const t of new Set([V7.default, ...V7.rules.map((r) => r.tier)])) {
      if (tiers.has(t)) continue;
      ctx.addIssue({ code: 'custom', path: ['classifier', 'versions', 'v7'], message: `unknown tier "${t}" (tiers: ${[...tiers].join(', ')}), which the built-in v7 routes to: define it, or give v7 rules of your own here` });
    }
  }
}
