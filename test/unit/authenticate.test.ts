// The authenticate stage's decisions (src/stages/authenticate.ts), from request headers alone: which tenant, which
// refusal, which credential headers go before the upstream. The tenants-auth integration suite drives the same
// through Envoy's stream; this table holds each message and edge.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sha256Hex } from '../../src/auth/api-keys.js';
import type { Runtime } from '../../src/config/runtime.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { TiergateError } from '../../src/errors.js';
import { ExpiredKeyError, authenticate } from '../../src/stages/authenticate.js';
import { runtimeFor } from '../helpers/tiergate.js';

const runtime = (auth: ConfigInput['auth']): Runtime => runtimeFor({ auth });

const rt = runtime({
  mode: 'api_key',
  keys: [
    { id: 'acme-app', sha256: sha256Hex('sk-acme'), tenant: 'acme' },
    { id: 'platform', sha256: sha256Hex('sk-platform'), tenants: ['acme', 'globex'] },
    { id: 'ops', sha256: sha256Hex('sk-ops'), tenants: ['*'] },
    { id: 'contractor', sha256: sha256Hex('sk-contractor'), tenant: 'acme', expiresAt: '2026-06-30T12:00:00Z' },
  ],
});

const call = (h: Record<string, string>, r: Runtime = rt) => authenticate(new Map(Object.entries(h)), r);

function refusal(h: Record<string, string>): { status: number; code: string; message: string; param: string | null | undefined } {
  try {
    call(h);
  } catch (e) {
    if (e instanceof TiergateError) return { status: e.entry.status, code: e.entry.code, message: e.message, param: e.param ?? undefined };
    throw e;
  }
  throw new Error('expected a refusal');
}

afterEach(() => {
  vi.useRealTimers();
});

describe('authenticate', () => {
  it('with auth off every request is tenant default, whatever it sends, and nothing is stripped', () => {
    const off = runtime({ mode: 'none' });
    expect(call({ 'x-tenant-id': 'globex', authorization: 'Bearer sk-x' }, off)).toEqual({ tenant: 'default', principal: undefined, strip: [] });
  });

  it('a key with a fixed tenant: that tenant, or x-tenant-id naming it; the key headers sent are stripped', () => {
    expect(call({ authorization: 'Bearer sk-acme' })).toEqual({ tenant: 'acme', principal: 'acme-app', strip: ['authorization'] });
    expect(call({ 'x-api-key': 'sk-acme', 'x-tenant-id': 'acme' })).toEqual({ tenant: 'acme', principal: 'acme-app', strip: ['x-api-key'] });
    // Both headers sent: both go, though only x-api-key was read.
    expect(call({ authorization: 'Bearer sk-other', 'x-api-key': 'sk-acme' }).strip).toEqual(['authorization', 'x-api-key']);
  });

  it('a key acting for several tenants: the one x-tenant-id names, if the key may; "*" may name any', () => {
    expect(call({ authorization: 'Bearer sk-platform', 'x-tenant-id': 'globex' })).toEqual({ tenant: 'globex', principal: 'platform', strip: ['authorization'] });
    expect(call({ authorization: 'Bearer sk-ops', 'x-tenant-id': 'initech' }).tenant).toBe('initech');
  });

  it.each([
    ['no key', {}, 401, 'missing_api_key', 'You did not provide an API key. Send it as "Authorization: Bearer <key>" or "x-api-key: <key>".', undefined],
    ['a key of another scheme', { authorization: 'Basic c2s=' }, 401, 'missing_api_key', 'You did not provide an API key. Send it as "Authorization: Bearer <key>" or "x-api-key: <key>".', undefined],
    ['an unknown key', { authorization: 'Bearer sk-nobody' }, 401, 'invalid_api_key', 'Incorrect API key provided.', undefined],
    ['a fixed tenant key naming another tenant', { authorization: 'Bearer sk-acme', 'x-tenant-id': 'globex' }, 403, 'tenant_not_allowed', 'This API key may not act for the tenant named in x-tenant-id.', 'x-tenant-id'],
    ['a several-tenant key naming none', { authorization: 'Bearer sk-platform' }, 401, 'tenant_required', 'This API key acts for several tenants: name one in the x-tenant-id header.', 'x-tenant-id'],
    ['a several-tenant key naming the empty tenant', { authorization: 'Bearer sk-platform', 'x-tenant-id': '' }, 401, 'tenant_required', 'This API key acts for several tenants: name one in the x-tenant-id header.', 'x-tenant-id'],
    ['a tenant id that is not one', { authorization: 'Bearer sk-ops', 'x-tenant-id': 'acme/../globex' }, 400, 'invalid_tenant_id', 'x-tenant-id must be 1–64 characters of A-Z a-z 0-9 . _ -', 'x-tenant-id'],
    ['a tenant the key may not name', { authorization: 'Bearer sk-platform', 'x-tenant-id': 'initech' }, 403, 'tenant_not_allowed', 'This API key may not act for the tenant named in x-tenant-id.', 'x-tenant-id'],
  ] as Array<[string, Record<string, string>, number, string, string, string | undefined]>)('%s', (_name, headers, status, code, message, param) => {
    const r = refusal(headers);
    expect(r).toEqual({ status, code, message, param });
    // The refusal never echoes the tenant asked for.
    const asked = headers['x-tenant-id'];
    if (asked) expect(r.message).not.toContain(asked);
  });

  it('an expired key is refused from its expiry instant on, saying when, with its tenant for the ledger', () => {
    vi.useFakeTimers();
    vi.setSystemTime(Date.parse('2026-06-30T11:59:59.999Z'));
    expect(call({ authorization: 'Bearer sk-contractor' }).tenant).toBe('acme');
    vi.setSystemTime(Date.parse('2026-06-30T12:00:00.000Z'));
    let e: unknown;
    try {
      call({ authorization: 'Bearer sk-contractor' });
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(ExpiredKeyError);
    expect((e as ExpiredKeyError).tenant).toBe('acme');
    expect((e as ExpiredKeyError).entry).toMatchObject({ status: 401, code: 'expired_api_key' });
    expect((e as ExpiredKeyError).message).toBe('This API key expired at 2026-06-30T12:00:00.000Z. Ask for a new one.');
  });
});
