// Who is calling, and for which tenant. Runs on the request headers, before Envoy buffers a body, so an
// unauthenticated client never gets the gateway to hold megabytes for it. The client's own x-tenant-id only
// counts when its key may act for that tenant; the resolved tenant always overwrites the header upstream.
import { findPrincipal, presentedKey, type AuthRuntime } from '../auth/api-keys.js';
import type { Runtime } from '../config/runtime.js';
import { TENANT_ID } from '../config/policy-schema.js';
import { TiergateError } from '../errors.js';
import type { HeaderMap } from '../extproc/types.js';
import { H } from '../pipeline/contract-headers.js';

export const DEFAULT_TENANT = 'default';
/** The ledger's tenant_id for a request refused by authentication; outside TENANT_ID, so never a real one. */
export const UNAUTHENTICATED = '(unauthenticated)';

export interface Caller {
  tenant: string;
  /** The key's principal id (safe to log); undefined with auth off. */
  principal: string | undefined;
  /** Credential headers to remove before the request goes upstream. */
  strip: readonly string[];
}

const ANONYMOUS: Caller = Object.freeze({ tenant: DEFAULT_TENANT, principal: undefined, strip: [] });

export function authenticate(headers: HeaderMap, rt: Runtime): Caller {
  if (rt.auth.mode === 'none') return ANONYMOUS;
  const authorization = headers.get(H.authorization);
  const xApiKey = headers.get(H.apiKey);
  const key = presentedKey(authorization, xApiKey);
  if (key === undefined) {
    throw new TiergateError('missing_api_key', 'You did not provide an API key. Send it as "Authorization: Bearer <key>" or "x-api-key: <key>".');
  }
  const principal = findPrincipal(rt.auth, key);
  if (!principal) throw new TiergateError('invalid_api_key', 'Incorrect API key provided.');
  // Said plainly, to the holder of the key only (it matched): "incorrect" would send them checking what they typed.
  if (principal.expiresAt !== undefined && Date.now() >= principal.expiresAt) throw new ExpiredKeyError(principal.expiresAt, principal.tenant);
  const strip: string[] = [];
  if (authorization !== undefined) strip.push(H.authorization);
  if (xApiKey !== undefined) strip.push(H.apiKey);
  const asked = headers.get(H.tenant);
  if (principal.tenant !== undefined) {
    if (asked !== undefined && asked !== principal.tenant) throw notAllowed();
    return { tenant: principal.tenant, principal: principal.id, strip };
  }
  if (asked === undefined || asked === '') {
    throw new TiergateError('tenant_required', 'This API key acts for several tenants: name one in the x-tenant-id header.', H.tenant);
  }
  if (!TENANT_ID.test(asked)) throw new TiergateError('invalid_tenant_id', 'x-tenant-id must be 1–64 characters of A-Z a-z 0-9 . _ -', H.tenant);
  if (!principal.tenants.has('*') && !principal.tenants.has(asked)) throw notAllowed();
  return { tenant: asked, principal: principal.id, strip };
}

/**
 * How requests can come to be of this tenant under this config: `named` when a key names it (its fixed tenant, or
 * one it lists) or, with auth off, it is the one tenant there is; `any` when only a key for every tenant ("*")
 * reaches it; `none` when no request can be of it. The admin listener's budget view tells a tenant an operator
 * mistyped from one that is merely idle by this.
 */
export function tenantReach(auth: AuthRuntime, tenant: string): 'named' | 'any' | 'none' {
  if (auth.mode === 'none') return tenant === DEFAULT_TENANT ? 'named' : 'none';
  let reach: 'any' | 'none' = 'none';
  for (const p of auth.principals) {
    if (p.tenant === tenant || p.tenants.has(tenant)) return 'named';
    if (p.tenants.has('*')) reach = 'any';
  }
  return reach;
}

// The message never echoes the tenant asked for, nor which tenants the key does own.
const notAllowed = () => new TiergateError('tenant_not_allowed', 'This API key may not act for the tenant named in x-tenant-id.', H.tenant);

/**
 * A key that matched but has expired. Its tenant, when the key has a fixed one, is known for certain (the key was
 * that tenant's), so the refusal's ledger row goes to it: whoever chases the key's last clients finds them there.
 */
export class ExpiredKeyError extends TiergateError {
  constructor(
    expiresAt: number,
    readonly tenant: string | undefined,
  ) {
    super('expired_api_key', `This API key expired at ${new Date(expiresAt).toISOString()}. Ask for a new one.`);
  }
}
