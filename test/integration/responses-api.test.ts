// OpenAI's Responses API (/v1/responses) through the Envoy-faithful client: validated, routed (classified only
// when the turn keeps no state on the backend), limited by tokens, never cached, and accounted from the usage in
// its JSON body or its stream's final event.
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sealedItemId } from '../../src/affinity/response-affinity.js';
import { sha256Hex } from '../../src/auth/api-keys.js';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { RECOMMENDED_FILTER, getHeader, postHeaders, type ExtProcSession, type FilterConfig, type Outcome } from '../../src/dev/envoy-client.js';
import { redisAndClusterForFile } from '../helpers/redis-server.js';
import { budgetView, jsonBody, metricValue, minuteAlignedClock, rowFor, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

const PATH = '/v1/responses';
// Envoy's FULL_DUPLEX_STREAMED bodies (it requires trailer mode SEND with them, and ignores mode overrides).
const DUPLEX: FilterConfig = {
  ...RECOMMENDED_FILTER,
  processingMode: { ...RECOMMENDED_FILTER.processingMode, requestBodyMode: 'FULL_DUPLEX_STREAMED', responseBodyMode: 'FULL_DUPLEX_STREAMED', requestTrailerMode: 'SEND', responseTrailerMode: 'SEND' },
  allowModeOverride: true,
};
const LONG_TASK = 'Please refactor this module so that it is easier to test.';

async function turn(t: TestTiergate, body: Record<string, unknown>, id = 'r', headers: Array<[string, string]> = [], path = PATH): Promise<{ s: ExtProcSession; o: Outcome }> {
  const s = t.pool.open();
  await s.sendRequestHeaders(postHeaders(path, [...headers, ['x-request-id', id]]), false);
  return { s, o: await s.sendRequestBody(jsonBody({ model: 'auto', ...body })) };
}

function sent(s: ExtProcSession, o: Outcome): { body: Record<string, unknown>; tier: string | undefined; classifier: string | undefined } {
  if (o.kind !== 'continue' || !o.body) throw new Error(`expected a rewritten body, got ${o.kind}`);
  return { body: JSON.parse(o.body.toString()) as Record<string, unknown>, tier: getHeader(s.requestHeaders, 'x-llm-tier'), classifier: getHeader(s.requestHeaders, 'x-llm-classifier') };
}

function refusal(o: Outcome): { status: number; error: { code: string; param: string | null; message: string } } {
  if (o.kind !== 'immediate') throw new Error(`expected a local reply, got ${o.kind}`);
  return { status: o.status, error: (JSON.parse(o.body.toString()) as { error: { code: string; param: string | null; message: string } }).error };
}


const event = (o: Record<string, unknown>) => `event: ${String(o.type)}\ndata: ${JSON.stringify(o)}\n\n`;
const USAGE = { input_tokens: 1000, input_tokens_details: { cached_tokens: 200 }, output_tokens: 500, output_tokens_details: { reasoning_tokens: 120 }, total_tokens: 1500 };
const response = (extra: Record<string, unknown>) => ({ id: 'resp_1', object: 'response', status: 'completed', model: 'weak-model', error: null, output: [], usage: null, ...extra });
/** The backend's JSON answer to a turn: the response `id` with USAGE, and `extra` fields. */
async function answer(s: ExtProcSession, id: string, extra: Record<string, unknown> = {}): Promise<void> {
  await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
  await s.sendResponseBody(jsonBody(response({ id, usage: USAGE, ...extra })), true);
  s.close();
}
// A turn as Codex and the Agents SDK send it (nothing stored), and the items of its input.
const STATELESS = { store: false, include: ['reasoning.encrypted_content'] };
const reasoning = (sealed: string) => ({ type: 'reasoning', id: `rs_${sealed.slice(-6)}`, summary: [], encrypted_content: sealed });
const said = (text: string) => ({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] });
const user = (text: string) => ({ role: 'user', content: text });
const SEAL_WEAK = 'gAAAAABweak' + 'w'.repeat(400);
const SEAL_STRONG = 'gAAAAABstrong' + 's'.repeat(400);

let tg: TestTiergate;
beforeAll(async () => {
  tg = await startTiergate({ tenants: { '*': { cache: { mode: 'exact' }, backgroundResponses: true } } });
});
afterAll(async () => tg.stop());

describe('routing a Responses API turn', () => {
  it('a turn that keeps no state (store: false) is classified like chat, and its stream gets no stream_options', async () => {
    const { s, o } = await turn(tg, { store: false, stream: true, input: [{ role: 'user', content: [{ type: 'input_text', text: LONG_TASK }] }] });
    const r = sent(s, o);
    expect(r.tier).toBe('strong'); // v7's keyword rule, on the input's text parts
    expect(r.classifier).toBe('v7');
    expect(r.body.model).toBe('strong-model');
    expect(r.body).not.toHaveProperty('stream_options'); // the Responses API reports usage in its last event anyway
    expect(r.body.input).toEqual([{ role: 'user', content: [{ type: 'input_text', text: LONG_TASK }] }]);
    s.close();
  });

  it('instructions and a string input are read as a system and a user message', async () => {
    const { s, o } = await turn(tg, { store: false, instructions: 'You review architecture.', input: 'Short question' });
    expect(sent(s, o).tier).toBe('strong'); // "architect" is in the instructions only
    s.close();
  });

  it('a stored turn, a continuation and a conversation go to the stateful tier unclassified, whatever they say', async () => {
    for (const extra of [{}, { store: true }, { store: false, previous_response_id: 'resp_0' }, { store: false, conversation: 'conv_1' }, { store: false, background: true }]) {
      const { s, o } = await turn(tg, { input: LONG_TASK, ...extra });
      const r = sent(s, o);
      expect(r.tier, JSON.stringify(extra)).toBe('weak'); // the first tier listed
      expect(r.classifier).toBe('stateful');
      expect(r.body.model).toBe('weak-model');
      s.close();
    }
  });

  it('background turns are refused (403 background_not_allowed) unless the tenant may send them: their usage is never seen', async () => {
    // The default policy. (A tenant allowed them is routed like any stored turn: the test above, whose tenants may.)
    const t = await startTiergate();
    try {
      for (const stream of [false, true]) {
        const { s, o } = await turn(t, { input: 'hi', background: true, stream }, `bg-${stream}`);
        const r = refusal(o);
        expect([r.status, r.error.code, r.error.param]).toEqual([403, 'background_not_allowed', 'background']);
        expect(r.error.message).toContain('without background');
        s.close();
        expect(await rowFor(t, `bg-${stream}`)).toMatchObject({ status: 'rejected', http_status: 403, error_code: 'background_not_allowed', usage: { total_tokens: 0 } });
      }
      // Not in the background: as before. A chat request's `background` field means nothing to tiergate.
      for (const extra of [{}, { background: false }, { background: null }]) {
        const { s, o } = await turn(t, { input: 'hi', ...extra });
        expect(o.kind, JSON.stringify(extra)).toBe('continue');
        s.close();
      }
      const chat = t.pool.open();
      await chat.sendRequestHeaders(postHeaders('/v1/chat/completions'), false);
      expect((await chat.sendRequestBody(jsonBody({ model: 'auto', background: true, messages: [{ role: 'user', content: 'hi' }] }))).kind).toBe('continue');
      chat.close();
    } finally {
      await t.stop();
    }
  });

  it('routing.statefulTier picks the tier; a model named by the client routes straight to its tier', async () => {
    const t = await startTiergate({ routing: { statefulTier: 'strong' }, aliases: { small: 'weak' } });
    try {
      const stored = await turn(t, { input: 'hi' });
      expect(sent(stored.s, stored.o)).toMatchObject({ tier: 'strong', classifier: 'stateful' });
      stored.s.close();
      const named = await turn(t, { model: 'small', input: 'hi', previous_response_id: 'resp_0' });
      expect(sent(named.s, named.o)).toMatchObject({ tier: 'weak', classifier: 'alias', body: { model: 'weak-model', previous_response_id: 'resp_0' } });
      named.s.close();
    } finally {
      await t.stop();
    }
  });

  it('a request about a stored response or a conversation goes to the stateful tier, with its credential', async () => {
    const tiers = { weak: { model: 'weak-model' }, strong: { model: 'strong-model', credentialsEnv: 'STRONG_KEY' } };
    const t = await startTiergate({ tiers, routing: { statefulTier: 'strong' } }, { STRONG_KEY: 'sk-upstream' });
    try {
      const paths = [
        ['GET', '/v1/responses/resp_1'],
        ['DELETE', '/v1/responses/resp_1'],
        ['GET', '/v1/responses/resp_1/input_items'],
        // Conversations live where conversation turns go.
        ['POST', '/v1/conversations'],
        ['GET', '/v1/conversations/conv_1/items'],
      ];
      for (const [method, path] of paths) {
        const s = t.pool.open();
        const headers: Array<[string, string]> = [[':method', method as string], [':path', path as string], [':authority', 'gw'], ['x-llm-tier', 'weak'], ['authorization', 'Bearer sk-client']];
        expect((await s.sendRequestHeaders(headers, true)).kind).toBe('continue');
        expect(getHeader(s.requestHeaders, 'x-llm-tier'), path).toBe('strong'); // the client's own value is gone
        expect(getHeader(s.requestHeaders, 'authorization')).toBe('Bearer sk-upstream');
        s.close();
      }
      // Only what lies under those paths: a look-alike passes untouched, with no tier.
      for (const path of ['/v1/responsesX/1', '/v1/conversationsX']) {
        const s = t.pool.open();
        await s.sendRequestHeaders([[':method', 'GET'], [':path', path], [':authority', 'gw']], true);
        expect(getHeader(s.requestHeaders, 'x-llm-tier'), path).toBeUndefined();
        s.close();
      }
    } finally {
      await t.stop();
    }
  });

  it('an unknown statefulTier is a config error', async () => {
    const r = configSchema.safeParse({ routing: { statefulTier: 'medium' } });
    expect(r.success).toBe(false);
    expect(r.error?.issues).toEqual([expect.objectContaining({ path: ['routing', 'statefulTier'], message: 'unknown tier "medium" (tiers: weak, strong)' })]);
  });

  it('bad input is a 400 naming the field', async () => {
    for (const [body, param] of [
      [{ input: 5 }, 'input'],
      [{ input: [{ role: 'user', content: 'x' }, 'not an item'] }, 'input'],
      [{ input: 'x', max_output_tokens: -1 }, 'max_output_tokens'],
      [{ input: 'x', stream: 'yes' }, 'stream'],
      [{ input: 'x', store: 'no' }, 'store'],
    ] as const) {
      const { s, o } = await turn(tg, body);
      const r = refusal(o);
      expect(r.status).toBe(400);
      expect(r.error.param).toBe(param);
      s.close();
    }
  });

  it('is never answered from the cache: the backend keeps state a replay could not recreate', async () => {
    for (let i = 0; i < 2; i++) {
      const { s, o } = await turn(tg, { store: false, input: 'Say hi' }, `cache-${i}`);
      expect(o.kind).toBe('continue');
      await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      expect(getHeader(s.responseHeaders, 'x-cache')).toBe('bypass');
      await s.sendResponseBody(jsonBody(response({ usage: USAGE, output: [{ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'hi' }] }] })), true);
      s.close();
    }
    expect((await rowFor(tg, 'cache-1')).cache_hit).toBe(false);
  });
});

describe('accounting a Responses API turn', () => {
  it('a stream: usage, model and end from its response.completed event, no [DONE] needed', async () => {
    const { s } = await turn(tg, { stream: true, input: 'Say hi' }, 'stream-ok');
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    await s.sendResponseBody(Buffer.from(event({ type: 'response.created', response: response({ status: 'in_progress' }) })), false);
    await s.sendResponseBody(Buffer.from(event({ type: 'response.output_text.delta', delta: 'Hel' }) + event({ type: 'response.output_text.delta', delta: 'lo' })), false);
    await s.sendResponseBody(Buffer.from(event({ type: 'response.completed', response: response({ usage: USAGE }) })), true);
    s.close();
    const row = await rowFor(tg, 'stream-ok');
    expect(row).toMatchObject({
      path: PATH,
      stream: true,
      status: 'success',
      tier: 'weak',
      model_resolved: 'weak-model',
      classifier_version: 'stateful',
      usage: { input_tokens: 1000, output_tokens: 500, total_tokens: 1500, cached_input_tokens: 200, reasoning_tokens: 120 },
      usage_source: 'reported',
      error_code: null,
    });
    expect(row.cost_usd?.total).toBeGreaterThan(0);
  });

  it('a failed stream records the error code of its response.failed event; an error event its code', async () => {
    const failed = await turn(tg, { stream: true, input: 'Say hi' }, 'stream-failed');
    await failed.s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    await failed.s.sendResponseBody(Buffer.from(event({ type: 'response.failed', response: response({ status: 'failed', error: { code: 'server_error', message: 'boom' }, usage: USAGE }) })), true);
    failed.s.close();
    expect(await rowFor(tg, 'stream-failed')).toMatchObject({ status: 'upstream_error', error_code: 'server_error', usage_source: 'reported' });

    const errored = await turn(tg, { stream: true, input: 'Say hi' }, 'stream-error');
    await errored.s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    await errored.s.sendResponseBody(Buffer.from(event({ type: 'error', code: 'rate_limit_exceeded', message: 'slow down', param: null })), true);
    errored.s.close();
    expect(await rowFor(tg, 'stream-error')).toMatchObject({ status: 'upstream_error', error_code: 'rate_limit_exceeded' });
  });

  it("hosted tool calls (web searches…) are in the row and priced at prices.toolCalls, apart from tokens", async () => {
    const t = await startTiergate({ prices: { version: 'tools-1', models: { 'weak-model': { input: 1, output: 2 } }, toolCalls: { web_search_call: 0.01 } } });
    try {
      const { s } = await turn(t, { input: 'What is the weather in Seoul?', tools: [{ type: 'web_search' }] }, 'searched');
      await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      const output = [
        { type: 'web_search_call', id: 'ws_1', status: 'completed' },
        { type: 'web_search_call', id: 'ws_2', status: 'completed' },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Sunny.' }] },
      ];
      await s.sendResponseBody(jsonBody(response({ output, usage: { input_tokens: 1000, output_tokens: 500, total_tokens: 1500 } })), true);
      // What Envoy's access log gets says the same as the row.
      expect(s.dynamicMetadata.tiergate).toMatchObject({ cost_usd: 0.022 });
      s.close();
      const row = await rowFor(t, 'searched');
      expect(row.tool_calls).toEqual({ web_search_call: 2 });
      expect(row.cost_usd).toEqual({ input: 0.001, output: 0.001, tool_calls: 0.02, total: 0.022, price_table_version: 'tools-1' });
    } finally {
      await t.stop();
    }
  });

  it('a JSON response without usage is estimated from its output items', async () => {
    const { s } = await turn(tg, { input: 'Say hi' }, 'json-estimated');
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    const output = [
      { type: 'reasoning', summary: [{ type: 'summary_text', text: 'The user greets me. '.repeat(10) }] },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Hello there, how can I help you today? '.repeat(10) }] },
      { type: 'function_call', name: 'lookup', call_id: 'c1', arguments: '{"query":"weather in Seoul"}' },
    ];
    await s.sendResponseBody(jsonBody(response({ output })), true);
    s.close();
    const row = await rowFor(tg, 'json-estimated');
    expect(row.usage_source).toBe('estimated');
    // ~90 output tokens of text: not zero, and not the whole body's JSON either
    expect(row.usage.output_tokens).toBeGreaterThan(60);
    expect(row.usage.output_tokens).toBeLessThan(200);
    expect(row.usage.input_tokens).toBeGreaterThan(0);
  });
});

describe('compaction (POST /v1/responses/compact): generated and billed like a turn, so read and accounted like one', () => {
  // It takes a turn's fields and answers {"object":"response.compaction","output":[…],"usage":{…}}. Passed through
  // unread, it reached the backend with tiergate's credential and the client's own model, past the plan's models,
  // every limit and the ledger.
  const COMPACT = `${PATH}/compact`;
  async function compact(t: TestTiergate, body: Record<string, unknown>, id: string, headers: Array<[string, string]> = []): Promise<{ s: ExtProcSession; o: Outcome }> {
    const s = t.pool.open();
    await s.sendRequestHeaders(postHeaders(COMPACT, [['x-request-id', id], ...headers]), false);
    return { s, o: await s.sendRequestBody(jsonBody(body)) };
  }

  it('is routed with the tier model, and its row carries the compaction\'s usage', async () => {
    const { s, o } = await compact(tg, { model: 'auto', input: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] }, 'compact-1');
    expect(sent(s, o)).toMatchObject({ tier: 'weak', classifier: 'stateful', body: { model: 'weak-model' } });
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await s.sendResponseBody(jsonBody({ id: 'cmp_1', object: 'response.compaction', created_at: 1764800000, output: [{ type: 'compaction', encrypted_content: 'abc' }], usage: { input_tokens: 800, output_tokens: 120, total_tokens: 920 } }), true);
    s.close();
    const row = await rowFor(tg, 'compact-1');
    expect(row).toMatchObject({ path: COMPACT, status: 'success', tier: 'weak', usage: { input_tokens: 800, output_tokens: 120 }, usage_source: 'reported' });
    expect(row.cost_usd?.total).toBeGreaterThan(0);
  });

  it("the plan's models and isolation hold: a model the plan leaves out, another tenant's response", async () => {
    const key = 'tg-compact-key';
    const t = await startTiergate({
      auth: { mode: 'api_key', keys: [{ id: 'g', sha256: sha256Hex(key), tenant: 'globex' }] },
      routing: { affinity: { store: 'memory' } },
      tenants: { globex: { models: ['weak-model'] } },
    });
    try {
      const auth: Array<[string, string]> = [['authorization', `Bearer ${key}`]];
      const strong = await compact(t, { model: 'strong-model', input: 'x' }, 'compact-acl', auth);
      expect(refusal(strong.o)).toMatchObject({ status: 403, error: { code: 'model_not_allowed' } });
      strong.s.close();
      t.app.affinity.remember('acme', 'resp_acme_c', 'strong', t.app.config.current().config.routing.affinity);
      const theirs = await compact(t, { model: 'auto', previous_response_id: 'resp_acme_c' }, 'compact-iso', auth);
      expect(refusal(theirs.o)).toMatchObject({ status: 400, error: { code: 'previous_response_not_found' } });
      theirs.s.close();
      expect(await rowFor(t, 'compact-iso')).toMatchObject({ path: COMPACT, tenant_id: 'globex', error_code: 'previous_response_not_found' });
    } finally {
      await t.stop();
    }
  });
});

describe('limits on a Responses API turn', () => {
  const limited: ConfigInput = { tenants: { '*': { dailyTokenBudget: 3000 } }, budgets: { completionEstimate: 100 } };

  it('reserves its prompt and max_output_tokens, then counts what it used: the daily budget cannot be bypassed', async () => {
    const t = await startTiergate(limited, {}, { now: minuteAlignedClock() });
    try {
      const big = await turn(t, { input: 'Say hi', max_output_tokens: 5000 });
      expect(refusal(big.o)).toMatchObject({ status: 429, error: { code: 'daily_token_budget' } });
      big.s.close();

      const used = await turn(t, { input: 'Say hi', max_output_tokens: 500 }, 'spent');
      expect(used.o.kind).toBe('continue');
      await used.s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      await used.s.sendResponseBody(jsonBody(response({ usage: { input_tokens: 1000, output_tokens: 1800, total_tokens: 2800 } })), true);
      used.s.close();
      await rowFor(t, 'spent'); // settled: the 2,800 tokens are counted

      const next = await turn(t, { input: 'Say hi', max_output_tokens: 500 });
      expect(refusal(next.o)).toMatchObject({ status: 429, error: { code: 'daily_token_budget' } });
      next.s.close();
    } finally {
      await t.stop();
    }
  });

  it('the model ACL holds: a tenant without the stateful tier is downgraded, or refused when its policy says so', async () => {
    const t = await startTiergate({
      routing: { statefulTier: 'strong' },
      tenants: { '*': { models: ['weak'] }, default: { onTierDenied: 'downgrade' } },
    });
    const strict = await startTiergate({ routing: { statefulTier: 'strong' }, tenants: { '*': { models: ['weak'], onTierDenied: 'refuse' } } });
    try {
      const down = await turn(t, { input: 'hi' });
      expect(sent(down.s, down.o)).toMatchObject({ tier: 'weak', classifier: 'stateful' });
      down.s.close();
      const named = await turn(t, { model: 'strong-model', input: 'hi' });
      expect(refusal(named.o)).toMatchObject({ status: 403, error: { code: 'model_not_allowed' } });
      named.s.close();
      const refused = await turn(strict, { input: 'hi' });
      expect(refusal(refused.o)).toMatchObject({ status: 403, error: { code: 'model_not_allowed' } });
      refused.s.close();
    } finally {
      await t.stop();
      await strict.stop();
    }
  });
});

describe('response affinity: a conversation stays on the tier its first turn got', () => {
  const servers = redisAndClusterForFile();
  const stores: Record<string, () => ConfigInput['routing']> = {
    memory: () => ({ affinity: { store: 'memory' } }),
    redis: () => ({ affinity: { store: 'redis', redis: { url: servers.redis.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000 } } }),
  };

  it.each(Object.keys(stores))('%s store: stored turns are classified, continuations follow them, requests about them too', async (name) => {
    const t = await startTiergate({ routing: (stores[name] as () => ConfigInput['routing'])() });
    if (name === 'redis') await expect.poll(() => t.app.affinity.store?.kind === 'redis' && (t.app.affinity.store as unknown as { redis: { status: string } }).redis.status).toBe('ready');
    try {
      // A new stored turn is classified now: tiergate will know where it went.
      const first = await turn(t, { input: LONG_TASK });
      expect(sent(first.s, first.o)).toMatchObject({ tier: 'strong', classifier: 'v7' });
      await answer(first.s, `resp_${name}_1`); // its tier is stored before this answer is (no race with the next turn)
      // No token limits here: what its conversation came to is not written, as nothing would read it.
      expect(await t.app.affinity.contextOf('default', 'response', `resp_${name}_1`, t.app.config.current().config.routing.affinity)).toBeUndefined();
      // Its continuation, with nothing that would classify strong, goes where the conversation is.
      const next = await turn(t, { input: 'ok', previous_response_id: `resp_${name}_1` });
      expect(sent(next.s, next.o)).toMatchObject({ tier: 'strong', classifier: 'affinity', body: { model: 'strong-model' } });
      await answer(next.s, `resp_${name}_2`);
      const third = await turn(t, { input: 'thanks', previous_response_id: `resp_${name}_2` });
      expect(sent(third.s, third.o).tier).toBe('strong');
      third.s.close();
      // An id tiergate never saw (expired, another gateway's): the stateful tier.
      const unknown = await turn(t, { input: 'ok', previous_response_id: 'resp_unknown' });
      expect(sent(unknown.s, unknown.o)).toMatchObject({ tier: 'weak', classifier: 'stateful' });
      unknown.s.close();
      // A request about a stored response reaches its tier.
      const get = t.pool.open();
      await get.sendRequestHeaders([[':method', 'GET'], [':path', `/v1/responses/resp_${name}_1`], [':authority', 'gw']], true);
      expect(getHeader(get.requestHeaders, 'x-llm-tier')).toBe('strong');
      get.close();
      // And one about what lies under it (its input items, its cancelling): the id is the path's segment after
      // /v1/responses/, not all that follows it.
      for (const [method, path] of [['GET', `/v1/responses/resp_${name}_1/input_items`], ['POST', `/v1/responses/resp_${name}_1/cancel`]] as const) {
        const sub = t.pool.open();
        await sub.sendRequestHeaders([[':method', method], [':path', path], [':authority', 'gw']], true);
        expect(getHeader(sub.requestHeaders, 'x-llm-tier'), path).toBe('strong');
        sub.close();
      }
    } finally {
      await t.stop();
    }
  });

  it('a streamed turn is remembered from its response.created event; a named model is remembered too', async () => {
    const t = await startTiergate({ routing: { affinity: { store: 'memory' } } });
    try {
      const first = await turn(t, { model: 'strong-model', stream: true, input: 'hi' });
      expect(sent(first.s, first.o).tier).toBe('strong');
      await first.s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
      await first.s.sendResponseBody(Buffer.from(event({ type: 'response.created', response: response({ id: 'resp_streamed', status: 'in_progress' }) })), false);
      // The conversation can continue while the first answer is still streaming.
      const next = await turn(t, { input: 'more', previous_response_id: 'resp_streamed' });
      expect(sent(next.s, next.o)).toMatchObject({ tier: 'strong', classifier: 'affinity' });
      next.s.close();
      await first.s.sendResponseBody(Buffer.from(event({ type: 'response.completed', response: response({ id: 'resp_streamed', usage: USAGE }) })), true);
      first.s.close();
    } finally {
      await t.stop();
    }
  });

  it.each(Object.keys(stores))('%s store: a continuation reserves the conversation it continues, which the backend bills as its input', async (name) => {
    const base = (stores[name] as () => ConfigInput['routing'])();
    const routing = { ...base, affinity: { ...base?.affinity, deadlineMs: 2000 } };
    const t = await startTiergate({ routing, tenants: { '*': { dailyTokenBudget: 1_000_000 } } }, {}, { now: minuteAlignedClock() });
    if (name === 'redis') await expect.poll(() => t.app.affinity.store?.kind === 'redis' && (t.app.affinity.store as unknown as { redis: { status: string } }).redis.status).toBe('ready');
    const counted = budgetView(t, 'daily_token_budget');
    // Every write lands 20 ms late: an answer that did not wait for it would reach the client first.
    const store = t.app.affinity.store as NonNullable<typeof t.app.affinity.store>;
    const set = store.set.bind(store);
    store.set = (...args) => new Promise((done) => setTimeout(done, 20)).then(() => set(...args));
    const recorded = async (id: string) => t.app.affinity.contextOf('default', 'response', id, t.app.config.current().config.routing.affinity);
    try {
      // A JSON answer: its id and its usage come together, in one write.
      const first = await turn(t, { input: 'Say hi' }, 'json');
      await answer(first.s, `resp_${name}_j`, { usage: { input_tokens: 3000, output_tokens: 1000, total_tokens: 1 } });
      // A stream: the id comes with response.created, the usage with response.completed, recorded then.
      const streamed = await turn(t, { stream: true, input: 'Say hi' }, 'stream');
      await streamed.s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
      await streamed.s.sendResponseBody(Buffer.from(event({ type: 'response.created', response: response({ id: `resp_${name}_s`, status: 'in_progress' }) })), false);
      expect(await recorded(`resp_${name}_s`)).toBeUndefined(); // its tier only, so far
      expect(await t.app.affinity.holder('default', `resp_${name}_s`, t.app.config.current().config.routing.affinity)).toEqual({ kind: 'own', tier: 'weak' });
      await streamed.s.sendResponseBody(Buffer.from(event({ type: 'response.completed', response: response({ id: `resp_${name}_s`, usage: { input_tokens: 6000, output_tokens: 2000 } }) })), true);
      // The last piece reached the client once the count was stored: a turn sent on it at once is reserved for it.
      expect(await recorded(`resp_${name}_s`)).toBe(8000);
      streamed.s.close();
      // An answer that ends with trailers (an HTTP/2 backend's), Envoy sending them: recorded at the trailers.
      const trailed = t.pool.open({ ...RECOMMENDED_FILTER, processingMode: { ...RECOMMENDED_FILTER.processingMode, responseTrailerMode: 'SEND' } });
      await trailed.sendRequestHeaders(postHeaders(PATH, [['x-request-id', 'trailed']]), false);
      await trailed.sendRequestBody(jsonBody({ model: 'auto', input: 'Say hi' }));
      await trailed.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      await trailed.sendResponseBody(jsonBody(response({ id: `resp_${name}_t`, usage: { input_tokens: 500, output_tokens: 20 } })), false);
      await trailed.sendResponseTrailers([['x-backend-done', '1']]);
      expect(await recorded(`resp_${name}_t`)).toBe(520);
      trailed.close();
      for (const id of ['json', 'stream', 'trailed']) await rowFor(t, id); // every answer settled
      // Each continuation's reservation, read while it is open (nothing else settles meanwhile).
      const reserve = async (id: string, continues: Record<string, unknown> = { previous_response_id: id }) => {
        const before = (await counted()) as number;
        const c = await turn(t, { input: 'ok', ...continues, max_output_tokens: 100 });
        expect(c.o.kind, id).toBe('continue');
        return ((await counted()) as number) - before;
      };
      const unknown = await reserve(`resp_${name}_u`); // no history tiergate knows of: the turn's own prompt and output
      expect(unknown).toBeGreaterThan(100);
      expect(unknown).toBeLessThan(150);
      // Input and output as reported: the total (1 here) is not what the next turn reads.
      expect(await reserve(`resp_${name}_j`)).toBe(unknown + 4000);
      expect(await reserve(`resp_${name}_s`)).toBe(unknown + 8000);
      // A chat request carrying the field by mistake continues nothing: the backend reads only its messages.
      const chat = async (extra: Record<string, unknown>) => {
        const before = (await counted()) as number;
        const c = await turn(t, { messages: [{ role: 'user', content: 'ok' }], max_tokens: 100, ...extra }, 'chat', [], '/v1/chat/completions');
        expect(c.o.kind).toBe('continue');
        return ((await counted()) as number) - before;
      };
      expect(await chat({ previous_response_id: `resp_${name}_s` })).toBe(await chat({}));
      // A conversation's turn reserves what its turn before came to, under the conversation (either shape of
      // the field); its own response is not tracked (README "Responses API").
      const conv = `conv_${name}`;
      expect(await reserve(conv, { conversation: conv })).toBe(unknown);
      const inConv = await turn(t, { input: 'Say hi', conversation: conv }, 'conv');
      await answer(inConv.s, `resp_${name}_c`, { usage: { input_tokens: 5000, output_tokens: 500 } });
      await rowFor(t, 'conv');
      expect(await reserve(conv, { conversation: { id: conv } })).toBe(unknown + 5500);
      expect(await reserve(conv, { conversation: conv })).toBe(unknown + 5500);
      expect(await recorded(`resp_${name}_c`)).toBeUndefined();
    } finally {
      await t.stop();
    }
  });

  it('the ACL applies to the remembered tier as to the classifier\'s: a downgraded first turn keeps its conversation on the allowed tier', async () => {
    const t = await startTiergate({ routing: { affinity: { store: 'memory' } }, tenants: { '*': { models: ['weak-model'] } } });
    try {
      const first = await turn(t, { input: LONG_TASK });
      expect(sent(first.s, first.o).tier).toBe('weak'); // strong by the rules, downgraded by the plan
      await answer(first.s, 'resp_acl');
      const next = await turn(t, { input: LONG_TASK, previous_response_id: 'resp_acl' });
      expect(sent(next.s, next.o)).toMatchObject({ tier: 'weak', classifier: 'affinity' });
      next.s.close();
    } finally {
      await t.stop();
    }
  });

  it('a conversation turn is not tracked; affinity off (the default) keeps every stateful turn on the stateful tier', async () => {
    const on = await startTiergate({ routing: { affinity: { store: 'memory' } } });
    try {
      const conv = await turn(on, { input: LONG_TASK, conversation: 'conv_1' });
      expect(sent(conv.s, conv.o)).toMatchObject({ tier: 'weak', classifier: 'stateful' });
      conv.s.close();
    } finally {
      await on.stop();
    }
    const first = await turn(tg, { input: LONG_TASK });
    expect(sent(first.s, first.o)).toMatchObject({ tier: 'weak', classifier: 'stateful' });
    first.s.close();
  });

  it('a reload can turn affinity off: continuations then go to the stateful tier', async () => {
    const t = await startTiergate({ routing: { affinity: { store: 'memory' } } });
    try {
      const first = await turn(t, { input: LONG_TASK });
      await answer(first.s, 'resp_before_reload');
      expect(await t.app.config.apply('routing: { affinity: { store: off } }\n', {}, t.app.reloadListener)).toBe(true);
      const next = await turn(t, { input: 'ok', previous_response_id: 'resp_before_reload' });
      expect(sent(next.s, next.o)).toMatchObject({ tier: 'weak', classifier: 'stateful' });
      next.s.close();
    } finally {
      await t.stop();
    }
  });

  it('a remembered tier that a reload removed: its continuations go to the stateful tier', async () => {
    const t = await startTiergate({ tiers: { weak: { model: 'weak-model' }, strong: { model: 'strong-model' }, large: { model: 'large-model' } }, routing: { affinity: { store: 'memory' } } });
    try {
      const first = await turn(t, { model: 'large-model', input: 'hi' });
      expect(sent(first.s, first.o).tier).toBe('large');
      await answer(first.s, 'resp_on_large');
      expect(await t.app.config.apply('routing: { affinity: { store: memory } }\n', {}, t.app.reloadListener)).toBe(true); // tiers: weak, strong
      const next = await turn(t, { input: LONG_TASK, previous_response_id: 'resp_on_large' });
      expect(sent(next.s, next.o)).toMatchObject({ tier: 'weak', classifier: 'stateful', body: { model: 'weak-model' } });
      next.s.close();
    } finally {
      await t.stop();
    }
  });

  it('with the store down, turns are still answered: continuations go to the stateful tier, new turns unremembered', async () => {
    const dead = { url: 'redis://127.0.0.1:1', connectTimeoutMs: 50, commandTimeoutMs: 50 };
    const t = await startTiergate({ routing: { affinity: { store: 'redis', redis: dead } } });
    try {
      const first = await turn(t, { input: LONG_TASK });
      expect(sent(first.s, first.o).tier).toBe('strong');
      await answer(first.s, 'resp_lost');
      const next = await turn(t, { input: 'ok', previous_response_id: 'resp_lost' });
      expect(sent(next.s, next.o)).toMatchObject({ tier: 'weak', classifier: 'stateful' });
      next.s.close();
      // The lookup, and the two writes (the tier, and who stored it).
      expect(await metricValue(t.app, 'tiergate_response_affinity_total', { result: 'failed' })).toBe(3);
    } finally {
      await t.stop();
    }
  });
});

describe("response isolation: a tenant cannot use another tenant's stored response", () => {
  // The backends hold every tenant's stored responses under tiergate's one upstream credential, so the backend
  // would serve any id to anyone; tiergate records who stored each and refuses the others.
  const servers = redisAndClusterForFile();
  const KEYS = { acme: 'tg-acme-isolation-key', globex: 'tg-globex-isolation-key' };
  const auth = { mode: 'api_key', keys: Object.entries(KEYS).map(([tenant, k]) => ({ id: tenant, sha256: sha256Hex(k), tenant })) } as const;
  const stores: Record<string, () => ConfigInput['routing']> = {
    memory: () => ({ affinity: { store: 'memory' } }),
    redis: () => ({ affinity: { store: 'redis', redis: { url: servers.redis.url, keyPrefix: `iso:${Date.now()}:`, connectTimeoutMs: 1000, commandTimeoutMs: 1000 } } }),
  };
  const bearer = (tenant: keyof typeof KEYS): [string, string] => ['authorization', `Bearer ${KEYS[tenant]}`];

  async function turnAs(t: TestTiergate, tenant: keyof typeof KEYS, body: Record<string, unknown>, id: string): Promise<{ s: ExtProcSession; o: Outcome }> {
    const s = t.pool.open();
    await s.sendRequestHeaders(postHeaders(PATH, [bearer(tenant), ['x-request-id', id]]), false);
    return { s, o: await s.sendRequestBody(jsonBody({ model: 'auto', ...body })) };
  }

  /** A request about a stored response, on its headers alone: the local reply, or the tier it is sent to. */
  async function about(t: TestTiergate, tenant: keyof typeof KEYS, method: string, path: string, id: string): Promise<{ status: number; code: string } | { tier: string | undefined }> {
    const s = t.pool.open();
    const o = await s.sendRequestHeaders([[':method', method], [':path', path], [':authority', 'gw'], bearer(tenant), ['x-request-id', id]], true);
    s.close();
    if (o.kind === 'immediate') return { status: o.status, code: (JSON.parse(o.body.toString()) as { error: { code: string } }).error.code };
    return { tier: getHeader(s.requestHeaders, 'x-llm-tier') };
  }

  async function stored(t: TestTiergate, tenant: keyof typeof KEYS, responseId: string): Promise<void> {
    const first = await turnAs(t, tenant, { input: LONG_TASK }, `store-${responseId}`);
    expect(sent(first.s, first.o).tier).toBe('strong');
    await first.s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await first.s.sendResponseBody(jsonBody(response({ id: responseId, usage: USAGE })), true);
    first.s.close();
  }

  it.each(Object.keys(stores))('%s store: another tenant is told "not found" for a continuation, a retrieval, a delete; the owner is served', async (name) => {
    const t = await startTiergate({ auth, routing: (stores[name] as () => ConfigInput['routing'])() });
    if (name === 'redis') await expect.poll(() => (t.app.affinity.store as unknown as { redis: { status: string } }).redis.status).toBe('ready');
    try {
      await stored(t, 'acme', 'resp_acme_1');
      // globex continues acme's conversation: OpenAI's own answer for a response it does not hold.
      for (const model of ['auto', 'strong-model']) {
        const theirs = await turnAs(t, 'globex', { model, input: 'ok', previous_response_id: 'resp_acme_1' }, `cont-${model}`);
        const r = refusal(theirs.o);
        expect([r.status, r.error.code, r.error.param, r.error.message]).toEqual([400, 'previous_response_not_found', 'previous_response_id', "Previous response with id 'resp_acme_1' not found."]);
        theirs.s.close();
        expect(await rowFor(t, `cont-${model}`)).toMatchObject({ tenant_id: 'globex', status: 'rejected', http_status: 400, error_code: 'previous_response_not_found' });
      }
      // Retrieving, listing its input, cancelling or deleting it: 404, however the id is written.
      for (const [method, path] of [
        ['GET', '/v1/responses/resp_acme_1'],
        ['GET', '/v1/responses/resp_acme_1/input_items?limit=5'],
        ['POST', '/v1/responses/resp_acme_1/cancel'],
        ['DELETE', '/v1/responses/resp_acme_1'],
        ['GET', '/v1/responses/resp%5Facme%5F1'],
        ['GET', '/v1/responses/resp_other/../resp_acme_1'],
      ] as const) {
        expect(await about(t, 'globex', method, path, `about-${method}`), `${method} ${path}`).toEqual({ status: 404, code: 'response_not_found' });
      }
      expect(await rowFor(t, 'about-DELETE')).toMatchObject({ tenant_id: 'globex', status: 'rejected', http_status: 404, error_code: 'response_not_found' });
      // The owner is served as before, on the tier that holds it.
      const mine = await turnAs(t, 'acme', { input: 'ok', previous_response_id: 'resp_acme_1' }, 'mine');
      expect(sent(mine.s, mine.o)).toMatchObject({ tier: 'strong', classifier: 'affinity' });
      mine.s.close();
      expect(await about(t, 'acme', 'GET', '/v1/responses/resp_acme_1', 'mine-get')).toEqual({ tier: 'strong' });
      // An id nobody stored through tiergate passes under "known" (the backend answers for it).
      expect(await about(t, 'globex', 'GET', '/v1/responses/resp_elsewhere', 'unknown-get')).toEqual({ tier: 'weak' });
      const unknown = await turnAs(t, 'globex', { input: 'ok', previous_response_id: 'resp_elsewhere' }, 'unknown-cont');
      expect(sent(unknown.s, unknown.o)).toMatchObject({ tier: 'weak', classifier: 'stateful' });
      unknown.s.close();
      // The operator is told whose it was; the refused tenant is not.
      expect(t.logs.filter((l) => l.includes('affinity.foreign_id') && l.includes('"owner":"acme"'))).toHaveLength(8);
    } finally {
      await t.stop();
    }
  });

  /** A conversation created by `tenant`: the backend's answer, as sent (gzip-encoded, or with another status). */
  async function created(t: TestTiergate, tenant: keyof typeof KEYS, id: string, opts: { gzip?: boolean; status?: string; duplex?: boolean } = {}): Promise<string | undefined> {
    const s = t.pool.open(opts.duplex ? DUPLEX : undefined);
    const forwarded: Buffer[] = [];
    s.onStreamedBody = (kind, b) => void (kind === 'response_body' && forwarded.push(b));
    const o = await s.sendRequestHeaders([[':method', 'POST'], [':path', '/v1/conversations'], [':authority', 'gw'], bearer(tenant), ['content-type', 'application/json']], true);
    const tier = o.kind === 'continue' ? getHeader(s.requestHeaders, 'x-llm-tier') : undefined;
    const plain = jsonBody({ id, object: 'conversation', created_at: 1764800000, metadata: { topic: 'demo' } });
    await s.sendResponseHeaders([[':status', opts.status ?? '200'], ['content-type', 'application/json'], ...(opts.gzip ? [['content-encoding', 'gzip'] as [string, string]] : [])], false);
    const body = opts.gzip ? gzipSync(plain) : plain;
    // In two pieces, as a stream may cut it: the id is read from the whole answer.
    if (opts.duplex) {
      // Envoy does not wait between chunks in this mode; the answer goes on as it came.
      await Promise.all([s.sendResponseBody(body.subarray(0, 9), false), s.sendResponseBody(body.subarray(9), true)]);
      expect(Buffer.concat(forwarded).equals(body)).toBe(true);
    } else {
      await s.sendResponseBody(body.subarray(0, 9), false);
      await s.sendResponseBody(body.subarray(9), true);
    }
    s.close();
    return tier;
  }

  it('conversations: the tenant that created one is the only one that may use it, by path or by a turn', async () => {
    const t = await startTiergate({ auth, routing: { affinity: { store: 'memory' } } });
    try {
      expect(await created(t, 'acme', 'conv_acme_1')).toBe('weak'); // the stateful tier, with its credential
      expect(await created(t, 'acme', 'conv_acme_gz', { gzip: true })).toBe('weak');
      expect(await created(t, 'acme', 'conv_acme_fd', { duplex: true })).toBe('weak'); // FULL_DUPLEX_STREAMED bodies
      await created(t, 'acme', 'conv_failed', { status: '400' }); // a failed creation names nothing
      for (const [method, path] of [
        ['GET', '/v1/conversations/conv_acme_1'],
        ['POST', '/v1/conversations/conv_acme_1'],
        ['DELETE', '/v1/conversations/conv_acme_1'],
        ['GET', '/v1/conversations/conv_acme_1/items?limit=10'],
        ['POST', '/v1/conversations/conv_acme_1/items'],
        ['DELETE', '/v1/conversations/conv_acme_1/items/msg_1'],
        ['GET', '/v1/conversations/conv%5Facme%5F1'],
        ['GET', '/v1/conversations/conv_acme_gz'],
        ['GET', '/v1/conversations/conv_acme_fd'],
      ] as const) {
        expect(await about(t, 'globex', method, path, `conv-${method}`), `${method} ${path}`).toEqual({ status: 404, code: 'conversation_not_found' });
      }
      for (const conversation of ['conv_acme_1', { id: 'conv_acme_gz' }]) {
        const theirs = await turnAs(t, 'globex', { input: 'ok', conversation }, 'conv-turn');
        const r = refusal(theirs.o);
        expect([r.status, r.error.code, r.error.param]).toEqual([404, 'conversation_not_found', 'conversation']);
        theirs.s.close();
      }
      // The creator is served on the stateful tier; an id whose creation failed is not anyone's.
      expect(await about(t, 'acme', 'GET', '/v1/conversations/conv_acme_1/items', 'mine')).toEqual({ tier: 'weak' });
      const mine = await turnAs(t, 'acme', { input: 'ok', conversation: { id: 'conv_acme_gz' } }, 'mine-turn');
      expect(sent(mine.s, mine.o)).toMatchObject({ tier: 'weak', classifier: 'stateful' });
      mine.s.close();
      expect(await about(t, 'globex', 'GET', '/v1/conversations/conv_failed', 'failed')).toEqual({ tier: 'weak' });
      expect(await rowFor(t, 'conv-turn')).toMatchObject({ tenant_id: 'globex', http_status: 404, error_code: 'conversation_not_found' });
    } finally {
      await t.stop();
    }
  });

  it('strict refuses ids tiergate has no record of, and answers 503 while the store cannot say; off checks nothing', async () => {
    const strict = await startTiergate({ auth, routing: { affinity: { store: 'memory', isolation: 'strict' } } });
    const off = await startTiergate({ auth, routing: { affinity: { store: 'memory', isolation: 'off' } } });
    const dead = { url: 'redis://127.0.0.1:1', connectTimeoutMs: 50, commandTimeoutMs: 50 };
    const down = await startTiergate({ auth, routing: { affinity: { store: 'redis', redis: dead, isolation: 'strict' } } });
    try {
      await stored(strict, 'acme', 'resp_s1');
      expect(await about(strict, 'globex', 'GET', '/v1/responses/resp_elsewhere', 'g1')).toEqual({ status: 404, code: 'response_not_found' });
      const c = await turnAs(strict, 'globex', { input: 'ok', previous_response_id: 'resp_elsewhere' }, 'g2');
      expect(refusal(c.o)).toMatchObject({ status: 400, error: { code: 'previous_response_not_found' } });
      c.s.close();
      expect(await about(strict, 'acme', 'GET', '/v1/responses/resp_s1', 'a1')).toEqual({ tier: 'strong' });
      expect(await about(strict, 'globex', 'GET', '/v1/conversations/conv_elsewhere', 'g3')).toEqual({ status: 404, code: 'conversation_not_found' });
      // Creating one, and counting a prompt's tokens beside the stored responses, are not about an id.
      expect(await created(strict, 'globex', 'conv_g1')).toBe('weak');
      expect(await about(strict, 'globex', 'GET', '/v1/conversations/conv_g1', 'g4')).toEqual({ tier: 'weak' });
      expect(await about(strict, 'globex', 'POST', '/v1/responses/input_tokens', 'g5')).toEqual({ tier: 'weak' });
      // Stored items named by id (item_reference), which tiergate keeps no record of: strict refuses them, known
      // passes them.
      const ref = { store: false, input: [{ type: 'item_reference', id: 'msg_elsewhere' }, { role: 'user', content: 'go on' }] };
      const refused = await turnAs(strict, 'globex', ref, 'g6');
      expect(refusal(refused.o)).toEqual({
        status: 404,
        error: expect.objectContaining({ code: 'item_not_found', param: 'input', message: 'Items named by id (item_reference) cannot be verified through this gateway; send the items themselves.' }),
      });
      refused.s.close();
      expect(await rowFor(strict, 'g6')).toMatchObject({ tenant_id: 'globex', status: 'rejected', error_code: 'item_not_found' });
      const known = await startTiergate({ auth, routing: { affinity: { store: 'memory' } } });
      try {
        const passed = await turnAs(known, 'globex', ref, 'k1');
        expect(sent(passed.s, passed.o).tier).toBe('weak');
        passed.s.close();
      } finally {
        await known.stop();
      }

      // Warned at start: isolation off, with keys on.
      expect(off.logs.filter((l) => l.includes('config.responses_not_isolated'))).toHaveLength(1);
      expect(strict.logs.join('\n')).not.toContain('config.responses_not_isolated');
      await stored(off, 'acme', 'resp_o1');
      expect(await about(off, 'globex', 'GET', '/v1/responses/resp_o1', 'o1')).toEqual({ tier: 'weak' });
      const o = await turnAs(off, 'globex', { input: 'ok', previous_response_id: 'resp_o1' }, 'o2');
      expect(sent(o.s, o.o)).toMatchObject({ tier: 'weak', classifier: 'stateful' });
      o.s.close();

      expect(await about(down, 'acme', 'GET', '/v1/responses/resp_any', 'd1')).toEqual({ status: 503, code: 'dependency_unavailable' });
      const d = await turnAs(down, 'acme', { input: 'ok', previous_response_id: 'resp_any' }, 'd2');
      expect(refusal(d.o)).toMatchObject({ status: 503, error: { code: 'dependency_unavailable', param: 'previous_response_id' } });
      d.s.close();
    } finally {
      await Promise.all([strict.stop(), off.stop(), down.stop()]);
    }
  });
});

describe('sealed items: a turn that sends back encrypted reasoning or a compaction goes to the tier that sealed it', () => {
  // Codex and the Agents SDK send `store: false` with `include: ["reasoning.encrypted_content"]`, and send the
  // model's reasoning back, sealed, every turn. Only the backend that sealed it can read it (OpenAI answers 400
  // invalid_encrypted_content otherwise), so a turn classified on its own text onto the other tier fails. So does
  // the item a compaction returns in place of the history.
  const servers = redisAndClusterForFile();
  const KEYS = { acme: 'tg-acme-sealed-key', globex: 'tg-globex-sealed-key' };
  const auth = { mode: 'api_key', keys: Object.entries(KEYS).map(([tenant, k]) => ({ id: tenant, sha256: sha256Hex(k), tenant })) } as const;
  const as = (tenant: keyof typeof KEYS): Array<[string, string]> => [['authorization', `Bearer ${KEYS[tenant]}`]];
  const stores: Record<string, () => ConfigInput['routing']> = {
    memory: () => ({ affinity: { store: 'memory' } }),
    redis: () => ({ affinity: { store: 'redis', redis: { url: servers.redis.url, keyPrefix: `sealed:${Date.now()}:`, connectTimeoutMs: 1000, commandTimeoutMs: 1000 } } }),
  };
  const SEAL_COMPACT = 'gAAAAABcompact' + 'c'.repeat(400);
  const compacted = { type: 'compaction', id: 'cmp_item', encrypted_content: SEAL_COMPACT };

  const answerJson = (s: ExtProcSession, output: unknown[]): Promise<void> => answer(s, 'resp_unstored', { store: false, output });

  it.each(Object.keys(stores))('%s store: the tier that sealed it, from a JSON or a streamed answer; classified when unknown', async (name) => {
    const t = await startTiergate({ routing: (stores[name] as () => ConfigInput['routing'])() });
    if (name === 'redis') await expect.poll(() => (t.app.affinity.store as unknown as { redis: { status: string } }).redis.status).toBe('ready');
    try {
      const first = await turn(t, { ...STATELESS, input: [user('hi')] }, 'first');
      expect(sent(first.s, first.o)).toMatchObject({ tier: 'weak', classifier: 'v7' });
      await answerJson(first.s, [reasoning(SEAL_WEAK), said('Hello.')]);
      // The next turn asks for a refactor (strong by the rules) but sends back the weak model's reasoning.
      const history = [user('hi'), reasoning(SEAL_WEAK), said('Hello.'), user(LONG_TASK)];
      const next = await turn(t, { ...STATELESS, input: history }, 'next');
      expect(sent(next.s, next.o)).toMatchObject({ tier: 'weak', classifier: 'affinity', body: { model: 'weak-model' } });
      next.s.close();
      expect(await rowFor(t, 'next')).toMatchObject({ tier: 'weak', classifier_version: 'affinity' });
      // The same turn without it, or with reasoning tiergate never saw, is classified.
      for (const input of [history.filter((i) => !('encrypted_content' in i)), [reasoning('gAAAAABelsewhere'), user(LONG_TASK)]]) {
        const c = await turn(t, { ...STATELESS, input });
        expect(sent(c.s, c.o)).toMatchObject({ tier: 'strong', classifier: 'v7' });
        c.s.close();
      }

      // A streamed answer of the strong tier: its reasoning is seen when its item is done, and again in the
      // final event; the chunk that shows it waits until it is recorded.
      const strong = await turn(t, { ...STATELESS, model: 'strong-model', stream: true, input: [user('hi')] }, 'strong');
      expect(sent(strong.s, strong.o).tier).toBe('strong');
      await strong.s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
      await strong.s.sendResponseBody(Buffer.from(event({ type: 'response.created', response: response({ id: 'resp_s', status: 'in_progress', store: false }) })), false);
      await strong.s.sendResponseBody(Buffer.from(event({ type: 'response.output_item.done', output_index: 0, item: reasoning(SEAL_STRONG) })), false);
      const back = await turn(t, { ...STATELESS, input: [user('hi'), reasoning(SEAL_STRONG), user('thanks')] }, 'back');
      expect(sent(back.s, back.o)).toMatchObject({ tier: 'strong', classifier: 'affinity' });
      back.s.close();
      await strong.s.sendResponseBody(Buffer.from(event({ type: 'response.completed', response: response({ id: 'resp_s', store: false, output: [reasoning(SEAL_STRONG), said('Hi.')], usage: USAGE }) })), true);
      strong.s.close();
      // The most recent reasoning decides: the turn before sealed it.
      const both = await turn(t, { ...STATELESS, input: [user('hi'), reasoning(SEAL_WEAK), user('go on'), reasoning(SEAL_STRONG), user('thanks')] });
      expect(sent(both.s, both.o).tier).toBe('strong');
      both.s.close();
      // A model named by the client is its to choose.
      const named = await turn(t, { ...STATELESS, model: 'weak-model', input: [reasoning(SEAL_STRONG), user('thanks')] });
      expect(sent(named.s, named.o)).toMatchObject({ tier: 'weak', classifier: 'alias' });
      named.s.close();
      // Compaction (Codex's, when the context fills): the reasoning it is sent sends it to the weak tier, and the
      // item it returns in place of the history is recorded there too.
      const compact = t.pool.open();
      await compact.sendRequestHeaders(postHeaders(`${PATH}/compact`, [['x-request-id', 'compact']]), false);
      const co = await compact.sendRequestBody(jsonBody({ model: 'auto', input: history }));
      expect(sent(compact, co)).toMatchObject({ tier: 'weak', classifier: 'affinity' });
      await compact.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      await compact.sendResponseBody(jsonBody({ id: 'cmp_1', object: 'response.compaction', output: [user('hi'), compacted], usage: USAGE }), true);
      compact.close();
      const after = await turn(t, { ...STATELESS, input: [user('hi'), compacted, user(LONG_TASK)] });
      expect(sent(after.s, after.o)).toMatchObject({ tier: 'weak', classifier: 'affinity' });
      after.s.close();
      // One record per sealed item (its tier, and whose it is), written once however often it was seen.
      expect(await metricValue(t.app, 'tiergate_response_affinity_total', { op: 'remember', result: 'stored' })).toBe(3);
    } finally {
      await t.stop();
    }
  });

  it('sealed items are kept for routing.affinity.sealedTtlSeconds (a session), stored responses for ttlSeconds', async () => {
    const c = { t: Date.UTC(2026, 11, 4, 12), now: () => c.t };
    const t = await startTiergate({ routing: { affinity: { store: 'memory', sealedTtlSeconds: 3600 } } }, {}, { now: c.now });
    try {
      const first = await turn(t, { input: [user('hi')] }); // stored (no store: false), with sealed reasoning too
      expect(sent(first.s, first.o).tier).toBe('weak');
      await first.s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      await first.s.sendResponseBody(jsonBody(response({ id: 'resp_kept', output: [reasoning(SEAL_WEAK)], usage: USAGE })), true);
      first.s.close();
      const history = { ...STATELESS, input: [user('hi'), reasoning(SEAL_WEAK), user(LONG_TASK)] };
      const within = await turn(t, history);
      expect(sent(within.s, within.o)).toMatchObject({ tier: 'weak', classifier: 'affinity' });
      within.s.close();
      c.t += 3601_000;
      // The sealed item's record is gone: classified afresh. The stored response's is not.
      const after = await turn(t, history);
      expect(sent(after.s, after.o)).toMatchObject({ tier: 'strong', classifier: 'v7' });
      after.s.close();
      const cont = await turn(t, { input: LONG_TASK, previous_response_id: 'resp_kept' });
      expect(sent(cont.s, cont.o)).toMatchObject({ tier: 'weak', classifier: 'affinity' });
      cont.s.close();
    } finally {
      await t.stop();
    }
  });

  it.each(['response', 'owner', 'history', 'sealed item'])('one piece showing a stored response, its usage and sealed reasoning waits for every write (the %s slow)', async (slow) => {
    // Token limits, so that the history the answer ends is recorded too (a continuation is reserved for it).
    const t = await startTiergate({ routing: { affinity: { store: 'memory', deadlineMs: 2000 } }, tenants: { '*': { dailyTokenBudget: 1_000_000 } } });
    const cfg = t.app.config.current().config.routing.affinity;
    // Every write lands late, one kind of them 60 ms later than the rest: the piece must wait for the slowest.
    const store = t.app.affinity.store as NonNullable<typeof t.app.affinity.store>;
    const set = store.set.bind(store);
    const kind = (key: string) => (key.includes('owner:') ? 'owner' : key.includes('sealed_') ? 'sealed item' : key.includes('context:') ? 'history' : 'response');
    store.set = (key, ...rest) => new Promise((done) => setTimeout(done, kind(key) === slow ? 70 : 10)).then(() => set(key, ...rest));
    try {
      const first = await turn(t, { input: [user('hi')] }, 'both'); // stored, with its reasoning sealed too
      expect(sent(first.s, first.o).tier).toBe('weak');
      await answer(first.s, 'resp_both', { output: [reasoning(SEAL_WEAK), said('Hello.')] });
      // The answer has reached the client: all are known, whichever it sends back first.
      expect(await t.app.affinity.holder('default', 'resp_both', cfg)).toEqual({ kind: 'own', tier: 'weak' });
      // Whose they are, which isolation reads once a tier record has gone (its TTL, a memory store's bound).
      for (const id of ['resp_both', sealedItemId(SEAL_WEAK)]) expect(await t.app.affinity.ownerOf('default', 'response', id, cfg), id).toMatchObject({ kind: 'own' });
      expect(await t.app.affinity.contextOf('default', 'response', 'resp_both', cfg)).toBe(USAGE.input_tokens + USAGE.output_tokens);
      expect(await t.app.affinity.holder('default', sealedItemId(SEAL_WEAK), cfg)).toEqual({ kind: 'own', tier: 'weak' });
    } finally {
      await t.stop();
    }
  });

  it("affinity off (the default): classified on its text, as before", async () => {
    const first = await turn(tg, { ...STATELESS, input: [user('hi'), reasoning(SEAL_WEAK), said('Hello.'), user(LONG_TASK)] });
    expect(sent(first.s, first.o)).toMatchObject({ tier: 'strong', classifier: 'v7' });
    first.s.close();
  });

  it("isolation: another tenant's sealed reasoning is refused wherever it sits in the input; strict refuses what it never saw", async () => {
    const t = await startTiergate({ auth, routing: { affinity: { store: 'memory' } } });
    const strict = await startTiergate({ auth, routing: { affinity: { store: 'memory', isolation: 'strict' } } });
    const dead = { url: 'redis://127.0.0.1:1', connectTimeoutMs: 50, commandTimeoutMs: 50 };
    const down = await startTiergate({ auth, routing: { affinity: { store: 'redis', redis: dead, isolation: 'strict' } } });
    try {
      for (const tg2 of [t, strict]) {
        const acme = await turn(tg2, { ...STATELESS, input: [user('hi')] }, 'acme', as('acme'));
        await answerJson(acme.s, [reasoning(SEAL_WEAK), said('Hello.')]);
        const own = await turn(tg2, { ...STATELESS, input: [user('hi'), reasoning(SEAL_WEAK), user('more')] }, 'own', as('acme'));
        expect(sent(own.s, own.o)).toMatchObject({ tier: 'weak', classifier: 'affinity' });
        own.s.close();
        const globex = await turn(tg2, { ...STATELESS, input: [user('hi')] }, 'globex', as('globex'));
        await answerJson(globex.s, [reasoning(SEAL_STRONG)]);
        // globex sends acme's reasoning, last or before its own, by auto or a named model: what OpenAI answers
        // for content it cannot read, and nothing about acme.
        for (const [i, input] of [[reasoning(SEAL_WEAK), user('x')], [reasoning(SEAL_WEAK), reasoning(SEAL_STRONG), user('x')]].entries()) {
          for (const model of ['auto', 'strong-model']) {
            const theirs = await turn(tg2, { ...STATELESS, model, input }, `theirs-${i}-${model}`, as('globex'));
            const r = refusal(theirs.o);
            expect([r.status, r.error.code, r.error.param]).toEqual([400, 'invalid_encrypted_content', null]);
            expect(r.error.message).not.toContain('acme');
            theirs.s.close();
            expect(await rowFor(tg2, `theirs-${i}-${model}`)).toMatchObject({ tenant_id: 'globex', status: 'rejected', error_code: 'invalid_encrypted_content' });
          }
        }
        // A continuation of globex's own stored response, carrying acme's reasoning: refused too.
        const stored = await turn(tg2, { input: [user('hi')] }, 'gstore', as('globex'));
        await stored.s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
        await stored.s.sendResponseBody(jsonBody(response({ id: 'resp_globex', usage: USAGE })), true);
        stored.s.close();
        const cont = await turn(tg2, { previous_response_id: 'resp_globex', input: [reasoning(SEAL_WEAK), user('x')] }, 'gcont', as('globex'));
        expect(refusal(cont.o)).toMatchObject({ status: 400, error: { code: 'invalid_encrypted_content' } });
        cont.s.close();
        expect(tg2.logs.filter((l) => l.includes('affinity.foreign_id') && l.includes('"use":"sealed"')).length).toBeGreaterThanOrEqual(5);
        expect(tg2.logs.join('\n')).not.toContain('gAAAAAB');
      }
      // Known (the default) passes reasoning it has no record of; strict refuses it, and answers 503 while the
      // store cannot say.
      const unseen = { ...STATELESS, input: [reasoning('gAAAAABunseen'), user('x')] };
      const passed = await turn(t, unseen, 'u1', as('acme'));
      expect(sent(passed.s, passed.o).classifier).toBe('v7');
      passed.s.close();
      const refused = await turn(strict, unseen, 'u2', as('acme'));
      expect(refusal(refused.o)).toMatchObject({ status: 400, error: { code: 'invalid_encrypted_content' } });
      refused.s.close();
      const unavailable = await turn(down, unseen, 'u3', as('acme'));
      expect(refusal(unavailable.o)).toMatchObject({ status: 503, error: { code: 'dependency_unavailable' } });
      unavailable.s.close();
    } finally {
      await Promise.all([t.stop(), strict.stop(), down.stop()]);
    }
  });
});

describe('affinity lookups: a turn reads only what can decide its tier or whether it is refused', () => {
  // Each lookup is a store read on the request's path (a Redis round trip with the redis store), so a turn makes
  // only those whose answer can change where it goes (a continuation that affinity routes, the most recent sealed
  // item of a turn that would otherwise be classified) or, with isolation on, whether it is refused (every id it
  // names). A gateway with no affinity store makes none, and counts none (a "failed" lookup would read as an outage).
  type Mode = 'none' | 'off' | 'known';
  const routing: Record<Mode, ConfigInput['routing']> = {
    none: {},
    off: { affinity: { store: 'memory', isolation: 'off' } },
    known: { affinity: { store: 'memory' } },
  };
  const unseen = (i: number) => `gAAAAABunseen${i}` + 'u'.repeat(64);
  // [tier, x-llm-classifier, tier lookups, owner lookups] by mode.
  type Expect = [string, string, number, number];
  const rows: Array<{ name: string; path?: string; body: Record<string, unknown> } & Record<Mode, Expect>> = [
    {
      name: 'chat, whatever extra fields it carries',
      path: '/v1/chat/completions',
      body: { messages: [{ role: 'user', content: 'hi' }], previous_response_id: 'resp_strong', conversation: 'conv_1' },
      none: ['weak', 'v7', 0, 0], off: ['weak', 'v7', 0, 0], known: ['weak', 'v7', 0, 0],
    },
    { name: 'a new stored turn', body: { input: LONG_TASK }, none: ['weak', 'stateful', 0, 0], off: ['strong', 'v7', 0, 0], known: ['strong', 'v7', 0, 0] },
    { name: 'the same, conversation: null', body: { input: LONG_TASK, conversation: null }, none: ['weak', 'stateful', 0, 0], off: ['strong', 'v7', 0, 0], known: ['strong', 'v7', 0, 0] },
    {
      name: 'a continuation',
      body: { input: 'ok', previous_response_id: 'resp_strong' },
      none: ['weak', 'stateful', 0, 0], off: ['strong', 'affinity', 1, 0], known: ['strong', 'affinity', 1, 0],
    },
    {
      name: 'a continuation naming a model',
      body: { model: 'weak-model', input: 'ok', previous_response_id: 'resp_strong' },
      none: ['weak', 'alias', 0, 0], off: ['weak', 'alias', 0, 0], known: ['weak', 'alias', 1, 0],
    },
    {
      name: 'a continuation of an id never seen',
      body: { input: 'ok', previous_response_id: 'resp_never_seen' },
      none: ['weak', 'stateful', 0, 0], off: ['weak', 'stateful', 1, 0], known: ['weak', 'stateful', 1, 1],
    },
    { name: "a conversation's turn", body: { input: LONG_TASK, conversation: 'conv_1' }, none: ['weak', 'stateful', 0, 0], off: ['weak', 'stateful', 0, 0], known: ['weak', 'stateful', 0, 1] },
    {
      name: 'a stateless turn sending back sealed reasoning',
      body: { ...STATELESS, input: [user('hi'), reasoning(SEAL_WEAK), user(LONG_TASK)] },
      none: ['strong', 'v7', 0, 0], off: ['weak', 'affinity', 1, 0], known: ['weak', 'affinity', 1, 0],
    },
    {
      name: 'the same, the same item twice',
      body: { ...STATELESS, input: [reasoning(SEAL_WEAK), user('a'), reasoning(SEAL_WEAK), user(LONG_TASK)] },
      none: ['strong', 'v7', 0, 0], off: ['weak', 'affinity', 1, 0], known: ['weak', 'affinity', 1, 0],
    },
    {
      name: 'the same, the most recent sealed item never seen',
      body: { ...STATELESS, input: [reasoning(SEAL_WEAK), user('a'), reasoning(unseen(0)), user(LONG_TASK)] },
      none: ['strong', 'v7', 0, 0], off: ['strong', 'v7', 1, 0], known: ['strong', 'v7', 2, 1],
    },
    {
      name: 'a stateless turn naming a model, with sealed reasoning',
      body: { ...STATELESS, model: 'strong-model', input: [reasoning(SEAL_WEAK), user('x')] },
      none: ['strong', 'alias', 0, 0], off: ['strong', 'alias', 0, 0], known: ['strong', 'alias', 1, 0],
    },
    {
      name: 'a new stored turn with sealed reasoning',
      body: { input: [user('hi'), reasoning(SEAL_WEAK), user(LONG_TASK)] },
      none: ['weak', 'stateful', 0, 0], off: ['weak', 'affinity', 1, 0], known: ['weak', 'affinity', 1, 0],
    },
    {
      name: 'a continuation with sealed reasoning (the continuation decides)',
      body: { previous_response_id: 'resp_strong', input: [reasoning(SEAL_WEAK), user('x')] },
      none: ['weak', 'stateful', 0, 0], off: ['strong', 'affinity', 1, 0], known: ['strong', 'affinity', 2, 0],
    },
    {
      name: "a conversation's turn with sealed reasoning",
      body: { conversation: 'conv_1', input: [reasoning(SEAL_WEAK), user('x')] },
      none: ['weak', 'stateful', 0, 0], off: ['weak', 'stateful', 0, 0], known: ['weak', 'stateful', 1, 1],
    },
    {
      // Checked: the most recent 1,024, a bound on the reads one request causes (more than a context window holds).
      name: '1,025 sealed items',
      body: { ...STATELESS, input: [...Array.from({ length: 1025 }, (_, i) => reasoning(unseen(i))), user('x')] },
      none: ['strong', 'v7', 0, 0], off: ['strong', 'v7', 1, 0], known: ['strong', 'v7', 1024, 1024],
    },
  ];

  async function lookups(t: TestTiergate): Promise<[number, number]> {
    const name = 'tiergate_response_affinity_total';
    return [await metricValue(t.app, name, { op: 'lookup' }), await metricValue(t.app, name, { op: 'owner_lookup' })];
  }

  it.each(Object.keys(routing) as Mode[])('%s', async (mode) => {
    const t = await startTiergate({ routing: routing[mode] });
    try {
      // A stored response on the strong tier, and reasoning the weak tier sealed.
      await answer((await turn(t, { input: LONG_TASK }, 'seed-stored')).s, 'resp_strong');
      await answer((await turn(t, { ...STATELESS, input: [user('hi')] }, 'seed-sealed')).s, 'resp_unstored', { store: false, output: [reasoning(SEAL_WEAK)] });
      for (const row of rows) {
        const before = await lookups(t);
        const { s, o } = await turn(t, row.body, row.name, [], row.path);
        const { tier, classifier } = sent(s, o);
        s.close();
        const after = await lookups(t);
        expect([tier, classifier, after[0] - before[0], after[1] - before[1]], row.name).toEqual(row[mode]);
      }
    } finally {
      await t.stop();
    }
  });
});
