// Stored Responses API responses and conversations that tenants could use across each other. The backends
// behind tiergate hold every tenant's under the one upstream credential tiergate sends, so only tiergate can
// keep a tenant to its own ids, and it can only with a response affinity store (which records who made each)
// and isolation on. A valid config without them (one tenant, or tenants that trust each other), so a note in
// `tiergate config check` and a warning when tiergate starts, not a problem.
import type { ConfigNote } from './config-note.js';
import { readsResponses, type Runtime } from './runtime.js';

export function responsesNotIsolated(rt: Runtime): ConfigNote[] {
  // Without keys every caller is one tenant; without the Responses path no response ids pass through tiergate.
  if (rt.auth.mode === 'none' || !readsResponses(rt)) return [];
  const { store, isolation } = rt.config.routing.affinity;
  const exposure = 'any tenant holding the id of a Responses API response or conversation another tenant stored can read, continue or delete it';
  if (store === 'off') {
    return [{ path: 'routing.affinity.store', message: `off, with gateway keys on: ${exposure}; a store (memory for one replica, redis for several) lets tiergate record who made each and refuse the others` }];
  }
  if (isolation === 'off') return [{ path: 'routing.affinity.isolation', message: `off: ${exposure}; "known" refuses ids another tenant holds` }];
  return [];
}
