// Authentication and model ACLs through the Envoy-faithful client: who may call, for which tenant, with
// which models; and that keys never reach the upstream or the logs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256Hex } from '../../src/auth/api-keys.js';
import { chatRequestHeaders, getHeader, postHeaders, type Outcome } from '../../src/dev/envoy-client.js';
import { jsonBody, metricValue, rowFor, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

const KEY_ACME = 'tg-acme-0123456789abcdef';
const KEY_PLATFORM = 'tg-platform-fedcba9876543210';
const KEY_ANY = 'tg-any-5555555555555555';
const KEY_FROM_FILE = 'tg-file-7777777777777777';
const KEY_EXPIRED = 'tg-expired-1111111111111111';
const KEY_EXPIRING = 'tg-expiring-2222222222222222';

let tg: TestTiergate;
beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tiergate-keys-'));
  writeFileSync(join(dir, 'hash'), `${sha256Hex(KEY_FROM_FILE)}\n`);
  tg = await startTiergate(
    {
      auth: {
        mode: 'api_key',
        keys: [
          { id: 'acme-app', sha256: sha256Hex(KEY_ACME), tenant: 'acme' },
          { id: 'platform', sha256: sha256Hex(KEY_PLATFORM), tenants: ['acme', 'globex'] },
          { id: 'ops', sha256: sha256Hex(KEY_ANY), tenants: ['*'] },
          { id: 'from-file', sha256File: join(dir, 'hash'), tenant: 'initech' },
          { id: 'contractor', sha256: sha256Hex(KEY_EXPIRED), tenant: 'acme', expiresAt: '2026-01-31T00:00:00Z' },
          { id: 'ci', sha256: sha256Hex(KEY_EXPIRING), tenants: ['globex'], expiresAt: '2999-12-31T23:00:00-01:00' },
        ],
        publicPaths: ['/v1/models', '/public/*'],
      },
      aliases: { fast: 'weak', smart: 'strong' },
      // A path whose body tiergate does not read, sent to the strong tier (a reranker beside the large model).
      routing: { unclassifiedPaths: { '/v1/embeddings': {}, '/v1/rerank': { tier: 'strong' } } },
      plans: { basic: { models: ['weak'], onTierDenied: 'downgrade', serviceTiers: ['default', 'flex'], hostedTools: ['file_search', 'image_generation'] } },
      tenants: {
        acme: { plan: 'basic' },
        globex: { plan: 'basic', onTierDenied: 'refuse', hostedTools: [] },
        initech: { models: ['smart'] },
      },
    },
  );
});
afterAll(async () => tg.stop());

const STRONG_PROMPT = 'Please debug this stack trace and explain the root cause in detail.';
async function call(headers: Array<[string, string]>, body: Record<string, unknown> = { model: 'auto', messages: [{ role: 'user', content: 'Say hi' }] }) {
  const s = tg.pool.open();
  const h = await s.sendRequestHeaders(chatRequestHeaders(headers), false);
  if (h.kind !== 'continue') return { s, o: h };
  const o = await s.sendRequestBody(jsonBody(body));
  return { s, o };
}
function errorOf(o: Outcome) {
  if (o.kind !== 'immediate') throw new Error(`expected a local reply, got ${o.kind}`);
  return { status: o.status, error: (JSON.parse(o.body.toString()) as { error: { code: string; type: string; message: string; param: string | null } }).error };
}

describe('authentication', () => {
  it.each([
    ['no key', 401, 'missing_api_key', []],
    ['a wrong key', 401, 'invalid_api_key', [['authorization', 'Bearer tg-wrong']]],
    ['a malformed authorization', 401, 'missing_api_key', [['authorization', `Basic ${KEY_ACME}`]]],
    ['a multi-tenant key without x-tenant-id', 401, 'tenant_required', [['x-api-key', KEY_PLATFORM]]],
    ['a multi-tenant key naming a tenant it does not own', 403, 'tenant_not_allowed', [['x-api-key', KEY_PLATFORM], ['x-tenant-id', 'initech']]],
    ['a fixed-tenant key naming another tenant', 403, 'tenant_not_allowed', [['authorization', `Bearer ${KEY_ACME}`], ['x-tenant-id', 'globex']]],
    ['a "*" key with a tenant id that is not an id', 400, 'invalid_tenant_id', [['x-api-key', KEY_ANY], ['x-tenant-id', 'a b{c}']]],
  ] as Array<[string, number, string, Array<[string, string]>]>)('%s → %d %s, answered on the request headers', async (_, status, code, headers) => {
    const s = tg.pool.open();
    const o = await s.sendRequestHeaders(chatRequestHeaders(headers), false); // no body needed to refuse
    const e = errorOf(o);
    expect(e.status).toBe(status);
    expect(e.error.code).toBe(code);
    expect(o.kind === 'immediate' && getHeader(o.headers, 'content-type')).toBe('application/json');
    s.close();
  });

  it.each([
    ['a fixed-tenant key in authorization', 'acme', [['authorization', `Bearer ${KEY_ACME}`]]],
    ['a fixed-tenant key in x-api-key, tenant spoof attempt with its own id', 'acme', [['x-api-key', KEY_ACME], ['x-tenant-id', 'acme']]],
    ['a multi-tenant key naming an owned tenant', 'globex', [['x-api-key', KEY_PLATFORM], ['x-tenant-id', 'globex']]],
    ['a "*" key naming any tenant', 'newco', [['authorization', `Bearer ${KEY_ANY}`], ['x-tenant-id', 'newco']]],
    ['a key whose hash is read from a file', 'initech', [['authorization', `Bearer ${KEY_FROM_FILE}`]]],
  ] as Array<[string, string, Array<[string, string]>]>)('%s → tenant %s, credentials stripped', async (_, tenant, headers) => {
    const { s, o } = await call(headers, { model: tenant === 'initech' ? 'smart' : 'auto', messages: [{ role: 'user', content: 'Say hi' }] });
    expect(o.kind).toBe('continue');
    expect(getHeader(s.requestHeaders, 'x-tenant-id')).toBe(tenant);
    expect(getHeader(s.requestHeaders, 'authorization')).toBeUndefined();
    expect(getHeader(s.requestHeaders, 'x-api-key')).toBeUndefined();
    s.close();
  });

  it('embeddings (routed without a body) are authenticated too, and their tenant is set', async () => {
    const s = tg.pool.open();
    const refused = await s.sendRequestHeaders([[':method', 'POST'], [':path', '/v1/embeddings'], ['content-type', 'application/json']], false);
    expect(errorOf(refused).status).toBe(401);
    const s2 = tg.pool.open();
    const ok = await s2.sendRequestHeaders([[':method', 'POST'], [':path', '/v1/embeddings'], ['x-api-key', KEY_ACME], ['x-tenant-id', 'acme']], false);
    expect(ok.kind).toBe('continue');
    expect(getHeader(s2.requestHeaders, 'x-tenant-id')).toBe('acme');
    expect(getHeader(s2.requestHeaders, 'x-api-key')).toBeUndefined();
    s.close();
    s2.close();
  });

  it('paths tiergate does not account for need a key too: refused without, key removed and tenant set with', async () => {
    const headersFor = (path: string, extra: Array<[string, string]> = []): Array<[string, string]> => [[':method', 'POST'], [':path', path], [':authority', 'gw'], ['x-request-id', `other-${path}`], ...extra];
    // /v1/audio/speech spends money on a backend that serves it: no key, no way through.
    const s = tg.pool.open();
    const refused = errorOf(await s.sendRequestHeaders(headersFor('/v1/audio/speech'), false));
    expect([refused.status, refused.error.code]).toEqual([401, 'missing_api_key']);
    s.close();
    await expect.poll(async () => (await tg.rows()).find((r) => r.request_id === 'other-/v1/audio/speech')).toMatchObject({
      tenant_id: '(unauthenticated)',
      status: 'rejected',
      http_status: 401,
    });
    const s2 = tg.pool.open();
    const ok = await s2.sendRequestHeaders(headersFor('/v1/audio/speech', [['authorization', `Bearer ${KEY_ACME}`], ['x-llm-tier', 'strong']]), false);
    expect(ok.kind).toBe('continue');
    expect(getHeader(s2.requestHeaders, 'authorization')).toBeUndefined(); // the gateway key never reaches a backend
    expect(getHeader(s2.requestHeaders, 'x-tenant-id')).toBe('acme');
    expect(getHeader(s2.requestHeaders, 'x-llm-tier')).toBeUndefined();
    s2.close();
    // Public paths pass without a key (spoofed routing headers still go); a path that could be read as another
    // one never counts as public.
    for (const [path, open] of [
      ['/v1/models', true],
      ['/public/status', true],
      ['/v1/models/x', false],
      ['/public/../v1/responses', false],
      ['/public/%2e%2e/v1/responses', false],
    ] as const) {
      const s3 = tg.pool.open();
      const o = await s3.sendRequestHeaders(headersFor(path, [['x-tenant-id', 'globex']]), false);
      expect(o.kind === 'immediate' ? o.status : o.kind, path).toBe(open ? 'continue' : 401);
      if (open) expect(getHeader(s3.requestHeaders, 'x-tenant-id'), path).toBeUndefined();
      s3.close();
    }
  });

  it('a refused request still gets its ledger row, under a tenant id no real tenant can have', async () => {
    const { s } = await call([['x-request-id', 'unauth-row'], ['authorization', 'Bearer nope']]);
    s.close();
    await expect.poll(async () => (await tg.rows()).find((r) => r.request_id === 'unauth-row')).toMatchObject({
      tenant_id: '(unauthenticated)',
      status: 'rejected',
      http_status: 401,
      error_code: 'invalid_api_key',
      cost_usd: { total: 0 },
    });
  });

  it('an expired key → 401 expired_api_key saying when, its row under its own tenant; a key before its expiry works', async () => {
    const { s, o } = await call([['authorization', `Bearer ${KEY_EXPIRED}`], ['x-request-id', 'expired-key']]);
    s.close();
    const e = errorOf(o);
    expect([e.status, e.error.type, e.error.code]).toEqual([401, 'authentication_error', 'expired_api_key']);
    expect(e.error.message).toBe('This API key expired at 2026-01-31T00:00:00.000Z. Ask for a new one.');
    await expect.poll(async () => (await tg.rows()).find((r) => r.request_id === 'expired-key')).toMatchObject({ tenant_id: 'acme', status: 'rejected', http_status: 401, error_code: 'expired_api_key' });
    // Another key's hash is never taken for it: a wrong key is still just incorrect.
    expect(errorOf((await call([['authorization', `Bearer ${KEY_EXPIRED}x`]])).o).error.code).toBe('invalid_api_key');
    const ok = await call([['x-api-key', KEY_EXPIRING], ['x-tenant-id', 'globex']]);
    expect(ok.o.kind).toBe('continue');
    ok.s.close();
    // Both expiries, for alerts (the offset is read: 23:00 at -01:00 is midnight UTC).
    expect(await metricValue(tg.app, 'tiergate_api_key_expiry_timestamp_seconds', { key: 'contractor' })).toBe(Date.UTC(2026, 0, 31) / 1000);
    expect(await metricValue(tg.app, 'tiergate_api_key_expiry_timestamp_seconds', { key: 'ci' })).toBe(Date.UTC(3000, 0, 1) / 1000);
    expect(await metricValue(tg.app, 'tiergate_api_key_expiry_timestamp_seconds', { key: 'acme-app' })).toBe(0); // no expiry, no series
  });

  it('keys never reach the logs, accepted or refused', async () => {
    await call([['authorization', 'Bearer tg-wrong-key-should-not-be-logged']]);
    await call([['authorization', `Bearer ${KEY_ACME}`]]);
    const all = tg.logs.join('\n');
    expect(all).toContain('invalid_api_key'); // the refusal was logged...
    await call([['authorization', `Bearer ${KEY_EXPIRED}`]]);
    for (const secret of ['tg-wrong-key-should-not-be-logged', KEY_ACME, sha256Hex(KEY_ACME), KEY_EXPIRED]) expect(all + tg.logs.join('\n')).not.toContain(secret); // ...without the key
  });
});

describe('model ACLs', () => {
  it('an alias the tenant may not use → 403 model_not_allowed', async () => {
    const before = await metricValue(tg.app, 'tiergate_acl_decisions_total', { result: 'refused' });
    const { o } = await call([['x-api-key', KEY_ACME]], { model: 'smart', messages: [{ role: 'user', content: 'hi' }] });
    const e = errorOf(o);
    expect([e.status, e.error.code, e.error.param, e.error.message]).toEqual([403, 'model_not_allowed', 'model', "Your plan does not include the model 'smart'."]);
    expect(await metricValue(tg.app, 'tiergate_acl_decisions_total', { result: 'refused' })).toBe(before + 1);
  });

  it('an allowed tier admits its aliases and its model id', async () => {
    for (const model of ['fast', 'weak-model']) {
      const { s, o } = await call([['x-api-key', KEY_ACME]], { model, messages: [{ role: 'user', content: 'hi' }] });
      expect(o.kind).toBe('continue');
      expect(getHeader(s.requestHeaders, 'x-llm-tier')).toBe('weak');
      s.close();
    }
  });

  it('auto classified strong for a weak-only plan → downgraded to weak with reason acl_downgrade', async () => {
    const before = await metricValue(tg.app, 'tiergate_acl_decisions_total', { result: 'downgraded' });
    const { s, o } = await call([['x-api-key', KEY_ACME], ['x-request-id', 'acl-down']], { model: 'auto', messages: [{ role: 'user', content: STRONG_PROMPT }] });
    expect(o.kind).toBe('continue');
    expect(getHeader(s.requestHeaders, 'x-llm-tier')).toBe('weak');
    expect(JSON.parse((o.kind === 'continue' && o.body?.toString()) || '{}').model).toBe('weak-model');
    s.close();
    await expect.poll(async () => (await tg.rows()).find((r) => r.request_id === 'acl-down')).toMatchObject({ tenant_id: 'acme', tier: 'weak', classifier_reason: 'acl_downgrade', rate_limit_tier: 'basic' });
    expect(await metricValue(tg.app, 'tiergate_acl_decisions_total', { result: 'downgraded' })).toBe(before + 1);
  });

  it('auto classified weak for a tenant allowed only the strong tier (by its alias) → the first tier it may use, strong', async () => {
    // The fallback is the first tier the tenant may use, not the first tier: weak would be outside initech's list.
    const { s, o } = await call([['authorization', `Bearer ${KEY_FROM_FILE}`], ['x-request-id', 'acl-up']], { model: 'auto', messages: [{ role: 'user', content: 'Say hi' }] });
    expect(o.kind).toBe('continue');
    expect(getHeader(s.requestHeaders, 'x-llm-tier')).toBe('strong');
    expect(JSON.parse((o.kind === 'continue' && o.body?.toString()) || '{}').model).toBe('strong-model');
    s.close();
    await expect.poll(async () => (await tg.rows()).find((r) => r.request_id === 'acl-up')).toMatchObject({ tenant_id: 'initech', tier: 'strong', classifier_reason: 'acl_downgrade' });
  });

  it('the same request for a tenant whose policy says refuse → 403', async () => {
    const before = await metricValue(tg.app, 'tiergate_acl_decisions_total', { result: 'refused' });
    const { o } = await call([['x-api-key', KEY_PLATFORM], ['x-tenant-id', 'globex']], { model: 'auto', messages: [{ role: 'user', content: STRONG_PROMPT }] });
    expect(errorOf(o)).toMatchObject({ status: 403, error: { code: 'model_not_allowed', param: 'model', message: "This request needs the 'strong' tier, which your plan does not include." } });
    expect(await metricValue(tg.app, 'tiergate_acl_decisions_total', { result: 'refused' })).toBe(before + 1);
  });

  it("a path routed without a body read to a tier the plan excludes → 403 on the request headers, never downgraded", async () => {
    const rerank = (extra: Array<[string, string]>): Array<[string, string]> => [[':method', 'POST'], [':path', '/v1/rerank'], ['content-type', 'application/json'], ...extra];
    // Valid, but said once at start: which tenants' lists leave that tier out (initech's alias routes to it).
    const warned = tg.logs.map((l) => JSON.parse(l) as { event?: string; path?: string }).filter((l) => l.event === 'config.tier_excluded');
    expect(warned.map((l) => l.path).sort()).toEqual(['tenants.acme', 'tenants.globex']);
    const before = await metricValue(tg.app, 'tiergate_acl_decisions_total', { result: 'refused' });
    // acme's plan is weak only: the strong tier's reranker is not in it, whatever model the unread body names.
    const s = tg.pool.open();
    const e = errorOf(await s.sendRequestHeaders(rerank([['x-api-key', KEY_ACME], ['x-request-id', 'acl-fixed']]), false));
    expect([e.status, e.error.code, e.error.param]).toEqual([403, 'model_not_allowed', 'model']);
    expect(e.error.message).toContain("'strong' tier");
    s.close();
    await expect.poll(async () => (await tg.rows()).find((r) => r.request_id === 'acl-fixed')).toMatchObject({ tenant_id: 'acme', status: 'rejected', http_status: 403, error_code: 'model_not_allowed' });
    expect(await metricValue(tg.app, 'tiergate_acl_decisions_total', { result: 'refused' })).toBe(before + 1);
    // initech may use the alias 'smart', which routes to strong: so the tier is allowed. A tenant with no model
    // list may use every tier.
    for (const [key, tenant] of [[[['authorization', `Bearer ${KEY_FROM_FILE}`]], 'initech'], [[['x-api-key', KEY_ANY], ['x-tenant-id', 'newco']], 'newco']] as Array<[Array<[string, string]>, string]>) {
      const s2 = tg.pool.open();
      const o = await s2.sendRequestHeaders(rerank(key), false);
      expect(o.kind, tenant).toBe('continue');
      expect(getHeader(s2.requestHeaders, 'x-llm-tier'), tenant).toBe('strong');
      expect(getHeader(s2.requestHeaders, 'x-tenant-id'), tenant).toBe(tenant);
      s2.close();
    }
  });

  it('hosted tools: one the plan does not list → 403 tool_not_allowed, on chat and the Responses API; listed ones and the client\'s own pass', async () => {
    const acme: Array<[string, string]> = [['x-api-key', KEY_ACME]];
    const responses = async (key: Array<[string, string]>, tools: unknown[], id: string) => {
      const s = tg.pool.open();
      await s.sendRequestHeaders(postHeaders('/v1/responses', [...key, ['x-request-id', id]]), false);
      const o = await s.sendRequestBody(jsonBody({ model: 'auto', store: false, input: 'What is new?', tools }));
      s.close();
      return o;
    };
    const fn = { type: 'function', name: 'lookup', parameters: { type: 'object' } };
    for (const tools of [[{ type: 'web_search' }], [fn, { type: 'file_search', vector_store_ids: ['vs_1'] }, { type: 'code_interpreter', container: { type: 'auto' } }]]) {
      const e = errorOf(await responses(acme, tools, 'tools-refused'));
      expect([e.status, e.error.code, e.error.param]).toEqual([403, 'tool_not_allowed', 'tools']);
      expect(e.error.message).toMatch(/hosted tool '(web_search|code_interpreter)'; it may use: file_search, image_generation\.$/);
    }
    expect(await rowFor(tg, 'tools-refused')).toMatchObject({ tenant_id: 'acme', status: 'rejected', http_status: 403, error_code: 'tool_not_allowed' });
    // Listed, or run by the client (function, custom), or malformed (the backend's to refuse): passed on.
    expect((await responses(acme, [fn, { type: 'custom', name: 'x' }, { type: 'file_search', vector_store_ids: ['vs_1'] }, { type: 'image_generation' }, 'junk', null, { name: 'no type' }], 'tools-ok')).kind).toBe('continue');
    // A coding agent's own tools run on the client's machine (Codex: local_shell, shell, apply_patch), as does
    // computer use: passed on whatever the plan lists.
    const agent = [fn, { type: 'local_shell' }, { type: 'shell' }, { type: 'apply_patch' }, { type: 'computer_use_preview', display_width: 1024, display_height: 768, environment: 'browser' }];
    expect((await responses(acme, agent, 'tools-agent')).kind).toBe('continue');
    // Chat: a search model's web_search_options is the web_search tool; a function tool is the client's.
    const chat = (key: Array<[string, string]>, extra: Record<string, unknown>) => call(key, { model: 'auto', messages: [{ role: 'user', content: 'hi' }], ...extra });
    const search = errorOf((await chat(acme, { web_search_options: {} })).o);
    expect([search.status, search.error.code, search.error.param, search.error.message]).toEqual([403, 'tool_not_allowed', 'web_search_options', "Your plan does not include the hosted tool 'web_search'; it may use: file_search, image_generation."]);
    // A plan that lists no hosted tool says so.
    const none = errorOf(await responses([['x-api-key', KEY_PLATFORM], ['x-tenant-id', 'globex']], [{ type: 'web_search' }], 'tools-none'));
    expect(none.error.message).toBe("Your plan does not include the hosted tool 'web_search'; it may use: none.");
    // Only Chat Completions takes web_search_options: on the legacy completions API it is the backend's to refuse.
    const legacy = tg.pool.open();
    await legacy.sendRequestHeaders(postHeaders('/v1/completions', acme), false);
    expect((await legacy.sendRequestBody(jsonBody({ model: 'auto', prompt: 'hi', web_search_options: {} }))).kind).toBe('continue');
    legacy.close();
    expect((await chat(acme, { tools: [{ type: 'function', function: { name: 'f' } }] })).o.kind).toBe('continue');
    // initech's policy lists none: any hosted tool goes through.
    expect((await responses([['authorization', `Bearer ${KEY_FROM_FILE}`]], [{ type: 'web_search' }], 'tools-any')).kind).toBe('continue');
  });

  it('service tiers: one the plan does not list → 403 service_tier_not_allowed; listed ones, auto and none pass', async () => {
    const ask = async (key: Array<[string, string]>, tier: unknown) => (await call(key, { model: 'auto', messages: [{ role: 'user', content: 'hi' }], ...(tier === undefined ? {} : { service_tier: tier }) })).o;
    const acme: Array<[string, string]> = [['x-api-key', KEY_ACME]];
    for (const tier of ['priority', 'scale', 7, ['flex']]) {
      const e = errorOf(await ask(acme, tier));
      expect([e.status, e.error.code, e.error.param], JSON.stringify(tier)).toEqual([403, 'service_tier_not_allowed', 'service_tier']);
      expect(e.error.message).toContain('auto, default, flex');
    }
    for (const tier of ['default', 'flex', 'auto', null, undefined]) {
      const o = await ask(acme, tier);
      expect(o.kind, String(tier)).toBe('continue');
      // Passed on as the client sent it: the plan decides whether, not which.
      if (o.kind === 'continue' && tier !== undefined) expect(JSON.parse(o.body?.toString() ?? '{}').service_tier).toBe(tier);
    }
    // initech's policy lists none: any service tier goes through.
    expect((await ask([['authorization', `Bearer ${KEY_FROM_FILE}`]], 'priority')).kind).toBe('continue');
  });
});
