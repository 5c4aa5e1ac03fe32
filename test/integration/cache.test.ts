// The exact response cache through the Envoy-faithful client: tenant isolation, replay in the client's wire
// format whatever was stored, what is never stored, TTL, namespace bumps, request directives, limits, the
// ledger row of a hit, and a Redis store that goes away.
import { gzipSync } from 'node:zlib';
import { createServer, connect, type AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/auth/api-keys.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { RECOMMENDED_FILTER, chatRequestHeaders, getHeader, type ExtProcSession } from '../../src/dev/envoy-client.js';
import type { Outcome } from '../../src/dev/envoy-filter.js';
import type { LedgerRow } from '../../src/ledger/row.js';
import { RedisServer } from '../helpers/redis-server.js';
import { jsonBody, metricValue, minuteAlignedClock, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

const KEY_A = 'tg-cache-a-0123456789abcdef';
const KEY_B = 'tg-cache-b-0123456789abcdef';
const USAGE = { prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500 };

function config(extra: ConfigInput = {}): ConfigInput {
  return {
    auth: { mode: 'api_key', keys: [{ id: 'a', sha256: sha256Hex(KEY_A), tenant: 'acme' }, { id: 'b', sha256: sha256Hex(KEY_B), tenant: 'globex' }] },
    tenants: { '*': { cache: { mode: 'exact', ttlSeconds: 60 } } },
    ...extra,
  };
}

const running: TestTiergate[] = [];
async function start(extra: ConfigInput = {}, now?: () => number): Promise<TestTiergate> {
  const t = await startTiergate(config(extra), {}, now ? { now } : {});
  running.push(t);
  return t;
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((t) => t.stop()));
});

interface Ask {
  key?: string;
  id?: string;
  content?: string;
  stream?: boolean;
  includeUsage?: boolean;
  headers?: Array<[string, string]>;
  extra?: Record<string, unknown>;
}

async function ask(t: TestTiergate, a: Ask = {}): Promise<{ s: ExtProcSession; o: Outcome }> {
  const s = t.pool.open();
  const headers: Array<[string, string]> = [['authorization', `Bearer ${a.key ?? KEY_A}`], ['x-request-id', a.id ?? 'r'], ...(a.headers ?? [])];
  const h = await s.sendRequestHeaders(chatRequestHeaders(headers), false);
  if (h.kind !== 'continue') return { s, o: h };
  const body: Record<string, unknown> = { model: 'auto', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: a.content ?? 'What is the capital of France?' }], ...a.extra };
  if (a.stream) body.stream = true;
  if (a.includeUsage) body.stream_options = { include_usage: true };
  return { s, o: await s.sendRequestBody(jsonBody(body)) };
}

const completion = (content: string, finish = 'stop', model = 'weak-model') => ({
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1,
  model,
  choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: finish }],
  usage: USAGE,
});

async function answerJson(s: ExtProcSession, body: unknown, status = 200): Promise<void> {
  await s.sendResponseHeaders([[':status', String(status)], ['content-type', 'application/json']], false);
  await s.sendResponseBody(jsonBody(body), true);
  s.close();
}

const sse = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
const chunk = (delta: Record<string, unknown>, finish: string | null = null) => sse({ id: 'c', object: 'chat.completion.chunk', model: 'weak-model', choices: [{ index: 0, delta, finish_reason: finish }] });
async function answerSse(s: ExtProcSession, parts: string[], opts: { done?: boolean; close?: boolean } = {}): Promise<void> {
  await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
  const all = [...parts, ...(opts.done === false ? [] : ['data: [DONE]\n\n'])];
  for (let i = 0; i < all.length; i++) await s.sendResponseBody(Buffer.from(all[i] as string), i === all.length - 1);
  if (opts.close !== false) s.close();
}

function immediate(o: Outcome) {
  if (o.kind !== 'immediate') throw new Error(`expected a local reply, got ${o.kind}`);
  return o;
}

/** A store's write may land after the answer (Redis): wait for it to have been counted. */
async function stored(t: TestTiergate, n: number): Promise<void> {
  await expect.poll(() => metricValue(t.app, 'tiergate_cache_writes_total', { result: 'stored' })).toBe(n);
}

async function rowsById(t: TestTiergate, n: number): Promise<Map<string, LedgerRow>> {
  let rows: LedgerRow[] = [];
  await expect.poll(async () => (rows = await t.rows()).length).toBe(n);
  return new Map(rows.map((r) => [r.request_id, r]));
}

describe('exact cache', () => {
  it('a second identical request is answered by tiergate; the same prompt from another tenant never is', async () => {
    const t = await start();
    const first = await ask(t, { id: 'a1' });
    expect(first.o.kind).toBe('continue');
    await answerJson(first.s, completion('Paris.'));
    await stored(t, 1);

    const again = immediate((await ask(t, { id: 'a2' })).o);
    expect(again.status).toBe(200);
    expect(getHeader(again.headers, 'x-cache')).toBe('hit-exact');
    expect(getHeader(again.headers, 'content-type')).toBe('application/json');
    expect(getHeader(again.headers, 'x-llm-tier')).toBe('weak');
    expect(getHeader(again.headers, 'x-gateway-model-resolved')).toBe('weak-model');
    expect(getHeader(again.headers, 'x-request-id')).toBe('a2'); // this request's, not the one that was stored
    const body = JSON.parse(again.body.toString());
    expect(body).toMatchObject({ object: 'chat.completion', model: 'weak-model', choices: [{ index: 0, message: { role: 'assistant', content: 'Paris.' }, finish_reason: 'stop' }], usage: USAGE });
    expect(body.id).toMatch(/^chatcmpl-/);

    const other = await ask(t, { key: KEY_B, id: 'b1' });
    expect(other.o.kind).toBe('continue');
    await answerJson(other.s, completion('Paris, for globex.'));
    expect(getHeader(other.s.responseHeaders, 'x-cache')).toBe('miss');
    await stored(t, 2);
    // Each tenant now gets its own answer.
    expect(JSON.parse(immediate((await ask(t, { key: KEY_B, id: 'b2' })).o).body.toString()).choices[0].message.content).toBe('Paris, for globex.');
    expect(JSON.parse(immediate((await ask(t, { id: 'a3' })).o).body.toString()).choices[0].message.content).toBe('Paris.');
  });

  it('an answer is stored before its end reaches the client: the same request sent at once is a hit (JSON, SSE, trailers)', async () => {
    // The ledger's batch (which builds the row) is held back for the whole test, and the first stream stays
    // open: what a client sees the moment its answer ends, before Envoy closes the side stream or the row is built.
    const t = await start({ ledger: { lingerMs: 60_000 } });
    const first = await ask(t, { id: 'at-once-1' });
    await first.s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await first.s.sendResponseBody(jsonBody(completion('Paris.')), true);
    const hit = await ask(t, { id: 'at-once-2' });
    const again = immediate(hit.o);
    hit.s.close();
    expect(getHeader(again.headers, 'x-cache')).toBe('hit-exact');
    expect(JSON.parse(again.body.toString()).choices[0].message.content).toBe('Paris.');
    first.s.close();

    const streamed = await ask(t, { id: 'at-once-3', content: 'And of Italy?', stream: true });
    await answerSse(streamed.s, [chunk({ role: 'assistant', content: 'Rome.' }), chunk({}, 'stop')], { close: false });
    const hit2 = await ask(t, { id: 'at-once-4', content: 'And of Italy?' });
    const replayed = immediate(hit2.o);
    hit2.s.close();
    expect(getHeader(replayed.headers, 'x-cache')).toBe('hit-exact');
    expect(JSON.parse(replayed.body.toString()).choices[0].message.content).toBe('Rome.');
    streamed.s.close();

    // An answer that ends with trailers (an HTTP/2 backend's, Envoy sending them): stored at the trailers.
    const trailed = t.pool.open({ ...RECOMMENDED_FILTER, processingMode: { ...RECOMMENDED_FILTER.processingMode, responseTrailerMode: 'SEND' } });
    await trailed.sendRequestHeaders(chatRequestHeaders([['authorization', `Bearer ${KEY_A}`], ['x-request-id', 'at-once-5']]), false);
    await trailed.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'And of Spain?' }] }));
    await trailed.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await trailed.sendResponseBody(jsonBody(completion('Madrid.')), false);
    await trailed.sendResponseTrailers([['x-backend-done', '1']]);
    const hit3 = t.pool.open();
    await hit3.sendRequestHeaders(chatRequestHeaders([['authorization', `Bearer ${KEY_A}`], ['x-request-id', 'at-once-6']]), false);
    const third = immediate(await hit3.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'And of Spain?' }] })));
    expect(getHeader(third.headers, 'x-cache')).toBe('hit-exact');
    expect(JSON.parse(third.body.toString()).choices[0].message.content).toBe('Madrid.');
    hit3.close();
    trailed.close();
    // Stored once each: their rows, built once the batch runs, do not store them again.
    const rows = await rowsById(t, 6);
    expect(rows.get('at-once-2')).toMatchObject({ cache_hit: true });
    expect(await metricValue(t.app, 'tiergate_cache_writes_total', { result: 'stored' })).toBe(3);
  });

  it('a gzip-compressed answer is stored, and replayed plain (no content-encoding on the hit)', async () => {
    const t = await start();
    const first = await ask(t, { id: 'gz1' });
    await first.s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json'], ['content-encoding', 'gzip']], false);
    await first.s.sendResponseBody(gzipSync(jsonBody(completion('Paris, compressed.'))), true);
    first.s.close();
    await stored(t, 1);
    const hit = immediate((await ask(t, { id: 'gz2' })).o);
    expect(getHeader(hit.headers, 'x-cache')).toBe('hit-exact');
    expect(getHeader(hit.headers, 'content-encoding')).toBeUndefined();
    expect(JSON.parse(hit.body.toString()).choices[0].message.content).toBe('Paris, compressed.');
  });

  it("an answer whose usage carried a deeply nested value is replayed with its counts, not a 500 on every repeat", async () => {
    const t = await start();
    const first = await ask(t, { id: 'deep1' });
    await first.s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    const usage = `{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    await first.s.sendResponseBody(Buffer.from(JSON.stringify(completion('Paris.')).replace(JSON.stringify(USAGE), usage)), true);
    first.s.close();
    await stored(t, 1);
    const hit = immediate((await ask(t, { id: 'deep2' })).o);
    expect(hit.status).toBe(200);
    expect(JSON.parse(hit.body.toString())).toMatchObject({ choices: [{ message: { content: 'Paris.' } }], usage: USAGE });
    expect(await metricValue(t.app, 'tiergate_extproc_processing_errors_total')).toBe(0);
  });

  it('the first response says x-cache: miss; a different question, system prompt or parameter is a different entry', async () => {
    const t = await start();
    const first = await ask(t);
    await answerJson(first.s, completion('Paris.'));
    expect(getHeader(first.s.responseHeaders, 'x-cache')).toBe('miss');
    await stored(t, 1);
    for (const a of [{ content: 'What is the capital of Spain?' }, { extra: { temperature: 0 } }, { extra: { messages: [{ role: 'system', content: 'Be verbose.' }, { role: 'user', content: 'What is the capital of France?' }] } }]) {
      const { s, o } = await ask(t, a);
      expect(o.kind).toBe('continue');
      s.close();
    }
  });

  it("vLLM's own parameters are part of the key: another guided_choice or thinking switch is another entry", async () => {
    const t = await start();
    const labels = { guided_choice: ['positive', 'negative'], chat_template_kwargs: { enable_thinking: false } };
    const first = await ask(t, { content: 'Classify: great product', extra: labels });
    await answerJson(first.s, completion('positive'));
    await stored(t, 1);
    expect(getHeader(immediate((await ask(t, { content: 'Classify: great product', extra: labels })).o).headers, 'x-cache')).toBe('hit-exact');
    // Before 2026-12-03 each of these got "positive" from the cache, whatever choices it allowed.
    for (const extra of [{ ...labels, guided_choice: ['A', 'B'] }, { ...labels, chat_template_kwargs: { enable_thinking: true } }, { guided_choice: labels.guided_choice }]) {
      const { s, o } = await ask(t, { content: 'Classify: great product', extra });
      expect(o.kind).toBe('continue');
      s.close();
    }
  });

  it("a reasoning model's thinking is stored with the answer and comes back on a hit, in either wire format", async () => {
    const t = await start();
    const first = await ask(t, { content: 'think then answer', stream: true });
    await answerSse(first.s, [chunk({ role: 'assistant', content: '' }), chunk({ reasoning: 'France; its capital ' }), chunk({ reasoning: 'is Paris.' }), chunk({ content: 'Paris.' }), chunk({}, 'stop')]);
    await stored(t, 1);
    const json = JSON.parse(immediate((await ask(t, { content: 'think then answer' })).o).body.toString());
    expect(json.choices[0].message).toMatchObject({ content: 'Paris.', reasoning: 'France; its capital is Paris.' });
    const text = immediate((await ask(t, { content: 'think then answer', stream: true })).o).body.toString();
    const deltas = text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)).choices[0].delta);
    expect(deltas.map((d) => d.reasoning ?? '').join('')).toBe('France; its capital is Paris.');
    expect(deltas.findIndex((d) => d.reasoning)).toBeLessThan(deltas.findIndex((d) => d.content === 'Paris.'));
  });

  it('replays a stored JSON answer as SSE (with the usage chunk when asked) and a stored SSE answer as JSON', async () => {
    const t = await start();
    const j = await ask(t, { content: 'json first' });
    await answerJson(j.s, completion('Stored from JSON.'));
    const s = await ask(t, { content: 'sse first', stream: true });
    await answerSse(s.s, [chunk({ role: 'assistant', content: '' }), chunk({ content: 'Stored ' }), chunk({ content: 'from SSE.' }), chunk({}, 'stop'), sse({ id: 'c', object: 'chat.completion.chunk', model: 'weak-model', choices: [], usage: USAGE })]);
    await stored(t, 2);

    const asSse = immediate((await ask(t, { content: 'json first', stream: true, includeUsage: true })).o);
    expect(getHeader(asSse.headers, 'content-type')).toBe('text/event-stream');
    const text = asSse.body.toString();
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    const events = text.split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? null).join('')).toBe('Stored from JSON.');
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: USAGE });
    expect(chunks.slice(0, -1).every((c) => c.usage === null && c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks.filter((c) => c.choices[0]?.finish_reason === 'stop')).toHaveLength(1);

    const noUsage = immediate((await ask(t, { content: 'json first', stream: true })).o).body.toString();
    expect(noUsage).not.toContain('"usage"');

    const asJson = immediate((await ask(t, { content: 'sse first' })).o);
    expect(JSON.parse(asJson.body.toString())).toMatchObject({ object: 'chat.completion', choices: [{ message: { content: 'Stored from SSE.' }, finish_reason: 'stop' }], usage: USAGE });
  });

  it('never stores errors, incomplete or cut streams, or answers that did not finish normally', async () => {
    const t = await start();
    const cases: Array<[string, (s: ExtProcSession) => Promise<void>]> = [
      ['500', (s) => answerJson(s, { error: { message: 'boom', type: 'server_error' } }, 500)],
      ['error body with 200', (s) => answerJson(s, { error: { message: 'boom', type: 'server_error', code: 'overloaded' } })],
      ['content_filter', (s) => answerJson(s, completion('…', 'content_filter'))],
      ['tool_calls', (s) => answerJson(s, { ...completion('x', 'tool_calls'), choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] }, finish_reason: 'tool_calls' }] })],
      ['SSE without [DONE]', (s) => answerSse(s, [chunk({ content: 'half' }), chunk({}, 'stop')], { done: false })],
      ['SSE with an error event', (s) => answerSse(s, [chunk({ content: 'half' }), sse({ error: { message: 'upstream died', code: 'internal' } })])],
      ['SSE with no finish reason', (s) => answerSse(s, [chunk({ content: 'half' })])],
      [
        'stream cut before the end',
        async (s) => {
          await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
          await s.sendResponseBody(Buffer.from(chunk({ content: 'partial' })), false);
          s.cancel();
        },
      ],
    ];
    for (const [name, respond] of cases) {
      const { s, o } = await ask(t, { content: `case ${name}`, id: name });
      expect(o.kind).toBe('continue');
      await respond(s);
    }
    await expect.poll(() => metricValue(t.app, 'tiergate_cache_writes_total', { result: 'not_storable' })).toBe(cases.length);
    expect(await metricValue(t.app, 'tiergate_cache_writes_total', { result: 'stored' })).toBe(0);
    for (const [name] of cases) {
      const { s, o } = await ask(t, { content: `case ${name}` });
      expect(o.kind, name).toBe('continue');
      s.close();
    }
  });

  it('the memory store keeps its answers within cache.maxBytes: a long answer pushes out the oldest', async () => {
    // Each answer of 20,000 characters is estimated at ~41 KB, so 100 KB holds two of them and not three.
    const t = await start({ cache: { maxBytes: 100_000 } });
    const questions = ['first', 'second', 'third'];
    for (const [i, q] of questions.entries()) {
      const r = await ask(t, { id: `q${i}`, content: `Tell me about the ${q} thing.` });
      expect(r.o.kind).toBe('continue');
      await answerJson(r.s, completion(`${q} `.repeat(4000).slice(0, 20_000)));
      await stored(t, i + 1);
    }
    const first = await ask(t, { id: 'again-0', content: 'Tell me about the first thing.' });
    expect(first.o.kind).toBe('continue');
    first.s.close();
    for (const q of ['second', 'third']) {
      const hit = immediate((await ask(t, { id: `again-${q}`, content: `Tell me about the ${q} thing.` })).o);
      expect(JSON.parse(hit.body.toString()).choices[0].message.content).toHaveLength(20_000);
    }
  });

  it("one tenant filling the memory store takes its own entries out, not another tenant's", async () => {
    const t = await start({ cache: { maxEntries: 4 } });
    const acme = await ask(t, { id: 'acme-0', content: 'What is the capital of Peru?' });
    await answerJson(acme.s, completion('Lima.'));
    await stored(t, 1);
    for (let i = 0; i < 8; i++) {
      const r = await ask(t, { key: KEY_B, id: `globex-${i}`, content: `Question number ${i}?` });
      expect(r.o.kind).toBe('continue');
      await answerJson(r.s, completion(`Answer ${i}.`));
      await stored(t, i + 2);
    }
    expect(await metricValue(t.app, 'tiergate_cache_evictions_total')).toBe(5); // 9 stored, 4 kept
    const again = immediate((await ask(t, { id: 'acme-again', content: 'What is the capital of Peru?' })).o);
    expect(JSON.parse(again.body.toString()).choices[0].message.content).toBe('Lima.');
    // globex kept its three most recent.
    const old = await ask(t, { key: KEY_B, id: 'globex-again-4', content: 'Question number 4?' });
    expect(old.o.kind).toBe('continue');
    old.s.close();
    expect(immediate((await ask(t, { key: KEY_B, id: 'globex-again-7', content: 'Question number 7?' })).o).status).toBe(200);
  });

  it('entries expire after their TTL (fake clock)', async () => {
    let now = Date.parse('2026-11-22T10:00:00Z');
    const t = await start({}, () => now);
    const first = await ask(t);
    await answerJson(first.s, completion('Paris.'));
    await stored(t, 1);
    now += 59_000;
    expect(immediate((await ask(t)).o).status).toBe(200);
    now += 2_000;
    const late = await ask(t);
    expect(late.o.kind).toBe('continue');
    late.s.close();
  });

  it('bumping the tenant namespace (a config reload) invalidates its entries, and only its own', async () => {
    const t = await start();
    for (const key of [KEY_A, KEY_B]) {
      const first = await ask(t, { key });
      await answerJson(first.s, completion(`answer for ${key}`));
    }
    await stored(t, 2);
    const reloaded = await t.app.config.apply(
      `auth: { mode: api_key, keys: [{ id: a, sha256: ${sha256Hex(KEY_A)}, tenant: acme }, { id: b, sha256: ${sha256Hex(KEY_B)}, tenant: globex }] }\n` +
        `tenants: { "*": { cache: { mode: exact, ttlSeconds: 60 } }, acme: { cache: { namespace: kb-2026-11-22 } } }\n`,
      {},
      t.app.reloadListener,
    );
    expect(reloaded).toBe(true);
    const a = await ask(t, { key: KEY_A });
    expect(a.o.kind).toBe('continue');
    a.s.close();
    expect(immediate((await ask(t, { key: KEY_B })).o).status).toBe(200);
  });

  it('honours cache-control: no-cache (fresh answer, stored) and no-store (neither read nor written)', async () => {
    const t = await start();
    const first = await ask(t, { id: 'one' });
    await answerJson(first.s, completion('old'));
    await stored(t, 1);
    const fresh = await ask(t, { id: 'no-cache', headers: [['cache-control', 'no-cache']] });
    expect(fresh.o.kind).toBe('continue');
    await answerJson(fresh.s, completion('new'));
    expect(getHeader(fresh.s.responseHeaders, 'x-cache')).toBe('bypass');
    await stored(t, 2);
    expect(JSON.parse(immediate((await ask(t)).o).body.toString()).choices[0].message.content).toBe('new');
    const secret = await ask(t, { content: 'private question', headers: [['cache-control', 'no-store']] });
    await answerJson(secret.s, completion('private answer'));
    const after = await ask(t, { content: 'private question' });
    expect(after.o.kind).toBe('continue');
    after.s.close();
    expect(await metricValue(t.app, 'tiergate_cache_writes_total', { result: 'stored' })).toBe(2);
  });

  it('requests with tools are not cached unless the policy allows it; off means no x-cache at all', async () => {
    const t = await start({ tenants: { '*': { cache: { mode: 'exact' } }, globex: { cache: { mode: 'off' } } } });
    const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }];
    const withTools = await ask(t, { extra: { tools } });
    await answerJson(withTools.s, completion('no tool needed'));
    expect(getHeader(withTools.s.responseHeaders, 'x-cache')).toBe('bypass');
    const again = await ask(t, { extra: { tools } });
    expect(again.o.kind).toBe('continue');
    again.s.close();
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { result: 'bypass', reason: 'tools' })).toBe(2);
    const off = await ask(t, { key: KEY_B });
    await answerJson(off.s, completion('x'));
    expect(getHeader(off.s.responseHeaders, 'x-cache')).toBeUndefined();
  });

  it('the ledger row of a hit: cache_hit, status cache_hit, cost 0, saved_usd what the answer cost, lookup time', async () => {
    const t = await start();
    const first = await ask(t, { id: 'miss' });
    await answerJson(first.s, completion('Paris.'));
    await stored(t, 1);
    const hit = await ask(t, { id: 'hit' });
    immediate(hit.o);
    hit.s.close();
    const rows = await rowsById(t, 2);
    expect(rows.get('miss')).toMatchObject({ cache_hit: false, status: 'success', usage: { total_tokens: 1500 }, saved_usd: null, finish_reason: 'stop' });
    // The lookup's own time: part of the request's, never more.
    for (const id of ['miss', 'hit']) {
      const l = rows.get(id)?.latency_ms;
      expect(l?.cache_lookup).toBeGreaterThanOrEqual(0);
      expect(l?.cache_lookup).toBeLessThanOrEqual(l?.total as number);
    }
    // weak-model: $0.10 / $0.40 per million → 1000 × 0.1e-6 + 500 × 0.4e-6 = $0.0003
    expect(rows.get('hit')).toMatchObject({
      cache_hit: true,
      status: 'cache_hit',
      http_status: 200,
      tier: 'weak',
      model_resolved: 'weak-model',
      usage: { input_tokens: 0, output_tokens: 0, total_tokens: 0 },
      usage_source: 'none',
      cost_usd: { total: 0 },
      saved_usd: 0.0003,
      error_code: null,
      // The stored answer's reason is the miss's row's; nothing ended here.
      finish_reason: null,
    });
  });

  it('hits count against requests per minute but not against token budgets', async () => {
    // On the wall clock a minute boundary mid-test would reset the request count.
    const t = await start({ tenants: { '*': { cache: { mode: 'exact' }, requestsPerMinute: 4, dailyTokenBudget: 2000 } } }, minuteAlignedClock());
    const first = await ask(t);
    await answerJson(first.s, completion('Paris.')); // reported usage 1500 of the 2000-token day
    await stored(t, 1);
    // A miss now would reserve ~1,040 tokens and be refused; the hits are served.
    const other = immediate((await ask(t, { content: 'a new question' })).o);
    expect([other.status, JSON.parse(other.body.toString()).error.code]).toEqual([429, 'daily_token_budget']);
    const hits = [immediate((await ask(t)).o), immediate((await ask(t)).o)];
    expect(hits.map((h) => [h.status, getHeader(h.headers, 'x-cache')])).toEqual([
      [200, 'hit-exact'],
      [200, 'hit-exact'],
    ]);
    // Counted: the first request and two hits (the refused one reserved nothing, admission is all or nothing).
    expect(getHeader(hits[1]!.headers, 'x-ratelimit-remaining-requests')).toBe('1');
    expect(getHeader(immediate((await ask(t)).o).headers, 'x-ratelimit-remaining-requests')).toBe('0');
    const over = immediate((await ask(t)).o);
    expect([over.status, JSON.parse(over.body.toString()).error.code]).toEqual([429, 'requests_per_minute']);
  });

  it('a hit takes no concurrent-request slot: it holds no backend, and is answered while every slot is held', async () => {
    const t = await start({ tenants: { '*': { cache: { mode: 'exact' }, maxConcurrentRequests: 1 } } });
    const first = await ask(t);
    await answerJson(first.s, completion('Paris.'));
    await stored(t, 1);
    const other = await ask(t, { content: 'a new question' });
    expect(other.o.kind).toBe('continue'); // holds the one slot
    const refused = immediate((await ask(t, { content: 'a third question' })).o);
    expect([refused.status, JSON.parse(refused.body.toString()).error.code]).toEqual([429, 'concurrent_requests']);
    const hit = immediate((await ask(t)).o);
    expect([hit.status, getHeader(hit.headers, 'x-cache')]).toEqual([200, 'hit-exact']);
    other.s.close();
  });
});

describe('exact cache on Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(async () => redis.down());

  it('the same request sent the moment its answer ends is a hit: the write was sent before the end was passed on', async () => {
    // A lookup deadline no loaded runner reaches: a late lookup is a miss by design, and not what this is about.
    const t = await start({ cache: { store: 'redis', redis: { url: redis.url, keyPrefix: `once${Date.now()}:` }, lookupDeadlineMs: 5000 }, ledger: { lingerMs: 60_000 } });
    await expect.poll(() => (t.app.cache.store as unknown as { redis: { status: string } }).redis.status).toBe('ready');
    const first = await ask(t, { id: 'r-once-1' });
    await first.s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await first.s.sendResponseBody(jsonBody(completion('Paris.')), true);
    // On the same connection, Redis answers the lookup after the write it received first.
    const hit = await ask(t, { id: 'r-once-2' });
    expect(getHeader(immediate(hit.o).headers, 'x-cache')).toBe('hit-exact');
    hit.s.close();
    first.s.close();
  });

  it('a new instance reports serving once its cache store is connected: its first request is a lookup, not a bypass', async () => {
    // A Redis 30 ms away on a new connection (a proxy in front of it holds each one back that long). Before:
    // the instance served at once, its first requests found the connection not ready, and skipped the cache.
    const proxy = createServer((client) => {
      client.pause();
      setTimeout(() => {
        const upstream = connect(redis.port, '127.0.0.1');
        client.pipe(upstream).pipe(client);
        client.resume();
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
      }, 30);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const url = `redis://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const t = await start({ cache: { store: 'redis' as const, redis: { url, keyPrefix: `first${Date.now()}:` } } });
      const { s } = await ask(t, { id: 'first' });
      await answerJson(s, completion('Paris.'));
      expect(getHeader(s.responseHeaders, 'x-cache')).toBe('miss');
      expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { reason: 'store_error' })).toBe(0);
      await t.stop();
    } finally {
      proxy.close();
    }
  });

  it("cache.redis.maxEntriesPerTenant: a tenant's new answers push out its own oldest, never another tenant's", async () => {
    const t = await start({ cache: { store: 'redis' as const, redis: { url: redis.url, keyPrefix: `cap${Date.now()}:`, maxEntriesPerTenant: 2 } } });
    const xCache = async (key: string, content: string) => {
      const { s, o } = await ask(t, { key, content });
      s.close();
      return o.kind === 'immediate' ? getHeader(o.headers, 'x-cache') : 'miss';
    };
    const globex = await ask(t, { key: KEY_B, content: 'What is the capital of Spain?' });
    await answerJson(globex.s, completion('Madrid.'));
    const questions = ['What is the capital of France?', 'What is the capital of Italy?', 'What is the capital of Peru?'];
    for (const [i, content] of questions.entries()) {
      const r = await ask(t, { content });
      await answerJson(r.s, completion(`answer ${i}`));
      await stored(t, i + 2); // one at a time: the order they are stored in is the order they make room
    }
    // Polled: a lookup past the 30 ms deadline on a loaded runner is a miss by design.
    await expect.poll(() => xCache(KEY_A, questions[2] as string)).toBe('hit-exact');
    await expect.poll(() => xCache(KEY_A, questions[1] as string)).toBe('hit-exact');
    await expect.poll(() => xCache(KEY_B, 'What is the capital of Spain?')).toBe('hit-exact');
    expect(await xCache(KEY_A, questions[0] as string)).toBe('miss');
    expect(await metricValue(t.app, 'tiergate_cache_evictions_total')).toBe(1);
  });

  it('an entry stored by one instance is served by another; Redis down → x-cache: bypass and the request goes upstream', async () => {
    const cache = { store: 'redis' as const, redis: { url: redis.url, keyPrefix: `t${Date.now()}:` } };
    const one = await start({ cache });
    const two = await start({ cache });
    const first = await ask(one);
    await answerJson(first.s, completion('Paris.'));
    await stored(one, 1);
    // Polled: the second instance's first lookup may still be connecting, or pass the 30 ms lookup deadline on a
    // loaded runner; either is a miss by design, and this test is about the entry being shared.
    await expect
      .poll(async () => {
        const { s, o } = await ask(two);
        s.close();
        return o.kind === 'immediate' ? getHeader(o.headers, 'x-cache') : o.kind;
      })
      .toBe('hit-exact');

    await redis.down();
    const during = await ask(two, { id: 'during' });
    expect(during.o.kind).toBe('continue');
    await answerJson(during.s, completion('Paris, live.'));
    expect(getHeader(during.s.responseHeaders, 'x-cache')).toBe('bypass');
    expect(await metricValue(two.app, 'tiergate_cache_lookups_total', { result: 'bypass', reason: 'store_error' })).toBeGreaterThanOrEqual(1);
    await redis.up();
  });
});
