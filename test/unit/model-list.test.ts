// The model list tiergate answers (src/pipeline/model-list.ts), in process: which requests it answers, what each
// answer holds, and the names a policy lets through. The integration suite (model-list) checks the same through
// the Envoy-faithful client and against the policy stage.
import { describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import type { ReplyDecision } from '../../src/extproc/types.js';
import { listedModels, modelListReply } from '../../src/pipeline/model-list.js';
import { runtimeFor } from '../helpers/tiergate.js';

const NOW = Date.UTC(2026, 11, 6, 1, 2, 3, 999);
const SERVED: ConfigInput = { aliases: { fast: 'weak' }, routing: { models: { serve: true } } };

function reply(input: ConfigInput, method: string, path: string, tenant = 'default'): ReplyDecision | undefined {
  const rt = runtimeFor(input);
  return modelListReply(rt, method, path, () => rt.tenants.policyFor(tenant), NOW);
}

const bodyOf = (r: ReplyDecision | undefined) => JSON.parse(r?.body.toString() ?? 'null') as Record<string, unknown>;
const idsOf = (r: ReplyDecision | undefined) => (bodyOf(r).data as Array<{ id: string }>).map((m) => m.id);

describe('modelListReply: which requests tiergate answers', () => {
  it('GET on the path and its trailing-slash form: the list, 200 JSON, with details naming it for the access log', () => {
    for (const path of ['/v1/models', '/v1/models/']) {
      const r = reply(SERVED, 'GET', path);
      expect(r).toMatchObject({ kind: 'reply', status: 200, headers: [['content-type', 'application/json']], details: 'tiergate_model_list' });
      expect(idsOf(r)).toEqual(['auto', 'fast', 'weak-model', 'strong-model']);
    }
  });

  it('created is the time in whole seconds, as OpenAI gives it', () => {
    const created = Math.floor(NOW / 1000);
    expect(bodyOf(reply(SERVED, 'GET', '/v1/models')).data).toEqual([
      { id: 'auto', object: 'model', created, owned_by: 'tiergate' },
      { id: 'fast', object: 'model', created, owned_by: 'tiergate' },
      { id: 'weak-model', object: 'model', created, owned_by: 'openai-compatible' },
      { id: 'strong-model', object: 'model', created, owned_by: 'openai-compatible' },
    ]);
    expect(bodyOf(reply(SERVED, 'GET', '/v1/models/fast'))).toEqual({ id: 'fast', object: 'model', created, owned_by: 'tiergate' });
  });

  it('not answered: another method, serving off, or any path that is not the list or under it', () => {
    expect(reply(SERVED, 'POST', '/v1/models')).toBeUndefined();
    expect(reply(SERVED, 'HEAD', '/v1/models')).toBeUndefined();
    expect(reply({ aliases: { fast: 'weak' } }, 'GET', '/v1/models')).toBeUndefined();
    for (const path of ['/v1/chat/completions', '/v1/modelsx', '/v1/model', '/v1', '/', '/v2/models']) expect(reply(SERVED, 'GET', path), path).toBeUndefined();
  });

  it('a configured path instead of /v1/models', () => {
    const custom: ConfigInput = { routing: { models: { serve: true, path: '/openai/models' } } };
    expect(idsOf(reply(custom, 'GET', '/openai/models/'))).toEqual(['auto', 'weak-model', 'strong-model']);
    expect(bodyOf(reply(custom, 'GET', '/openai/models/weak-model'))).toMatchObject({ id: 'weak-model' });
    expect(reply(custom, 'GET', '/v1/models')).toBeUndefined();
  });

  it('one model: the entry, decoded as the client meant it, else 404 naming the id; a malformed escape names the path', () => {
    const rt = runtimeFor({ ...SERVED, tiers: { weak: { model: 'Qwen/Qwen3-8B' }, strong: { model: 'big' } } });
    const one = (path: string) => modelListReply(rt, 'GET', path, () => rt.tenants.policyFor('default'), NOW);
    expect(bodyOf(one('/v1/models/Qwen%2FQwen3-8B'))).toMatchObject({ id: 'Qwen/Qwen3-8B' });
    expect(bodyOf(one('/v1/models/Qwen/Qwen3-8B'))).toMatchObject({ id: 'Qwen/Qwen3-8B' });
    const missing = one('/v1/models/gpt-5');
    expect(missing?.status).toBe(404);
    expect(bodyOf(missing)).toEqual({ error: { message: 'The model `gpt-5` does not exist or you do not have access to it.', type: 'invalid_request_error', param: 'model', code: 'model_not_found' } });
    // %E0%A4%A is a cut UTF-8 escape: no id can be read from it, and nothing is thrown.
    expect(bodyOf(one('/v1/models/%E0%A4%A'))).toMatchObject({ error: { code: 'model_not_found', message: 'The model `/v1/models/%E0%A4%A` does not exist or you do not have access to it.' } });
  });

  it('asks for the policy only when it answers', () => {
    const rt = runtimeFor(SERVED);
    let asked = 0;
    const policyOf = () => {
      asked++;
      return rt.tenants.policyFor('default');
    };
    expect(modelListReply(rt, 'GET', '/v1/chat/completions', policyOf, NOW)).toBeUndefined();
    expect(modelListReply(rt, 'POST', '/v1/models', policyOf, NOW)).toBeUndefined();
    expect(asked).toBe(0);
    modelListReply(rt, 'GET', '/v1/models', policyOf, NOW);
    expect(asked).toBe(1);
  });
});

describe('listedModels: what a tenant may put in `model`', () => {
  const listed = (input: ConfigInput, tenant: string) => {
    const rt = runtimeFor(input);
    return listedModels(rt, rt.tenants.policyFor(tenant), 0).map((m) => `${m.id}:${m.owned_by}`);
  };

  it('auto models only when some tier is allowed; an ACL naming only a model no tier serves lists nothing', () => {
    const input: ConfigInput = { ...SERVED, tenants: { acme: { models: ['fast'] }, none: { models: ['gpt-5'] } } };
    expect(listed(input, 'acme')).toEqual(['auto:tiergate', 'fast:tiergate']);
    expect(listed(input, 'none')).toEqual([]);
  });

  it('a model id two tiers share, or an alias already named, is listed once, first as it came', () => {
    const input: ConfigInput = {
      routing: { models: { serve: true } },
      tiers: { weak: { model: 'qwen', provider: 'vllm' }, strong: { model: 'gpt-4.1', provider: 'openai' }, canary: { model: 'qwen', provider: 'vllm' } },
      aliases: { 'gpt-4.1': 'strong' },
    };
    expect(listed(input, 'default')).toEqual(['auto:tiergate', 'gpt-4.1:tiergate', 'qwen:vllm']);
  });
});
