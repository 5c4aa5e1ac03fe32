// Gateway API keys → principals. Keys are held only as SHA-256 digests and compared in constant time; the
// presented key is never logged or kept. A principal either is one tenant or may act for the tenants it lists
// through x-tenant-id.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import type { InterpolationProblem } from '../config/interpolate.js';
import type { authSchema } from '../config/policy-schema.js';

export interface Principal {
  id: string;
  digest: Buffer;
  /** The fixed tenant, or undefined when the key acts through x-tenant-id. */
  tenant: string | undefined;
  /** For x-tenant-id keys: the tenants allowed ("*" for every tenant). */
  tenants: ReadonlySet<string>;
  /** When the key stops working (epoch ms), or undefined for never. */
  expiresAt: number | undefined;
}

export interface AuthRuntime {
  mode: 'none' | 'api_key';
  principals: readonly Principal[];
  /**
   * The sha256File paths and the digest each held when read: the config store watches them (a rotated Secret
   * applies without an edit of the config), and the config's version counts what they held.
   */
  keyFiles: ReadonlyMap<string, string>;
  /** Whether a path may be called without a key (auth.publicPaths). */
  isPublic(path: string): boolean;
}

export function compileAuth(auth: z.infer<typeof authSchema>, problems: InterpolationProblem[]): AuthRuntime {
  const principals: Principal[] = [];
  const keyFiles = new Map<string, string>();
  auth.keys.forEach((k, i) => {
    let hex = k.sha256;
    if (k.sha256File !== undefined) {
      try {
        hex = keyFileDigest(k.sha256File);
      } catch (e) {
        problems.push({ path: `auth.keys[${i}].sha256File`, message: (e as Error).message });
        return;
      }
      if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
        problems.push({ path: `auth.keys[${i}].sha256File`, message: 'file must hold 64 hex characters (a SHA-256 digest)' });
        return;
      }
      keyFiles.set(k.sha256File, hex);
    }
    const expiresAt = k.expiresAt === undefined ? undefined : Date.parse(k.expiresAt);
    principals.push({ id: k.id, digest: Buffer.from(hex as string, 'hex'), tenant: k.tenant, tenants: new Set(k.tenants ?? []), expiresAt });
  });
  const exact = new Set(auth.publicPaths.filter((p) => !p.endsWith('*')));
  const prefixes = auth.publicPaths.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  const isPublic = (path: string) => (exact.has(path) || prefixes.some((p) => path.startsWith(p))) && plainPath(path);
  return { mode: auth.mode, principals, keyFiles, isPublic };
}

/** What a key file (sha256File) holds, as compared: trimmed, lower-cased. Throws what reading it throws. */
export function keyFileDigest(path: string): string {
  return readFileSync(path, 'utf8').trim().toLowerCase();
}

/**
 * No dot segments, no percent-escapes, no backslashes: a path that a backend could read as another one
 * (`/public/../v1/responses`) is never public, whatever Envoy's path normalisation is set to.
 */
function plainPath(path: string): boolean {
  return !path.includes('%') && !path.includes('\\') && !path.split('/').some((seg) => seg === '.' || seg === '..');
}

/** The key a client presented: `authorization: Bearer <key>` or `x-api-key: <key>`. */
export function presentedKey(authorization: string | undefined, xApiKey: string | undefined): string | undefined {
  if (xApiKey) return xApiKey.trim() || undefined;
  if (!authorization) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return m ? m[1] : undefined;
}

/**
 * Every principal's digest is compared, whether or not an earlier one matched, so the time taken says nothing
 * about which (or whether a) key matched.
 */
export function findPrincipal(auth: AuthRuntime, key: string): Principal | undefined {
  const digest = createHash('sha256').update(key, 'utf8').digest();
  let found: Principal | undefined;
  for (const p of auth.principals) {
    if (timingSafeEqual(digest, p.digest) && found === undefined) found = p;
  }
  return found;
}

export function sha256Hex(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
