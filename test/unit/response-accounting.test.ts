// ResponseAccounting: what one request's ledger row and Envoy metadata take from the request and the response
// phases. Driven directly, phase by phase, so that every field of the record can be checked against what the
// stream carried; the integration suites check the rows these records become.
import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { TierRuntime } from '../../src/config/runtime.js';
import { parseLlmRequest } from '../../src/llm/parse-request.js';
import { StreamRequestState, type RequestState } from '../../src/pipeline/request-state.js';
import { ResponseAccounting } from '../../src/pipeline/response-accounting.js';
import { DEFAULT_TENANT } from '../../src/stages/authenticate.js';
import { captureLogger, runtimeFor } from '../helpers/tiergate.js';

const HASH_KEY = 'a-key-of-sixteen-or-more';
const rt = runtimeFor({
  tiers: { weak: { model: 'weak-model' }, strong: { model: 'strong-model', provider: 'vllm' }, odd: { model: 'unpriced-model' } },
  usage: { trailer: 'x-usage' },
  plans: { basic: {} },
  tenants: { acme: { plan: 'basic' } },
  ledger: { userHashKey: HASH_KEY },
});
const tier = (name: string) => rt.tiers.get(name) as TierRuntime;

/** A request state as the pipeline leaves it: the tenant's, parsed, and routed by the classifier when asked. */
function chatState(body: Record<string, unknown>, opts: { headers?: Array<[string, string]>; path?: string; tier?: string; tenant?: string } = {}) {
  const path = opts.path ?? '/v1/chat/completions';
  const state = new StreamRequestState('req-1', rt, path, 'POST', new Map(opts.headers ?? []), captureLogger().log);
  state.tenant = opts.tenant ?? 'acme';
  state.policy = rt.tenants.policyFor(state.tenant);
  state.llm = parseLlmRequest(path === '/v1/completions' ? 'completions' : 'chat', Buffer.from(JSON.stringify(body)));
  if (opts.tier) {
    state.route = {
      tier: tier(opts.tier),
      source: 'classifier',
      classification: { tier: opts.tier, version: 'v7', rule: 'keywords', reason: 'keyword "debug"' },
      shadow: { tier: 'weak', version: 'v8', rule: 'default', reason: 'no rule matched' },
    };
  }
  return state;
}

const sse = (...events: unknown[]) => Buffer.from(`${events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('')}data: [DONE]\n\n`);
const chunk = (model: string, extra: Record<string, unknown> = {}) => ({ id: 'c1', object: 'chat.completion.chunk', model, choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: 'stop' }], ...extra });
const usage = { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 };
const headers = (status: number, contentType?: string) => new Map<string, string>([[':status', String(status)], ...(contentType ? [['content-type', contentType] as [string, string]] : [])]);

/** The record of a stream that ends now; `upstreamCalled` unless said otherwise. */
const recordOf = (acc: ResponseAccounting, state?: RequestState, upstreamCalled = true) => acc.record(state, upstreamCalled, null, performance.now(), undefined);

/** A streamed 200 whose answer came from `model`, with its usage; the record and the final answer's metadata. */
function streamed(model: string, opts: Parameters<typeof chatState>[1] = { tier: 'strong' }, body: Record<string, unknown> = { model: 'auto', stream: true, messages: [{ role: 'user', content: 'hello' }] }) {
  const state = chatState(body, opts);
  const acc = new ResponseAccounting(rt);
  acc.requestDecided(state, performance.now());
  acc.responseHeaders(headers(200, 'text/event-stream'), false);
  const metadata = acc.responseBody(sse(chunk(model), { ...chunk(model), choices: [], usage }), true);
  return { state, acc, metadata, record: acc.record(state, true, 'trace-1', performance.now(), undefined) };
}

describe('ResponseAccounting', () => {
  it('a routed, streamed chat request: every field the row takes from the request, the route and the stream', () => {
    const { record: r, metadata } = streamed('strong-model', { tier: 'strong', headers: [['x-feature-id', 'search'], ['x-user-id', '']] }, { model: 'auto', stream: true, user: 'u-1', messages: [{ role: 'user', content: 'hello' }] });
    expect(metadata).toEqual({ input_tokens: 12, output_tokens: 3, total_tokens: 15, cost_usd: expect.any(Number), usage_source: 'reported' });
    expect(r).toMatchObject({
      requestId: 'req-1',
      traceId: 'trace-1',
      tenant: 'acme',
      featureId: 'search',
      // An empty header names nobody: the body's user does, hashed with the configured key.
      userIdHash: createHmac('sha256', HASH_KEY).update('u-1').digest('hex'),
      rateLimitTier: 'basic',
      modelAlias: 'auto',
      path: '/v1/chat/completions',
      stream: true,
      tier: 'strong',
      routedModel: 'strong-model',
      provider: 'vllm',
      classifierVersion: 'v7',
      classifierRule: 'keywords',
      classifierReason: 'keyword "debug"',
      shadowTier: 'weak',
      shadowReason: 'v8 no rule matched',
      upstreamCalled: true,
      httpStatus: 200,
      responseEnded: true,
      requestUnread: false,
      answerUnread: false,
      inputCharacters: 0,
      fallbackUsed: false,
    });
    expect(r.facts?.usage).toMatchObject({ inputTokens: 12, outputTokens: 3, totalTokens: 15 });
    // Each timing is a part of the next: the gateway's work, then the time to the first byte within the
    // backend's, within the whole stream. (Order only: how long each took is the bench's to measure.)
    const t = r.timings;
    expect(t.gatewayMs).toBeGreaterThanOrEqual(0);
    expect(t.ttftMs).not.toBeNull();
    expect(t.ttftMs as number).toBeGreaterThanOrEqual(0);
    expect(t.ttftMs as number).toBeLessThanOrEqual(t.providerMs as number);
    expect(t.providerMs as number).toBeLessThanOrEqual(t.totalMs);
    expect(t.gatewayMs).toBeLessThanOrEqual(t.totalMs);
  });

  it('a request the header names a user for: the header wins over the body, and an unkeyed hash is plain SHA-256', () => {
    const { record } = streamed('strong-model', { tier: 'strong', headers: [['x-user-id', 'from-header']] }, { model: 'auto', user: 'from-body', messages: [{ role: 'user', content: 'hi' }] });
    expect(record.userIdHash).toBe(createHmac('sha256', HASH_KEY).update('from-header').digest('hex'));
    const plain = new ResponseAccounting(runtimeFor({}));
    const state = chatState({ model: 'auto', user: 'u-2', messages: [{ role: 'user', content: 'hi' }] });
    plain.requestDecided(state, performance.now());
    expect(recordOf(plain, state, false).userIdHash).toBe(createHash('sha256').update('u-2').digest('hex'));
    // An empty user names nobody.
    const { record: empty } = streamed('strong-model', { tier: 'strong' }, { model: 'auto', user: '', messages: [{ role: 'user', content: 'hi' }] });
    expect(empty.userIdHash).toBeNull();
  });

  it('which tier answered: a dated snapshot of the routed model is no fallback; another tier\'s model is; a model of no tier says nothing', () => {
    expect(streamed('strong-model-2025-06-01').record.fallbackUsed).toBe(false);
    expect(streamed('weak-model').record.fallbackUsed).toBe(true);
    expect(streamed('weak-model-2024-07-18').record.fallbackUsed).toBe(true);
    expect(streamed('someone-elses-model').record.fallbackUsed).toBe(false);
    // Not routed by tiergate (no tier): nothing to fall back from.
    const { record } = streamed('weak-model', {});
    expect([record.tier, record.fallbackUsed]).toEqual([null, false]);
  });

  it('an answer from a model with no price: the metadata has its tokens and no cost, never a cost of nothing', () => {
    const { metadata } = streamed('unpriced-model', { tier: 'odd' });
    expect(metadata).toEqual({ input_tokens: 12, output_tokens: 3, total_tokens: 15, usage_source: 'reported' });
  });

  it('a request refused before its body was read: no tier, no route, nothing streamed, and its body unread', () => {
    const state = new StreamRequestState('refused', rt, '/v1/chat/completions', 'POST', new Map(), captureLogger().log);
    state.tenant = 'globex'; // a tenant with no plan
    state.policy = rt.tenants.policyFor('globex');
    const acc = new ResponseAccounting(rt);
    acc.rejected(401, 'invalid_api_key');
    const r = recordOf(acc, state, false);
    expect(r).toMatchObject({
      tenant: 'globex',
      rateLimitTier: null,
      modelAlias: null,
      stream: false,
      tier: null,
      routedModel: null,
      provider: null,
      classifierVersion: null,
      classifierRule: null,
      classifierReason: null,
      shadowTier: null,
      shadowReason: null,
      localReply: { status: 401, code: 'invalid_api_key' },
      httpStatus: null,
      responseEnded: false,
      requestUnread: true,
      answerUnread: false,
      userIdHash: null,
      featureId: null,
    });
    expect(r.prompt()).toBeUndefined();
    expect(r.timings.ttftMs).toBeNull();
    expect(r.timings.providerMs).toBeNull();
  });

  it('a stream that ended before any request state: the default tenant, no id, no path', () => {
    const r = recordOf(new ResponseAccounting(rt), undefined, false);
    expect(r).toMatchObject({ requestId: '', tenant: DEFAULT_TENANT, path: '', featureId: null, userIdHash: null, rateLimitTier: null, tier: null, stream: false, requestUnread: true });
  });

  it('a path routed to a fixed tier without reading its body: the tier is the one routed to; a GET has no body to be unread', () => {
    for (const [bodiless, unread] of [[false, true], [true, false]] as const) {
      const acc = new ResponseAccounting(rt);
      acc.fixedPathRequest(tier('strong'), '/v1/rerank', bodiless);
      const r = recordOf(acc);
      expect([r.tier, r.routedModel, r.provider, r.requestUnread], String(bodiless)).toEqual(['strong', 'strong-model', 'vllm', unread]);
    }
    const acc = new ResponseAccounting(rt);
    acc.routed(tier('weak'));
    expect(recordOf(acc).tier).toBe('weak');
  });

  it('what the estimate counts when no usage comes back: chat framing on chat, none on completions, media parts at their estimate, token ids one each', () => {
    const prompt = (path: string, body: Record<string, unknown>) => {
      const state = chatState(body, { path, tier: 'weak' });
      const acc = new ResponseAccounting(rt);
      acc.requestDecided(state, performance.now());
      return recordOf(acc, state).prompt();
    };
    expect(prompt('/v1/chat/completions', { model: 'auto', messages: [{ role: 'user', content: 'hi' }] })).toMatchObject({ texts: ['hi'], chat: true, uncountedTokens: 0 });
    expect(prompt('/v1/completions', { model: 'auto', prompt: 'hi' })).toMatchObject({ chat: false });
    // Token ids are the prompt's tokens as they are, one each; a batch's text prompts are all counted.
    expect(prompt('/v1/completions', { model: 'auto', prompt: [[1, 2, 3], [4, 5]] })).toMatchObject({ texts: [''], uncountedTokens: 5 });
    expect(prompt('/v1/completions', { model: 'auto', prompt: [7, 8, 9, 10] })).toMatchObject({ uncountedTokens: 4 });
    expect(prompt('/v1/completions', { model: 'auto', prompt: ['one', 'two'] })).toMatchObject({ texts: ['one two'], uncountedTokens: 0 });
    const image = { type: 'image_url', image_url: { url: 'https://example.com/a.png' } };
    expect(prompt('/v1/chat/completions', { model: 'auto', messages: [{ role: 'user', content: [{ type: 'text', text: 'what?' }, image, image] }] })).toMatchObject({ uncountedTokens: 2 * rt.config.budgets.mediaPartEstimate });
  });

  it('an answer that is neither JSON nor SSE: nothing in it is read, and the metadata says no usage was reported', () => {
    const acc = new ResponseAccounting(rt);
    acc.fixedPathRequest(tier('weak'), '/v1/audio/speech', true);
    expect(acc.responseHeaders(headers(200, 'audio/mpeg'), false)).toBe('other');
    expect(acc.responseBody(Buffer.from([0xff, 0xfb, 0x90]), false)).toBeUndefined();
    expect(acc.responseBody(Buffer.alloc(0), true)).toEqual({ usage_source: 'none_reported' });
    const r = recordOf(acc);
    expect([r.answerUnread, r.responseEnded, r.httpStatus]).toEqual([true, true, 200]);
    // An empty one held nothing to read.
    const empty = new ResponseAccounting(rt);
    empty.responseHeaders(headers(200, 'audio/mpeg'), false);
    empty.responseBody(Buffer.alloc(0), true);
    expect(recordOf(empty).answerUnread).toBe(false);
  });

  it('usage in the configured trailer counts, over any body; a malformed trailer is ignored', () => {
    const acc = new ResponseAccounting(rt);
    acc.routed(tier('weak'));
    acc.responseHeaders(headers(200, 'audio/mpeg'), false);
    acc.responseBody(Buffer.from('bytes'), false);
    const md = acc.responseTrailers(new Map([['x-usage', JSON.stringify(usage)]]));
    // Priced at the routed tier's model: the body named none.
    expect(md).toEqual({ input_tokens: 12, output_tokens: 3, total_tokens: 15, cost_usd: expect.any(Number), usage_source: 'reported' });
    expect(md.cost_usd).toBeGreaterThan(0);
    expect(acc.reportedUsage()?.totalTokens).toBe(15);

    const bad = new ResponseAccounting(rt);
    bad.responseHeaders(headers(200, 'application/json'), false);
    bad.responseBody(Buffer.from(JSON.stringify({ id: 'x', object: 'chat.completion', model: 'weak-model', choices: [], usage })), false);
    expect(bad.responseTrailers(new Map([['x-usage', '{"prompt_tokens": 1']]))).toMatchObject({ total_tokens: 15 });
    // No trailer of that name: the body's usage.
    const none = new ResponseAccounting(rt);
    none.responseHeaders(headers(200, 'application/json'), false);
    none.responseBody(Buffer.from(JSON.stringify({ id: 'x', object: 'chat.completion', model: 'weak-model', choices: [], usage: { ...usage, total_tokens: 16 } })), false);
    expect(none.responseTrailers(new Map([['x-other', JSON.stringify(usage)]]))).toMatchObject({ total_tokens: 16 });
  });

  it('a response that ends on its headers (no body) has ended; one whose body never came has not', () => {
    const ended = new ResponseAccounting(rt);
    ended.responseHeaders(headers(204), true);
    expect(recordOf(ended).responseEnded).toBe(true);
    const cut = new ResponseAccounting(rt);
    cut.responseHeaders(headers(200, 'application/json'), false);
    const r = recordOf(cut);
    expect([r.responseEnded, r.timings.providerMs]).toEqual([false, null]);
  });

  describe('the answer to store, for a miss whose answer may be stored', () => {
    const save = { storeKey: 't:acme:key', ttlMs: 60_000 };
    /** A cache miss the cache stage allows to store, answered with `status` and `body` (SSE). */
    function answered(status: number, body: Buffer | undefined, cache: Record<string, unknown> = { status: 'miss', reason: 'not_found', save, lookupMs: 1 }, contentType = 'text/event-stream') {
      const state = chatState({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { tier: 'weak' });
      state.cache = cache as never;
      const acc = new ResponseAccounting(rt);
      acc.requestDecided(state, performance.now());
      acc.responseHeaders(headers(status, contentType), false);
      if (body) acc.responseBody(body, true);
      return recordOf(acc, state);
    }
    const whole = sse(chunk('weak-model'), { ...chunk('weak-model'), choices: [], usage });

    it('a whole, normal 200 is stored, under the key the cache stage chose', () => {
      const r = answered(200, whole);
      expect(r.cacheSave).toMatchObject({ storeKey: 't:acme:key', ttlMs: 60_000, entry: { answer: expect.any(Object), storedAt: expect.any(Number) } });
      expect(r.cache).toEqual({ hit: undefined, lookupMs: 1 });
    });

    it('anything less is not: another status, a stream cut short, one without its end, or an error inside a 200', () => {
      const cases: Array<[string, number, Buffer | undefined]> = [
        ['a 500', 500, whole],
        ['a 200 whose body never ended', 200, undefined],
        ['a 200 stream without [DONE]', 200, Buffer.from(`data: ${JSON.stringify(chunk('weak-model'))}\n\n`)],
        ['an error event in a 200 stream', 200, Buffer.from(`data: ${JSON.stringify(chunk('weak-model'))}\n\ndata: ${JSON.stringify({ error: { message: 'overloaded', type: 'server_error', code: 'overloaded' } })}\n\ndata: [DONE]\n\n`)],
      ];
      for (const [name, status, body] of cases) expect(answered(status, body).cacheSave, name).toMatchObject({ storeKey: 't:acme:key', entry: null });
      // A backend that answers an error with a 200 and a JSON error body: whole, parsed, and still not an answer.
      const error = Buffer.from(JSON.stringify({ error: { message: 'overloaded', type: 'server_error', code: 'overloaded' } }));
      expect(answered(200, error, undefined, 'application/json').cacheSave).toMatchObject({ entry: null });
      const json = Buffer.from(JSON.stringify({ id: 'c1', object: 'chat.completion', model: 'weak-model', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage }));
      expect(answered(200, json, undefined, 'application/json').cacheSave?.entry).not.toBeNull();
    });

    it('a miss the cache may not store, and a hit, store nothing', () => {
      expect(answered(200, whole, { status: 'bypass', reason: 'tools', lookupMs: 0 }).cacheSave).toBeUndefined();
      const hit = { answer: { kind: 'chat' }, storedAt: 1 };
      const r = answered(200, whole, { status: 'hit-exact', reason: undefined, hit, save, lookupMs: 2 });
      expect(r.cacheSave).toBeUndefined();
      expect(r.cache).toEqual({ hit: hit.answer, lookupMs: 2 });
    });
  });

  it('a text-to-speech request, whose body is not parsed: its text and instructions are its prompt, and its characters counted', () => {
    const acc = new ResponseAccounting(rt);
    acc.fixedPathRequest(tier('weak'), '/v1/audio/speech', false);
    acc.unreadRequestBody(Buffer.from('{"model":"tts","input":"héllo 👋",'), false);
    acc.unreadRequestBody(Buffer.from('"instructions":"cheerful","voice":"alloy"}'), true);
    const r = recordOf(acc);
    expect(r.prompt()).toEqual({ texts: ['héllo 👋', 'cheerful'], extra: '', chat: false, uncountedTokens: 0 });
    expect(r.inputCharacters).toBe(7); // code points: the emoji is one
    const plain = new ResponseAccounting(rt);
    plain.fixedPathRequest(tier('weak'), '/v1/audio/speech', false);
    plain.unreadRequestBody(Buffer.from('{"model":"tts","input":"hi","voice":"alloy"}'), true);
    expect(recordOf(plain).prompt()).toMatchObject({ texts: ['hi'] });
    // Another path routed without parsing keeps nothing of its body, whatever it holds.
    const other = new ResponseAccounting(rt);
    other.fixedPathRequest(tier('weak'), '/v1/rerank', false);
    other.unreadRequestBody(Buffer.from('{"input":"not spoken"}'), true);
    const o = recordOf(other);
    expect([o.prompt(), o.inputCharacters]).toEqual([undefined, 0]);
  });

  it('a Responses API answer names its id and the items it sealed once the body shows them; nothing before the response', () => {
    const acc = new ResponseAccounting(rt);
    expect([acc.responseId(), acc.takeSealedItems()]).toEqual([undefined, undefined]);
    acc.responseHeaders(headers(200, 'application/json'), false);
    acc.responseBody(Buffer.from(JSON.stringify({ id: 'resp_1', object: 'response', model: 'weak-model', status: 'completed', output: [{ type: 'reasoning', id: 'rs_1', encrypted_content: 'gAAA', summary: [] }], usage: { input_tokens: 2, output_tokens: 1, total_tokens: 3 } })), true);
    expect(acc.responseId()).toBe('resp_1');
    expect(acc.takeSealedItems()).toEqual(['gAAA']); // named by what it seals (sealedItemId hashes it)
    expect(acc.takeSealedItems()).toBeUndefined(); // taken
  });

  it('a path routed without parsing its body: the backend\'s timings start once the request is all passed on', () => {
    const timed = (send: (acc: ResponseAccounting) => void) => {
      const acc = new ResponseAccounting(rt);
      send(acc);
      acc.responseHeaders(headers(200, 'application/json'), false);
      acc.responseBody(Buffer.from('{}'), true);
      return recordOf(acc).timings;
    };
    // Its last piece passed on, or its headers when it has no body.
    const withBody = timed((acc) => {
      acc.fixedPathRequest(tier('weak'), '/v1/embeddings', false);
      acc.unreadRequestBody(Buffer.from('{"input":'), false);
      acc.unreadRequestBody(Buffer.from('"a"}'), true);
    });
    const bodiless = timed((acc) => acc.fixedPathRequest(tier('weak'), '/v1/models', true));
    for (const t of [withBody, bodiless]) {
      expect(t.ttftMs).not.toBeNull();
      expect(t.ttftMs as number).toBeGreaterThanOrEqual(0);
      expect(t.ttftMs as number).toBeLessThanOrEqual(t.providerMs as number);
      expect(t.providerMs as number).toBeLessThanOrEqual(t.totalMs);
    }
    // A body whose end never came (the stream was cut): nothing to time from.
    const cut = timed((acc) => {
      acc.fixedPathRequest(tier('weak'), '/v1/embeddings', false);
      acc.unreadRequestBody(Buffer.from('{"input":'), false);
    });
    expect([cut.ttftMs, cut.providerMs]).toEqual([null, null]);
  });
});
