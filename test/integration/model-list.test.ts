// The model list as the gateway sees it (routing.models.serve), through the Envoy-faithful client: what each
// tenant may put in `model`, and nothing else; the list agrees with what the policy stage then accepts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/auth/api-keys.js';
import { chatRequestHeaders, type Outcome } from '../../src/dev/envoy-client.js';
import { jsonBody, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

const KEY_ACME = 'tg-acme-0123456789abcdef';
const KEY_INITECH = 'tg-initech-fedcba9876543210';
const KEY_OPEN = 'tg-open-5555555555555555';
const KEYS: Record<string, string> = { acme: KEY_ACME, initech: KEY_INITECH, open: KEY_OPEN };

let tg: TestTiergate;
let tgPublic: TestTiergate;
let tgOff: TestTiergate;
beforeAll(async () => {
  const base = { aliases: { fast: 'weak', smart: 'strong' }, routing: { models: { serve: true } } };
  tg = await startTiergate({
    ...base,
    auth: {
      mode: 'api_key',
      keys: [
        { id: 'acme', sha256: sha256Hex(KEY_ACME), tenant: 'acme' },
        { id: 'initech', sha256: sha256Hex(KEY_INITECH), tenant: 'initech' },
        { id: 'open', sha256: sha256Hex(KEY_OPEN), tenant: 'open' },
      ],
    },
    plans: { basic: { models: ['weak'], onTierDenied: 'refuse' } },
    tenants: { acme: { plan: 'basic' }, initech: { models: ['smart'] } },
  });
  tgPublic = await startTiergate({
    ...base,
    auth: { mode: 'api_key', keys: [{ id: 'acme', sha256: sha256Hex(KEY_ACME), tenant: 'acme' }], publicPaths: ['/v1/models', '/v1/models/*'] },
    tenants: { '*': { models: ['fast'] }, acme: { models: ['smart'] } },
  });
  tgOff = await startTiergate({ aliases: { fast: 'weak' } });
});
afterAll(async () => {
  await Promise.all([tg.stop(), tgPublic.stop(), tgOff.stop()]);
});

const getHeaders = (path: string, key?: string): Array<[string, string]> => [
  [':method', 'GET'],
  [':path', path],
  [':authority', 'gateway.local'],
  [':scheme', 'http'],
  ...(key ? ([['authorization', `Bearer ${key}`]] as Array<[string, string]>) : []),
];

async function get(t: TestTiergate, path: string, key?: string): Promise<Outcome> {
  const s = t.pool.open();
  const o = await s.sendRequestHeaders(getHeaders(path, key), true);
  s.close();
  return o;
}

function jsonOf(o: Outcome): { status: number; contentType: string | undefined; body: Record<string, unknown> } {
  if (o.kind !== 'immediate') throw new Error(`expected tiergate's own answer, got ${JSON.stringify(o)}`);
  return { status: o.status, contentType: o.headers.find(([k]) => k === 'content-type')?.[1], body: JSON.parse(o.body.toString()) as Record<string, unknown> };
}

async function listed(t: TestTiergate, key?: string): Promise<string[]> {
  const { status, body } = jsonOf(await get(t, '/v1/models', key));
  expect(status).toBe(200);
  return (body.data as Array<{ id: string }>).map((m) => m.id);
}

describe('GET /v1/models answered by tiergate', () => {
  it("lists, per tenant, the auto model, the aliases and the tier models its ACL allows, in OpenAI's shape", async () => {
    const { status, contentType, body } = jsonOf(await get(tg, '/v1/models', KEY_OPEN));
    expect([status, contentType, body.object]).toEqual([200, 'application/json', 'list']);
    expect(body.data).toEqual([
      { id: 'auto', object: 'model', created: expect.any(Number), owned_by: 'tiergate' },
      { id: 'fast', object: 'model', created: expect.any(Number), owned_by: 'tiergate' },
      { id: 'smart', object: 'model', created: expect.any(Number), owned_by: 'tiergate' },
      { id: 'weak-model', object: 'model', created: expect.any(Number), owned_by: 'openai-compatible' },
      { id: 'strong-model', object: 'model', created: expect.any(Number), owned_by: 'openai-compatible' },
    ]);
    // acme's plan allows the weak tier; initech only the alias smart (which routes to strong).
    expect(await listed(tg, KEY_ACME)).toEqual(['auto', 'fast', 'weak-model']);
    expect(await listed(tg, KEY_INITECH)).toEqual(['auto', 'smart']);
  });

  it('agrees with the ACL: every listed name is accepted in a chat request, every known name left out is refused', async () => {
    const known = ['auto', 'fast', 'smart', 'weak-model', 'strong-model'];
    for (const tenant of ['acme', 'initech', 'open']) {
      const key = KEYS[tenant] as string;
      const names = await listed(tg, key);
      for (const model of known) {
        const s = tg.pool.open();
        await s.sendRequestHeaders(chatRequestHeaders([['authorization', `Bearer ${key}`]]), false);
        // A short prompt: auto is classified weak, which every tenant here may use or be refused cleanly.
        const o = await s.sendRequestBody(jsonBody({ model, messages: [{ role: 'user', content: 'Say hi' }] }));
        s.close();
        const accepted = o.kind === 'continue';
        if (accepted !== names.includes(model)) expect({ tenant, model, accepted }).toEqual({ tenant, model, accepted: names.includes(model) });
        if (!accepted) expect(jsonOf(o).status).toBe(403);
      }
    }
  });

  it('GET /v1/models/{id}: the listed entry, or a 404 model_not_found for a name the tenant may not use', async () => {
    expect(jsonOf(await get(tg, '/v1/models/fast', KEY_ACME)).body).toMatchObject({ id: 'fast', object: 'model' });
    const missing = jsonOf(await get(tg, '/v1/models/smart', KEY_ACME));
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ error: { message: 'The model `smart` does not exist or you do not have access to it.', type: 'invalid_request_error', param: 'model', code: 'model_not_found' } });
    // An id with a slash, as vLLM names models (the SDKs put it in the path unencoded or encoded).
    expect(jsonOf(await get(tg, '/v1/models/org%2Fnone', KEY_OPEN)).body).toMatchObject({ error: { message: 'The model `org/none` does not exist or you do not have access to it.' } });
  });

  it('still needs a key unless the path is public; there a valid key names its tenant, else the "*" entry is shown', async () => {
    expect(jsonOf(await get(tg, '/v1/models')).status).toBe(401);
    expect(await listed(tgPublic)).toEqual(['auto', 'fast']);
    expect(await listed(tgPublic, 'tg-not-a-key-000000000000')).toEqual(['auto', 'fast']);
    expect(await listed(tgPublic, KEY_ACME)).toEqual(['auto', 'smart']);
  });

  it('other methods, and the default (serve off), pass through to a backend', async () => {
    const s = tg.pool.open();
    const post = await s.sendRequestHeaders([[':method', 'POST'], [':path', '/v1/models'], [':authority', 'x'], [':scheme', 'http'], ['authorization', `Bearer ${KEY_OPEN}`]], false);
    s.close();
    expect(post.kind).toBe('continue');
    expect((await get(tgOff, '/v1/models')).kind).toBe('continue');
  });
});
