// The mock backends answer the request fields an app tries first against the local stack, as vLLM and OpenAI do:
// `n` choices, a completions batch, token caps (finish_reason "length", an incomplete response), and the 400s for
// counts out of range. Driven over real HTTP, without tiergate in between.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMockBackend } from '../../src/dev/mock-backend.js';
import { capped, mockTokenCount } from '../../src/dev/mock-wire.js';

let server: Server;
let base: string;
beforeAll(async () => {
  server = createMockBackend({ name: 'weak', servedModels: ['weak-model'] });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

const GREETING = 'Hello from the weak backend (model weak-model). You sent 1 message.';
const hi = [{ role: 'user', content: 'Say hi' }];

async function post(path: string, body: Record<string, unknown>) {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

/** An SSE body's data events, parsed ([DONE] left out). */
async function events(path: string, body: Record<string, unknown>): Promise<Record<string, any>[]> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
  const text = await res.text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]')
    .map((l) => JSON.parse(l.slice(6)) as Record<string, any>);
}

describe('mock backend: n and completions batches', () => {
  it('chat with n: n choices, numbered, each billed as a completion, the prompt once', async () => {
    const one = (await post('/v1/chat/completions', { model: 'weak-model', messages: hi })).body;
    const three = (await post('/v1/chat/completions', { model: 'weak-model', messages: hi, n: 3 })).body;
    expect(three.choices.map((c: any) => [c.index, c.message.content, c.finish_reason])).toEqual([0, 1, 2].map((i) => [i, GREETING, 'stop']));
    expect(three.usage).toEqual({
      prompt_tokens: one.usage.prompt_tokens,
      completion_tokens: 3 * one.usage.completion_tokens,
      total_tokens: one.usage.prompt_tokens + 3 * one.usage.completion_tokens,
    });
  });

  it('a streamed chat with n: the choices take turns, each assembles to the whole answer, the usage chunk counts all', async () => {
    const chunks = await events('/v1/chat/completions', { model: 'weak-model', messages: hi, n: 2, stream_options: { include_usage: true } });
    const text = ['', ''];
    const finish: (string | null)[] = [null, null];
    for (const c of chunks) {
      for (const ch of c.choices) {
        text[ch.index] += ch.delta.content ?? '';
        if (ch.finish_reason) finish[ch.index] = ch.finish_reason;
      }
    }
    expect(text).toEqual([GREETING, GREETING]);
    expect(finish).toEqual(['stop', 'stop']);
    // Interleaved: the second chunk is choice 1's role, not choice 0's first word.
    expect(chunks.slice(0, 2).map((c) => c.choices[0].index)).toEqual([0, 1]);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: 2 * mockTokenCount(GREETING) } });
  });

  it('a completions batch: n choices per prompt, prompt by prompt; token-id prompts bill one token per id', async () => {
    const batch = (await post('/v1/completions', { model: 'weak-model', prompt: ['Say hi', 'Say ho'], n: 2 })).body;
    expect(batch.choices.map((c: any) => c.index)).toEqual([0, 1, 2, 3]);
    expect(batch.usage).toMatchObject({ prompt_tokens: 2 * mockTokenCount('Say hi'), completion_tokens: 4 * mockTokenCount(GREETING) });
    const ids = (await post('/v1/completions', { model: 'weak-model', prompt: [[1, 2, 3], [4, 5, 6, 7, 8]] })).body;
    expect(ids.choices).toHaveLength(2);
    expect(ids.usage.prompt_tokens).toBe(8);
    expect((await post('/v1/completions', { model: 'weak-model', prompt: [1, 2, 3] })).body).toMatchObject({ choices: [{ index: 0 }], usage: { prompt_tokens: 3 } });
    const streamed = await events('/v1/completions', { model: 'weak-model', prompt: ['a', 'b', 'c'] });
    expect(new Set(streamed.flatMap((c) => c.choices.map((ch: any) => ch.index)))).toEqual(new Set([0, 1, 2]));
  });

  it.each([
    ['n: 0', { n: 0 }, 'n'],
    ['n above 128', { n: 129 }, 'n'],
    ['n as a string', { n: '2' }, 'n'],
    ['an empty batch', { prompt: [] }, 'prompt'],
  ])('%s → 400 naming the field', async (_name, extra, param) => {
    const r = await post('/v1/completions', { model: 'weak-model', prompt: 'Say hi', ...extra });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ type: 'invalid_request_error', param });
  });
});

describe('mock backend: token caps', () => {
  it('chat: max_tokens cuts the answer at that many tokens, finish_reason "length"; max_completion_tokens comes first', async () => {
    const cut = (await post('/v1/chat/completions', { model: 'weak-model', messages: hi, max_tokens: 3 })).body;
    expect(cut.choices[0]).toMatchObject({ message: { content: GREETING.slice(0, 12) }, finish_reason: 'length' });
    expect(cut.usage.completion_tokens).toBe(3);
    const first = (await post('/v1/chat/completions', { model: 'weak-model', messages: hi, max_tokens: 100, max_completion_tokens: 2 })).body;
    expect(first.choices[0].message.content).toBe(GREETING.slice(0, 8));
    // A cap the answer fits under changes nothing.
    const roomy = (await post('/v1/chat/completions', { model: 'weak-model', messages: hi, max_tokens: 1000 })).body;
    expect(roomy.choices[0]).toMatchObject({ message: { content: GREETING }, finish_reason: 'stop' });
  });

  it('a streamed chat cut short ends with finish_reason "length" and reports the capped count', async () => {
    const chunks = await events('/v1/chat/completions', { model: 'weak-model', messages: hi, max_tokens: 4, stream_options: { include_usage: true } });
    const text = chunks.flatMap((c) => c.choices.map((ch: any) => ch.delta.content ?? '')).join('');
    expect(text).toBe(GREETING.slice(0, 16));
    expect(chunks.at(-2)?.choices[0].finish_reason).toBe('length');
    expect(chunks.at(-1)?.usage.completion_tokens).toBe(4);
  });

  it("a forced tool call's arguments are cut as text is, with finish_reason \"length\"", async () => {
    const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
    const r = (await post('/v1/chat/completions', { model: 'weak-model', messages: hi, tools, tool_choice: 'required', max_tokens: 2 })).body;
    expect(r.choices[0].finish_reason).toBe('length');
    expect(r.choices[0].message.tool_calls[0].function.arguments).toBe('{"city":');
  });

  it('legacy completions: max_tokens cuts the text', async () => {
    const r = (await post('/v1/completions', { model: 'weak-model', prompt: 'Say hi', max_tokens: 1 })).body;
    expect(r.choices[0]).toMatchObject({ text: 'Hell', finish_reason: 'length' });
  });

  it('Responses API: max_output_tokens makes the response incomplete, and its stream ends in response.incomplete', async () => {
    const r = (await post('/v1/responses', { model: 'weak-model', input: 'Say hi', max_output_tokens: 2 })).body;
    expect(r).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, usage: { output_tokens: 2 } });
    expect(r.output[0]).toMatchObject({ status: 'incomplete', content: [{ text: 'Hello fr' }] });
    const whole = (await post('/v1/responses', { model: 'weak-model', input: 'Say hi' })).body;
    expect(whole).toMatchObject({ status: 'completed', incomplete_details: null });
    const streamed = await events('/v1/responses', { model: 'weak-model', input: 'Say hi', max_output_tokens: 2 });
    expect(streamed.at(-1)).toMatchObject({ type: 'response.incomplete', response: { status: 'incomplete', usage: { output_tokens: 2 } } });
    expect(streamed.map((e) => e.type)).not.toContain('response.completed');
  });

  it('Responses API: a continuation is billed for the conversation it continues, turn upon turn', async () => {
    const first = (await post('/v1/responses', { model: 'weak-model', input: 'Say hi '.repeat(100) })).body;
    const own = mockTokenCount(JSON.stringify('ok'));
    const second = (await post('/v1/responses', { model: 'weak-model', input: 'ok', previous_response_id: first.id })).body;
    expect(second.usage.input_tokens).toBe(first.usage.input_tokens + first.usage.output_tokens + own);
    const third = (await post('/v1/responses', { model: 'weak-model', input: 'ok', previous_response_id: second.id })).body;
    expect(third.usage.input_tokens).toBe(second.usage.input_tokens + second.usage.output_tokens + own);
    // A turn that continues nothing is billed for its own input only.
    expect((await post('/v1/responses', { model: 'weak-model', input: 'ok' })).body.usage.input_tokens).toBe(own);
  });

  it('capped() never ends on half a surrogate pair, and counts the cap as the tokens', () => {
    expect(capped('abc😀defgh', 1)).toEqual({ text: 'abc', tokens: 1, cut: true });
    expect(capped('abcd😀efgh', 1)).toEqual({ text: 'abcd', tokens: 1, cut: true });
    expect(capped('short', undefined)).toEqual({ text: 'short', tokens: 2, cut: false });
    expect(capped('short', 2)).toEqual({ text: 'short', tokens: 2, cut: false });
    expect(capped('short', 0)).toEqual({ text: '', tokens: 0, cut: true });
  });
});

describe('mock backend: paths and methods', () => {
  const call = async (method: string, path: string) => {
    const res = await fetch(`${base}${path}`, { method });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  it('GET /v1/models/{id}: a served model is its entry, any other a 404 model_not_found (not "invalid JSON")', async () => {
    expect(await call('GET', '/v1/models/weak-model')).toEqual({ status: 200, body: { id: 'weak-model', object: 'model', owned_by: 'tiergate-mock' } });
    expect(await call('GET', '/v1/models/auto')).toMatchObject({ status: 404, body: { error: { code: 'model_not_found', message: expect.stringContaining("'auto'") } } });
  });

  it('without a served list every name is served, so every name is retrievable', async () => {
    const open = createMockBackend({ name: 'strong' });
    await new Promise<void>((r) => open.listen(0, '127.0.0.1', r));
    try {
      const res = await fetch(`http://127.0.0.1:${(open.address() as AddressInfo).port}/v1/models/anything`);
      expect([res.status, await res.json()]).toEqual([200, { id: 'anything', object: 'model', owned_by: 'tiergate-mock' }]);
    } finally {
      open.close();
    }
  });

  it('an unknown path is a 404 naming it, a POST path asked another way a 405, each without reading a body', async () => {
    expect(await call('GET', '/v1/nothing')).toMatchObject({ status: 404, body: { error: { message: 'no route GET /v1/nothing' } } });
    expect(await call('POST', '/v1/models')).toMatchObject({ status: 404, body: { error: { message: 'no route POST /v1/models' } } });
    for (const path of ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses']) {
      expect(await call('GET', path)).toMatchObject({ status: 405, body: { error: { code: 'method_not_allowed' } } });
    }
  });
});

describe('mock backend: Responses API events', () => {
  it("a streamed text answer opens its item and its part before the deltas and closes both after, as OpenAI's does", async () => {
    const types = (await events('/v1/responses', { model: 'weak-model', input: 'Say hi' })).map((e) => e.type);
    const deltas = types.filter((t) => t === 'response.output_text.delta').length;
    expect(deltas).toBeGreaterThan(1);
    expect(types).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      ...Array<string>(deltas).fill('response.output_text.delta'),
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
  });

  it('the done events carry the whole text, and sequence numbers count up from 0', async () => {
    const all = await events('/v1/responses', { model: 'weak-model', input: 'Say hi' });
    const text = all.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
    expect(all.find((e) => e.type === 'response.output_text.done')).toMatchObject({ item_id: all[2]?.item.id, content_index: 0, text });
    expect(all.find((e) => e.type === 'response.content_part.done')?.part).toEqual({ type: 'output_text', text, annotations: [] });
    expect(all.map((e) => e.sequence_number)).toEqual(all.map((_, i) => i));
  });
});

describe('mock backend: conversations and input items (the Conversations API, as OpenAI keeps them)', () => {
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const ids = (list: Record<string, any>) => (list.data as Array<{ id: string }>).map((i) => i.id);

  it('a conversation is created with its metadata and items, shown without them, updated, and deleted', async () => {
    const created = await call('POST', '/v1/conversations', { metadata: { topic: 'trip' }, items: [{ type: 'message', role: 'user', content: 'Plan a trip' }] });
    expect(created).toMatchObject({ status: 200, body: { id: expect.stringMatching(/^conv_mock_weak_\d+$/), object: 'conversation', metadata: { topic: 'trip' } } });
    const id = created.body.id as string;
    expect(created.body).not.toHaveProperty('items');
    expect(Math.abs(created.body.created_at - Date.now() / 1000)).toBeLessThan(60);
    expect(await call('GET', `/v1/conversations/${id}`)).toEqual(created);
    const updated = await call('POST', `/v1/conversations/${id}`, { metadata: { topic: 'work' } });
    expect(updated).toMatchObject({ status: 200, body: { id, metadata: { topic: 'work' } } });
    expect(await call('POST', `/v1/conversations/${id}`, { metadata: 'work' })).toMatchObject({ status: 400, body: { error: { param: 'metadata' } } });
    expect(await call('DELETE', `/v1/conversations/${id}`)).toEqual({ status: 200, body: { id, object: 'conversation.deleted', deleted: true } });
    for (const method of ['GET', 'DELETE']) {
      expect(await call(method, `/v1/conversations/${id}`)).toMatchObject({ status: 404, body: { error: { message: `Conversation with id '${id}' not found.` } } });
    }
    expect(await call('GET', `/v1/conversations/${id}/items`)).toMatchObject({ status: 404 });
    // Created with nothing: no metadata, no items.
    expect(await call('POST', '/v1/conversations', {})).toMatchObject({ status: 200, body: { metadata: {} } });
  });

  it('items: added, listed newest first or in order, paged by limit and after, retrieved, and deleted (answered with the conversation)', async () => {
    const { body: conv } = await call('POST', '/v1/conversations', { items: [{ role: 'user', content: 'one' }] });
    const added = await call('POST', `/v1/conversations/${conv.id}/items`, { items: [{ role: 'assistant', content: 'two' }, { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'three' }] }] });
    expect(added.status).toBe(200);
    expect(added.body.data).toHaveLength(2);
    // A message given by role and content alone becomes a typed message item with one text part, as OpenAI stores it.
    expect(added.body.data[0]).toEqual({ id: expect.any(String), type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'two' }] });
    expect(added.body).toMatchObject({ object: 'list', first_id: added.body.data[0].id, last_id: added.body.data[1].id, has_more: false });
    const asc = await call('GET', `/v1/conversations/${conv.id}/items?order=asc`);
    const texts = (asc.body.data as Array<{ content: Array<{ text: string }> }>).map((i) => i.content[0]?.text);
    expect(texts).toEqual(['one', 'two', 'three']);
    const all = ids(asc.body);
    expect(ids((await call('GET', `/v1/conversations/${conv.id}/items`)).body)).toEqual([...all].reverse());
    const first = await call('GET', `/v1/conversations/${conv.id}/items?order=asc&limit=2`);
    expect(first.body).toMatchObject({ has_more: true, first_id: all[0], last_id: all[1] });
    const rest = await call('GET', `/v1/conversations/${conv.id}/items?order=asc&limit=2&after=${all[1]}`);
    expect(rest.body).toMatchObject({ has_more: false, data: [{ id: all[2] }] });
    expect(await call('GET', `/v1/conversations/${conv.id}/items?after=msg_nowhere`)).toMatchObject({ status: 400, body: { error: { param: 'after' } } });
    expect(await call('GET', `/v1/conversations/${conv.id}/items/${all[1]}`)).toMatchObject({ status: 200, body: { id: all[1], role: 'assistant' } });
    expect(await call('DELETE', `/v1/conversations/${conv.id}/items/${all[1]}`)).toMatchObject({ status: 200, body: { id: conv.id, object: 'conversation' } });
    expect(ids((await call('GET', `/v1/conversations/${conv.id}/items?order=asc`)).body)).toEqual([all[0], all[2]]);
    expect(await call('GET', `/v1/conversations/${conv.id}/items/${all[1]}`)).toMatchObject({ status: 404 });
    // More than 20 items at once, or items that are not an array, are a 400 naming the field.
    const many = Array.from({ length: 21 }, () => ({ role: 'user', content: 'x' }));
    expect(await call('POST', `/v1/conversations/${conv.id}/items`, { items: many })).toMatchObject({ status: 400, body: { error: { param: 'items' } } });
    expect(await call('POST', '/v1/conversations', { items: 'x' })).toMatchObject({ status: 400, body: { error: { param: 'items' } } });
    expect(await call('GET', `/v1/conversations/${conv.id}/elsewhere`)).toMatchObject({ status: 404, body: { error: { message: expect.stringContaining('no route') } } });
  });

  it("a turn in a conversation reads its items as history, adds its input and output to them, and names it", async () => {
    const { body: conv } = await call('POST', '/v1/conversations', { items: [{ role: 'user', content: 'Remember the number 7' }] });
    const before = ids((await call('GET', `/v1/conversations/${conv.id}/items?order=asc`)).body);
    const own = mockTokenCount(JSON.stringify('What was it?'));
    const turn = await call('POST', '/v1/responses', { model: 'weak-model', input: 'What was it?', conversation: conv.id });
    expect(turn.body.conversation).toEqual({ id: conv.id });
    expect(turn.body.usage.input_tokens).toBeGreaterThan(own);
    const items = (await call('GET', `/v1/conversations/${conv.id}/items?order=asc`)).body.data as Array<Record<string, any>>;
    expect(items.map((i) => i.id).slice(0, before.length)).toEqual(before);
    expect(items.slice(before.length)).toMatchObject([
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'What was it?' }] },
      { id: turn.body.output[0].id, type: 'message', role: 'assistant' },
    ]);
    // The next turn is billed for everything the conversation now holds, so more than the first was.
    const next = await call('POST', '/v1/responses', { model: 'weak-model', input: 'What was it?', conversation: { id: conv.id } });
    expect(next.body.usage.input_tokens).toBeGreaterThan(turn.body.usage.input_tokens);
    // A streamed turn joins it too.
    await events('/v1/responses', { model: 'weak-model', input: 'Streamed', conversation: conv.id });
    expect((await call('GET', `/v1/conversations/${conv.id}/items?limit=100`)).body.data).toHaveLength(before.length + 6);
    // A conversation this backend never made, one given with a continuation, or one that is no id: refused.
    expect(await call('POST', '/v1/responses', { model: 'weak-model', input: 'x', conversation: 'conv_elsewhere' })).toMatchObject({ status: 404, body: { error: { message: "Conversation with id 'conv_elsewhere' not found." } } });
    expect(await call('POST', '/v1/responses', { model: 'weak-model', input: 'x', conversation: conv.id, previous_response_id: turn.body.id })).toMatchObject({ status: 400, body: { error: { param: 'conversation' } } });
    expect(await call('POST', '/v1/responses', { model: 'weak-model', input: 'x', conversation: { id: 7 } })).toMatchObject({ status: 400, body: { error: { param: 'conversation' } } });
  });

  it("a stored response's input items are listed as given (a string as one user message), newest first; not once deleted", async () => {
    const plain = (await post('/v1/responses', { model: 'weak-model', input: 'Say hi' })).body;
    expect((await call('GET', `/v1/responses/${plain.id}/input_items`)).body).toMatchObject({
      object: 'list',
      has_more: false,
      data: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Say hi' }] }],
    });
    const input = [{ role: 'user', content: 'first' }, { type: 'function_call_output', call_id: 'call_1', output: '42' }];
    const given = (await post('/v1/responses', { model: 'weak-model', input })).body;
    const listed = (await call('GET', `/v1/responses/${given.id}/input_items`)).body.data as Array<Record<string, any>>;
    expect(listed).toMatchObject([{ type: 'function_call_output', call_id: 'call_1', output: '42' }, { type: 'message', content: [{ text: 'first' }] }]);
    expect(ids((await call('GET', `/v1/responses/${given.id}/input_items?order=asc`)).body)).toEqual(listed.map((i) => i.id).reverse());
    // A response not stored keeps no items.
    const unstored = (await post('/v1/responses', { model: 'weak-model', input: 'Say hi', store: false })).body;
    expect(await call('GET', `/v1/responses/${unstored.id}/input_items`)).toMatchObject({ status: 404 });
    expect(await call('DELETE', `/v1/responses/${given.id}`)).toMatchObject({ status: 200, body: { deleted: true } });
    expect(await call('GET', `/v1/responses/${given.id}/input_items`)).toMatchObject({ status: 404, body: { error: { message: `Response with id '${given.id}' not found.` } } });
    expect(await call('GET', `/v1/responses/${plain.id}/elsewhere`)).toMatchObject({ status: 404, body: { error: { message: expect.stringContaining('no route') } } });
  });
});
