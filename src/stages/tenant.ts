// Resolves the tenant. With authentication off (the embedded default) every request belongs to `default`;
// the client's own x-tenant-id is never trusted.
import { H } from '../pipeline/contract-headers.js';
import type { Stage } from '../pipeline/stage.js';

export const DEFAULT_TENANT = 'default';

export const tenantStage: Stage = {
  name: 'tenant',
  onError: 'fail',
  run(state) {
    state.tenant = DEFAULT_TENANT;
    state.setHeaders.push([H.tenant, state.tenant]);
  },
};
