// Shadow and canary classifier versions on live streams: routing, the x-llm-classifier header, ledger fields,
// the shadow metric, and a canary percentage changed by a config reload.
import { afterEach, describe, expect, it } from 'vitest';
import { chatRequestHeaders, getHeader, postHeaders } from '../../src/dev/envoy-client.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { LedgerRow } from '../../src/ledger/row.js';
import { jsonBody, metricValue, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

const V8 = { rules: [{ name: 'keyword', tier: 'strong', when: [{ anyKeyword: ['python'] }] }], default: 'weak' };
const running: TestTiergate[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((t) => t.stop()));
});
async function start(classifier: ConfigInput['classifier']) {
  const t = await startTiergate({ classifier });
  running.push(t);
  return t;
}

/** One request through to the end of a 200 response; returns the upstream routing headers. */
async function send(t: TestTiergate, requestId: string, content: string, headers: Array<[string, string]> = []) {
  const s = t.pool.open();
  await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', requestId], ...headers]), false);
  const o = await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content }] }));
  expect(o.kind).toBe('continue');
  await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
  await s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'weak-model', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }), true);
  s.close();
  return { tier: getHeader(s.requestHeaders, 'x-llm-tier'), classifier: getHeader(s.requestHeaders, 'x-llm-classifier') };
}

async function rowsById(t: TestTiergate, n: number): Promise<Map<string, LedgerRow>> {
  let rows: LedgerRow[] = [];
  await expect.poll(async () => (rows = await t.rows()).length).toBe(n);
  return new Map(rows.map((r) => [r.request_id, r]));
}

describe('shadow classifier', () => {
  it('never changes routing; the ledger row carries its tier and reason; the metric counts agreement and each direction', async () => {
    const t = await start({ versions: { v8: V8 }, shadow: 'v8' });
    expect(await send(t, 'py', 'write python to sort a list')).toEqual({ tier: 'weak', classifier: 'v7' });
    expect(await send(t, 'design', 'design a schema')).toEqual({ tier: 'strong', classifier: 'v7' });
    expect(await send(t, 'hi', 'say hi')).toEqual({ tier: 'weak', classifier: 'v7' });
    const rows = await rowsById(t, 3);
    expect(rows.get('py')).toMatchObject({ tier: 'weak', classifier_version: 'v7', classifier_rule: 'default', shadow_tier: 'strong', shadow_reason: 'v8 keyword: keyword "python"' });
    expect(rows.get('design')).toMatchObject({ tier: 'strong', classifier_rule: 'keyword', shadow_tier: 'weak', shadow_reason: 'v8 default: no rule matched' });
    expect(rows.get('hi')).toMatchObject({ tier: 'weak', shadow_tier: 'weak' });
    const m = (labels: Record<string, string>) => metricValue(t.app, 'tiergate_classifier_shadow_decisions_total', { version: 'v7', shadow_version: 'v8', ...labels });
    expect(await m({ agreement: 'agree' })).toBe(1);
    expect(await m({ agreement: 'disagree', tier: 'weak', shadow_tier: 'strong' })).toBe(1);
    expect(await m({ agreement: 'disagree', tier: 'strong', shadow_tier: 'weak' })).toBe(1);
  });

  it('rows carry no shadow fields when none is configured', async () => {
    const t = await start({});
    await send(t, 'a', 'say hi');
    expect((await rowsById(t, 1)).get('a')).toMatchObject({ shadow_tier: null, shadow_reason: null });
  });
});

describe('in-app canary', () => {
  it('a sticky share decides with the candidate, recorded in x-llm-classifier and the ledger; a reload changes the share', async () => {
    const t = await start({ versions: { v8: V8 }, canary: { version: 'v8', percent: 0, stickyBy: 'tenant' } });
    expect(await send(t, 'before', 'write python')).toEqual({ tier: 'weak', classifier: 'v7' });
    const reloaded = await t.app.config.apply('classifier:\n  versions: { v8: { rules: [{ name: keyword, tier: strong, when: [{ anyKeyword: [python] }] }], default: weak } }\n  canary: { version: v8, percent: 100, stickyBy: tenant }\n', {}, t.app.reloadListener);
    expect(reloaded).toBe(true);
    expect(await send(t, 'after', 'write python')).toEqual({ tier: 'strong', classifier: 'v8' });
    const rows = await rowsById(t, 2);
    expect(rows.get('before')).toMatchObject({ classifier_version: 'v7', tier: 'weak' });
    expect(rows.get('after')).toMatchObject({ classifier_version: 'v8', classifier_rule: 'keyword', tier: 'strong' });
    expect(await metricValue(t.app, 'tiergate_classifier_decisions_total', { version: 'v8' })).toBe(1);
  });

  it('per conversation: every turn of a conversation is decided by the same version', async () => {
    const t = await start({ versions: { v8: V8 }, canary: { version: 'v8', percent: 50 } });
    const versions = new Set<string | undefined>();
    for (let i = 0; i < 40; i++) {
      const first = await send(t, `c${i}-1`, `question ${i}`);
      // A later turn resends the system prompt and the first question.
      const s = t.pool.open();
      await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', `c${i}-2`]]), false);
      await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: `question ${i}` }, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'and then?' }] }));
      expect(getHeader(s.requestHeaders, 'x-llm-classifier')).toBe(first.classifier);
      s.close();
      versions.add(first.classifier);
    }
    expect(versions).toEqual(new Set(['v7', 'v8']));
  });
});

describe('rules on what a request carries besides text, and on the last question only', () => {
  // A text-only weak model refuses images (vLLM answers 400 for a model that is not multimodal): route them, and
  // agent requests with many tools, to the strong tier by configuration, without touching v7's text rules.
  const V8_MEDIA = {
    rules: [
      { name: 'media', tier: 'strong', when: [{ anyPart: ['image_url', 'input_image', 'input_audio', 'file', 'input_file'] }] },
      { name: 'agent', tier: 'strong', when: [{ moreThanTools: 3 }] },
      // The question asked now, not an agent's long system prompt (which sends every turn strong under v7).
      { name: 'long_question', tier: 'strong', roles: ['user' as const], scope: 'last' as const, when: [{ moreThanChars: 200 }] },
    ],
    default: 'weak',
  };
  const image = { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } };
  const tool = (name: string) => ({ type: 'function', function: { name, parameters: { type: 'object' } } });

  async function route(t: TestTiergate, id: string, path: string, body: Record<string, unknown>) {
    const s = t.pool.open();
    await s.sendRequestHeaders(postHeaders(path, [['x-request-id', id]]), false);
    const o = await s.sendRequestBody(jsonBody({ model: 'auto', ...body }));
    expect(o.kind).toBe('continue');
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'm', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }), true);
    s.close();
    return getHeader(s.requestHeaders, 'x-llm-tier');
  }

  it('routes an image part (chat and the Responses API), a request declaring many tools and a long last question to strong; the ledger says why', async () => {
    const t = await start({ versions: { v8: V8_MEDIA }, active: 'v8' });
    const chat = '/v1/chat/completions';
    expect(await route(t, 'img', chat, { messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }, image] }] })).toBe('strong');
    expect(await route(t, 'txt', chat, { messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }] }] })).toBe('weak');
    const input = [{ role: 'user', content: [{ type: 'input_text', text: 'describe it' }, { type: 'input_image', image_url: 'data:image/png;base64,AAAA' }] }];
    expect(await route(t, 'resp-img', '/v1/responses', { store: false, input })).toBe('strong');
    expect(await route(t, 'tools4', chat, { messages: [{ role: 'user', content: 'hi' }], tools: ['a', 'b', 'c', 'd'].map(tool) })).toBe('strong');
    // Chat's legacy functions count with its tools: 2 + 2 > 3.
    expect(await route(t, 'legacy', chat, { messages: [{ role: 'user', content: 'hi' }], tools: [tool('a'), tool('b')], functions: [{ name: 'c' }, { name: 'd' }] })).toBe('strong');
    expect(await route(t, 'tools3', chat, { messages: [{ role: 'user', content: 'hi' }], tools: ['a', 'b', 'c'].map(tool) })).toBe('weak');
    const agentPrompt = { role: 'system', content: 'You are a coding agent with these tools. '.repeat(120) };
    const earlier = [{ role: 'user', content: 'explain how the build works, step by step. '.repeat(10) }, { role: 'assistant', content: 'It runs tsc.' }];
    expect(await route(t, 'short-turn', chat, { messages: [agentPrompt, ...earlier, { role: 'user', content: 'fix the typo in README' }] })).toBe('weak');
    expect(await route(t, 'long-turn', chat, { messages: [agentPrompt, { role: 'user', content: 'why is this slow? '.repeat(20) }] })).toBe('strong');
    const rows = await rowsById(t, 8);
    expect(rows.get('short-turn')).toMatchObject({ tier: 'weak', classifier_rule: 'default' });
    expect(rows.get('long-turn')).toMatchObject({ tier: 'strong', classifier_reason: 'long_question: 360 chars > 200' });
    expect(rows.get('img')).toMatchObject({ tier: 'strong', classifier_version: 'v8', classifier_rule: 'media', classifier_reason: 'media: part "image_url"' });
    expect(rows.get('resp-img')).toMatchObject({ tier: 'strong', classifier_rule: 'media', classifier_reason: 'media: part "input_image"' });
    expect(rows.get('tools4')).toMatchObject({ tier: 'strong', classifier_rule: 'agent', classifier_reason: 'agent: 4 tools > 3' });
    expect(rows.get('legacy')).toMatchObject({ classifier_reason: 'agent: 4 tools > 3' });
    expect(rows.get('tools3')).toMatchObject({ tier: 'weak', classifier_rule: 'default' });
  });
});
