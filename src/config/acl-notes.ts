// Tenants whose model list leaves out the tier an unclassified path goes to. Their requests on that path are
// refused (403 model_not_allowed) on the request headers, as the ACL says; a config written before that rule
// (2026-12-03), or one that lists only chat tiers, may not mean it. A valid config all the same, so a note in
// `tiergate config check` and a warning when tiergate starts, not a problem.
import { tierAllowed } from '../stages/policy.js';
import type { ConfigNote } from './config-note.js';
import type { Runtime } from './runtime.js';

export function fixedTiersExcluded(rt: Runtime): ConfigNote[] {
  const notes: ConfigNote[] = [];
  for (const [path, { tier }] of rt.unclassifiedPaths) {
    if (tier === undefined) continue;
    // Each configured tenant entry, "*" (every tenant without one) included, as its policy resolves.
    for (const name of Object.keys(rt.config.tenants)) {
      if (tierAllowed(rt, rt.tenants.policyFor(name), tier)) continue;
      notes.push({
        path: `tenants.${name}`,
        message: `its models leave out tier '${tier}', where routing.unclassifiedPaths sends ${path}: ${name === '*' ? 'tenants without an entry of their own' : 'this tenant'} will be refused there (403 model_not_allowed); list '${tier}' in its models (or its plan's) if they may use it`,
      });
    }
  }
  return notes;
}
