// The official openai SDK pointed at `tiergate dev`'s local data plane: a real client, real HTTP, the
// Envoy-faithful ext_proc client inside, mock backends behind.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { zodResponseFormat, zodTextFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevStack, type DevStack } from '../../src/dev/dev-stack.js';
import { RECOMMENDED_FILTER, SHIPPED_MESSAGE_TIMEOUT_MS } from '../../src/dev/envoy-client.js';
import { ledgerRow, readChatStream, startTestDevStack } from '../helpers/dev-stack.js';

let stack: DevStack;
let client: OpenAI;
beforeAll(async () => {
  stack = await startTestDevStack();
  client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'sk-client-key', maxRetries: 0 });
});
afterAll(async () => stack.stop());

describe('openai SDK through tiergate dev', () => {
  it("its local Envoy drives tiergate with the shipped filter: the recommended modes, envoy.yaml's message timeout", () => {
    expect(stack.dataPlane.filter).toMatchObject({ processingMode: RECOMMENDED_FILTER.processingMode, messageTimeoutMs: SHIPPED_MESSAGE_TIMEOUT_MS });
  });

  it('plain chat completion: a short prompt is answered by the weak tier', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'auto', messages: [{ role: 'user', content: 'Say hi' }] })
      .withResponse();
    expect(data.choices[0]?.message.content).toContain('weak backend');
    expect(data.model).toBe('weak-model');
    expect(response.headers.get('x-llm-tier')).toBe('weak');
    expect(response.headers.get('x-gateway-model-resolved')).toBe('weak-model');
    expect(data.usage?.total_tokens).toBeGreaterThan(0);
  });

  it('a v7 keyword sends the request to the strong tier', async () => {
    const r = await client.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'Help me optimize this query' }] });
    expect(r.choices[0]?.message.content).toContain('strong backend');
    expect(r.model).toBe('strong-model');
  });

  it('streaming: well-formed chunks, no usage chunk the client did not ask for, and the usage still in the ledger', async () => {
    const id = 'e2e-stream';
    const stream = await client.chat.completions.create(
      { model: 'auto', stream: true, messages: [{ role: 'user', content: 'Say hi, streamed' }] },
      { headers: { 'x-request-id': id } },
    );
    // What many clients do: read choices[0] unguarded. A usage chunk (`choices: []`) would break it.
    const { text, chunks, usages } = await readChatStream(stream);
    for (const u of usages) expect(u).toBeNull();
    expect(chunks).toBeGreaterThan(5);
    expect(text).toBe('Hello from the weak backend (model weak-model). You sent 1 message.');
    // tiergate asked the backend for usage all the same, so the stream's spend is counted.
    await expect.poll(() => ledgerRow(id)).toBeDefined();
    expect(ledgerRow(id)).toMatchObject({ stream: true, usage_source: 'reported', usage: { output_tokens: expect.any(Number) } });
  });

  it('streaming with include_usage asked: the usage chunk arrives, as the client asked', async () => {
    const stream = await client.chat.completions.create({ model: 'auto', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Say hi, streamed with usage' }] });
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    expect(usage?.total_tokens).toBeGreaterThan(0);
  });

  it('models.list() shows what a client may ask for behind the gateway: auto first, then the tier models', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids).toEqual(['auto', 'weak-model', 'strong-model']);
    expect((await client.models.retrieve('auto')).owned_by).toBe('tiergate');
    const err = await client.models.retrieve('no-such-model').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('structured outputs: parse() reads the JSON the mock backend writes to the schema, streamed or not, as vLLM would', async () => {
    // As an app writes it: a zod schema through the SDK's own helpers.
    const City = z.object({ city: z.string(), population: z.number().int() });
    const want = { city: expect.stringContaining('backend'), population: 0 };
    const parsed = await client.chat.completions.parse({ model: 'auto', messages: [{ role: 'user', content: 'Largest city, as JSON' }], response_format: zodResponseFormat(City, 'city') });
    expect(parsed.choices[0]?.message.parsed).toEqual(want);
    const stream = client.chat.completions.stream({ model: 'auto', messages: [{ role: 'user', content: 'Largest town, as JSON' }], response_format: zodResponseFormat(City, 'city') });
    expect((await stream.finalChatCompletion()).choices[0]?.message.parsed).toEqual(want);
    const answer = await client.responses.parse({ model: 'auto', store: false, input: 'Largest village, as JSON', text: { format: zodTextFormat(City, 'city') } });
    expect(answer.output_parsed).toEqual(want);
  });

  it('a tool call the request forces comes back as a call, whole or streamed, with arguments that fit the tool (Chat and Responses)', async () => {
    const tools = [{ type: 'function' as const, function: { name: 'read_file', parameters: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] } } }];
    const asked = { model: 'auto', messages: [{ role: 'user' as const, content: 'Open the config' }], tools, tool_choice: 'required' as const };
    const whole = await client.chat.completions.create(asked);
    expect(whole.choices[0]?.finish_reason).toBe('tool_calls');
    const call = whole.choices[0]?.message.tool_calls?.[0];
    expect(call?.type === 'function' && call.function.name).toBe('read_file');
    expect(JSON.parse(call?.type === 'function' ? call.function.arguments : '')).toEqual({ path: expect.stringContaining('backend') });
    // Streamed, the SDK assembles the call from its pieces.
    const streamed = await client.chat.completions.stream({ ...asked, messages: [{ role: 'user', content: 'Open the readme' }] }).finalChatCompletion();
    const piecewise = streamed.choices[0]?.message.tool_calls?.[0];
    expect(piecewise?.type === 'function' && JSON.parse(piecewise.function.arguments)).toEqual({ path: expect.stringContaining('backend') });
    expect(streamed.choices[0]?.finish_reason).toBe('tool_calls');
    // The agent's next turn, the tool's output given back, is answered in text.
    const next = await client.chat.completions.create({ ...asked, tool_choice: 'auto', messages: [...asked.messages, whole.choices[0]!.message, { role: 'tool', tool_call_id: call!.id, content: 'port: 8080' }] });
    expect(next.choices[0]?.message.content).toContain('backend');
    const responsesTools = [{ type: 'function' as const, name: 'read_file', parameters: { type: 'object', properties: { path: { type: 'string' } } }, strict: false }];
    const turn = await client.responses.create({ model: 'auto', store: false, input: 'Open the notes', tools: responsesTools, tool_choice: 'required' });
    expect(turn.output[0]).toMatchObject({ type: 'function_call', name: 'read_file' });
    const events: string[] = [];
    const stream = await client.responses.create({ model: 'auto', store: false, input: 'Open the plan', tools: responsesTools, tool_choice: 'required', stream: true });
    for await (const e of stream) events.push(e.type);
    expect(events).toContain('response.function_call_arguments.delta');
    expect(events.at(-1)).toBe('response.completed');
  });

  it('legacy completions endpoint', async () => {
    const r = await client.completions.create({ model: 'auto', prompt: 'Say hi' });
    expect(r.choices[0]?.text).toContain('weak backend');
  });

  it('bad input: an OpenAI-shaped 400 the SDK turns into BadRequestError', async () => {
    const err = await client.chat.completions.create({ model: 'auto', messages: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect([e.status, e.code, e.param, e.type]).toEqual([400, 'empty_array', 'messages', 'invalid_request_error']);
  });

  it("the request id the SDK reports, on an answer or an error, is the ledger row's", async () => {
    // No x-request-id from the client: the data plane makes one, as Envoy does, and only the response can tell it.
    const { request_id } = await client.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'Which row am I?' }] }).withResponse();
    expect(request_id).toMatch(/^[0-9a-f-]{36}$/);
    await expect.poll(() => ledgerRow(request_id as string)).toMatchObject({ status: 'success', tier: 'weak' });
    const err = (await client.chat.completions.create({ model: 'auto', messages: [] }).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.BadRequestError>;
    expect(err.requestID).toMatch(/^[0-9a-f-]{36}$/);
    await expect.poll(() => ledgerRow(err.requestID as string)).toMatchObject({ http_status: 400, error_code: 'empty_array' });
  });

  it('a client cannot choose its tier with a header', async () => {
    const r = await client.chat.completions.create(
      { model: 'auto', messages: [{ role: 'user', content: 'Say hi' }] },
      { headers: { 'x-llm-tier': 'strong', 'x-tenant-id': 'other-team' } },
    );
    expect(r.model).toBe('weak-model');
  });

  it('a service tier asked for through the SDK: the answer names the tier that served it, and so does the row', async () => {
    const data = await client.chat.completions.create(
      { model: 'auto', service_tier: 'flex', messages: [{ role: 'user', content: 'Say hi, slowly and cheaply' }] },
      { headers: { 'x-request-id': 'e2e-flex' } },
    );
    expect(data.service_tier).toBe('flex');
    await expect.poll(() => ledgerRow('e2e-flex')).toMatchObject({ status: 'success', service_tier: 'flex', cost_usd: { total: expect.any(Number) } });
    const stream = await client.chat.completions.create(
      { model: 'auto', stream: true, service_tier: 'auto', messages: [{ role: 'user', content: 'Say hi, streamed, on the project tier' }] },
      { headers: { 'x-request-id': 'e2e-auto-tier' } },
    );
    for await (const chunk of stream) expect(chunk.service_tier).toBe('default');
    await expect.poll(() => ledgerRow('e2e-auto-tier')).toMatchObject({ stream: true, service_tier: 'default' });
    // A plain request names none, and neither does its row.
    await client.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'Say hi, no tier' }] }, { headers: { 'x-request-id': 'e2e-no-tier' } });
    await expect.poll(() => ledgerRow('e2e-no-tier')).toMatchObject({ service_tier: null });
  });

  it('each request leaves a ledger row with the usage the backend reported (embedded default: ./tiergate-ledger)', async () => {
    const id = 'e2e-ledger';
    const data = await client.chat.completions.create(
      { model: 'auto', stream: false, messages: [{ role: 'user', content: 'Count me' }] },
      { headers: { 'x-request-id': id, 'x-feature-id': 'e2e' } },
    );
    const row = () => ledgerRow(id);
    await expect.poll(row).toBeDefined();
    expect(row()).toMatchObject({
      status: 'success',
      feature_id: 'e2e',
      tier: 'weak',
      usage_source: 'reported',
      usage: { input_tokens: data.usage?.prompt_tokens, output_tokens: data.usage?.completion_tokens },
    });
  });
});

describe('openai SDK, Responses API, through tiergate dev', () => {
  it('a stored turn and its continuation both reach the stateful tier; a turn with store: false is classified', async () => {
    const { data: first, response } = await client.responses.create({ model: 'auto', input: 'Please refactor this module' }).withResponse();
    // Stored by default, so not classified: the keyword does not move it off the stateful tier (weak by default).
    expect(response.headers.get('x-llm-tier')).toBe('weak');
    expect(first.output_text).toContain('weak backend');
    const next = await client.responses.create({ model: 'auto', previous_response_id: first.id, input: 'And now optimize it' });
    expect(next.model).toBe('weak-model');
    const stateless = await client.responses.create({ model: 'auto', store: false, input: 'Please refactor this module' });
    expect(stateless.output_text).toContain('strong backend');
  });

  it('streaming: typed events to response.completed, with usage, and a ledger row from it', async () => {
    const id = 'e2e-responses-stream';
    const stream = await client.responses.create({ model: 'auto', stream: true, input: 'Say hi, streamed' }, { headers: { 'x-request-id': id } });
    let text = '';
    let usage: OpenAI.Responses.ResponseUsage | undefined;
    for await (const e of stream) {
      if (e.type === 'response.output_text.delta') text += e.delta;
      if (e.type === 'response.completed') usage = e.response.usage;
    }
    expect(text).toBe('Hello from the weak backend (model weak-model). You sent 1 input item.');
    expect(usage?.total_tokens).toBeGreaterThan(0);
    const dayFile = join('tiergate-ledger', `ledger-${new Date().toISOString().slice(0, 10)}.jsonl`);
    const row = () =>
      (existsSync(dayFile) ? readFileSync(dayFile, 'utf8').split('\n').filter(Boolean) : [])
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((r) => r.request_id === id);
    await expect.poll(row).toBeDefined();
    expect(row()).toMatchObject({ path: '/v1/responses', stream: true, status: 'success', usage_source: 'reported', usage: { input_tokens: usage?.input_tokens, output_tokens: usage?.output_tokens } });
  });

  it("the SDK's responses.stream() helper builds the response from the events: text, a forced tool call, an answer cut short", async () => {
    // The helper refuses a delta for an output item or content part that no event opened; reading the raw
    // events, as above, never notices.
    const text = await client.responses.stream({ model: 'auto', store: false, input: 'Say hi with the helper' }).finalResponse();
    expect(text.output_text).toBe('Hello from the weak backend (model weak-model). You sent 1 input item.');
    expect(text.usage?.total_tokens).toBeGreaterThan(0);
    const tools = [{ type: 'function' as const, name: 'read_file', parameters: { type: 'object', properties: { path: { type: 'string' } } }, strict: false }];
    const deltas: string[] = [];
    const called = client.responses.stream({ model: 'auto', store: false, input: 'Open the notes', tools, tool_choice: 'required' });
    called.on('response.function_call_arguments.delta', (e) => deltas.push(e.snapshot));
    const call = (await called.finalResponse()).output[0];
    expect(call).toMatchObject({ type: 'function_call', name: 'read_file', status: 'completed' });
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.at(-1)).toBe(call?.type === 'function_call' ? call.arguments : undefined);
    const cut = await client.responses.stream({ model: 'auto', store: false, input: 'Say hi, briefly', max_output_tokens: 3 }).finalResponse();
    expect([cut.status, cut.incomplete_details?.reason]).toEqual(['incomplete', 'max_output_tokens']);
    expect(cut.output_text.length).toBeGreaterThan(0);
    expect(text.output_text.startsWith(cut.output_text) && cut.output_text !== text.output_text).toBe(true);
  });

  it('without affinity, a conversation started on a named model and continued with auto loses its state', async () => {
    // The caveat the README states: the mock backends keep responses per backend, as vLLM does.
    const first = await client.responses.create({ model: 'strong-model', input: 'hi' });
    const err = await client.responses.create({ model: 'auto', previous_response_id: first.id, input: 'more' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('embeddings: the SDK gets its vectors, and the answer is read only for its usage, which the ledger row has', async () => {
    const id = 'e2e-embeddings';
    const input = ['first text to embed', 'second text', 'third'];
    const data = await client.embeddings.create({ model: 'auto', input }, { headers: { 'x-request-id': id } });
    expect(data.data.map((d) => d.index)).toEqual([0, 1, 2]);
    // The SDK asked for base64 (its default) and decoded it: the mock's 8 dimensions, unit length, through
    // tiergate byte for byte. Asked for floats, the same vectors as plain numbers.
    for (const d of data.data) {
      expect(d.embedding).toHaveLength(8);
      expect(Math.hypot(...d.embedding)).toBeCloseTo(1, 5);
    }
    const floats = await client.embeddings.create({ model: 'auto', input, encoding_format: 'float' });
    expect(floats.data.map((d) => d.embedding.map((x) => Math.fround(x)))).toEqual(data.data.map((d) => d.embedding));
    await expect.poll(() => ledgerRow(id)).toBeDefined();
    expect(ledgerRow(id)).toMatchObject({ usage_source: 'reported', usage: { input_tokens: data.usage.prompt_tokens, total_tokens: data.usage.total_tokens } });
    expect(data.usage.prompt_tokens).toBeGreaterThan(0);
  });

  it('bad input: a 400 the SDK turns into BadRequestError', async () => {
    const err = await client.responses.create({ model: 'auto', input: 'x', max_output_tokens: -5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('max_output_tokens');
  });
});

describe('openai SDK, Responses API, with response affinity on', () => {
  it('a classified first turn, its continuations and retrieving it all reach the backend that stored it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-e2e-'));
    const configFile = join(dir, 'tiergate.yaml');
    writeFileSync(configFile, 'routing: { affinity: { store: memory } }\n');
    const s = await startDevStack({ configFile, port: 0, grpcListen: '127.0.0.1:0', adminListen: '127.0.0.1:0', backendPorts: { weak: 0, strong: 0 }, env: { TIERGATE_LOG_LEVEL: 'silent' } });
    try {
      const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sk-client-key', maxRetries: 0 });
      const first = await c.responses.create({ model: 'auto', input: 'Please refactor this module' });
      expect(first.model).toBe('strong-model'); // stored, and classified all the same
      // Each continuation says nothing the rules would send to strong; the strong backend alone holds the chain.
      const second = await c.responses.create({ model: 'auto', previous_response_id: first.id, input: 'ok' });
      expect(second.model).toBe('strong-model');
      const streamed = await c.responses.create({ model: 'auto', previous_response_id: second.id, input: 'and?', stream: true });
      let completed: OpenAI.Responses.Response | undefined;
      for await (const e of streamed) if (e.type === 'response.completed') completed = e.response;
      expect(completed?.model).toBe('strong-model');
      const third = await c.responses.create({ model: 'auto', previous_response_id: completed?.id ?? '', input: 'thanks' });
      expect(third.model).toBe('strong-model');
      expect((await c.responses.retrieve(first.id)).id).toBe(first.id);
    } finally {
      await s.stop();
    }
  });
});

describe('openai SDK and the response cache (tiergate dev turns it on for every tenant)', () => {
  it('a stored JSON answer replays as a stream the SDK parses, with the usage chunk it asked for', async () => {
    const ask = { model: 'auto', messages: [{ role: 'user' as const, content: 'Cache me as JSON' }] };
    const { data: first, response: r1 } = await client.chat.completions.create(ask).withResponse();
    expect(r1.headers.get('x-cache')).toBe('miss');
    await expect.poll(async () => (await client.chat.completions.create(ask).withResponse()).response.headers.get('x-cache')).toBe('hit-exact');
    const { data: stream, response } = await client.chat.completions.create({ ...ask, stream: true, stream_options: { include_usage: true } }).withResponse();
    expect(response.headers.get('x-cache')).toBe('hit-exact');
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(first.choices[0]?.message.content);
    expect(finish).toBe('stop');
    expect(usage).toEqual(first.usage);
  });

  it('n choices: each streamed apart, all counted in the row, and all replayed by a cache hit, streamed or not', async () => {
    const ask = { model: 'auto', n: 3, messages: [{ role: 'user' as const, content: 'Three answers, please' }] };
    const id = 'e2e-n-choices';
    const stream = await client.chat.completions.create({ ...ask, stream: true }, { headers: { 'x-request-id': id } });
    const streamed = ['', '', ''];
    for await (const chunk of stream) for (const c of chunk.choices) streamed[c.index] += c.delta?.content ?? '';
    const greeting = 'Hello from the weak backend (model weak-model). You sent 1 message.';
    expect(streamed).toEqual([greeting, greeting, greeting]);
    await expect.poll(() => ledgerRow(id)).toBeDefined();
    const single = await client.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'One answer, please' }] });
    expect(ledgerRow(id)).toMatchObject({ usage_source: 'reported', usage: { output_tokens: 3 * (single.usage?.completion_tokens ?? 0) } });
    await expect.poll(async () => (await client.chat.completions.create(ask).withResponse()).response.headers.get('x-cache')).toBe('hit-exact');
    const { data } = await client.chat.completions.create(ask).withResponse();
    expect(data.choices.map((c) => [c.index, c.message.content])).toEqual([0, 1, 2].map((i) => [i, greeting]));
    const replay = await client.chat.completions.create({ ...ask, stream: true });
    const replayed = ['', '', ''];
    for await (const chunk of replay) for (const c of chunk.choices) replayed[c.index] += c.delta?.content ?? '';
    expect(replayed).toEqual(streamed);
  });

  it('an answer max_tokens cut short: finish_reason "length" reaches the client, and is cached like any other', async () => {
    const ask = { model: 'auto', max_tokens: 3, messages: [{ role: 'user' as const, content: 'A long answer, cut' }] };
    const first = await client.chat.completions.create(ask);
    expect(first.choices[0]).toMatchObject({ finish_reason: 'length', message: { content: 'Hello from t' } });
    expect(first.usage?.completion_tokens).toBe(3);
    await expect.poll(async () => (await client.chat.completions.create(ask).withResponse()).response.headers.get('x-cache')).toBe('hit-exact');
    expect((await client.chat.completions.create(ask)).choices[0]).toMatchObject({ finish_reason: 'length', message: { content: 'Hello from t' } });
  });

  it('a stored stream replays as a JSON completion', async () => {
    const ask = { model: 'auto', messages: [{ role: 'user' as const, content: 'Cache me as a stream' }] };
    const stream = await client.chat.completions.create({ ...ask, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    await expect.poll(async () => (await client.chat.completions.create(ask).withResponse()).response.headers.get('x-cache')).toBe('hit-exact');
    const { data, response } = await client.chat.completions.create(ask).withResponse();
    expect(response.headers.get('x-llm-tier')).toBe('weak');
    expect(response.headers.get('x-gateway-model-resolved')).toBe('weak-model');
    expect(data.choices[0]?.message.content).toBe(text);
    expect(data.choices[0]?.finish_reason).toBe('stop');
  });
});

describe('openai SDK through tiergate dev with mode overrides allowed', () => {
  it('a JSON response is buffered and carries x-usage-total-tokens', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-e2e-'));
    const configFile = join(dir, 'tiergate.yaml');
    writeFileSync(configFile, 'envoy: { allowModeOverride: true }\n');
    const s = await startDevStack({
      configFile,
      port: 0,
      grpcListen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      backendPorts: { weak: 0, strong: 0 },
      env: { TIERGATE_LOG_LEVEL: 'silent' },
    });
    try {
      const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sk-client-key', maxRetries: 0 });
      const { data, response } = await c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'Say hi' }] }).withResponse();
      expect(response.headers.get('x-usage-total-tokens')).toBe(String(data.usage?.total_tokens));
      expect(Number(response.headers.get('content-length'))).toBeGreaterThan(0);
      // Streams stay streamed: chunks arrive, no usage header (the headers left before the usage did).
      const { data: stream, response: sr } = await c.chat.completions.create({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'Say hi' }] }).withResponse();
      let chunks = 0;
      for await (const _ of stream) chunks++;
      expect(chunks).toBeGreaterThan(5);
      expect(sr.headers.get('x-usage-total-tokens')).toBeNull();
    } finally {
      await s.stop();
    }
  });
});

describe('openai SDK, with its own retries on, against a spent budget', () => {
  // The Node SDK retries a 429 twice by default and sleeps for whatever retry-after says, so a spent daily budget
  // (retry-after: until midnight) used to hold the application's call for hours. Measured with openai 6.49: the
  // call was still waiting after 5 s, its first retry due an hour later.
  it('a daily budget 429 reaches the application at once (x-should-retry: false), from one request', async () => {
    // A time zone where it is about noon now, so the window's end is hours away whenever this runs.
    const offset = ((12 - new Date().getUTCHours() + 36) % 24) - 12;
    const zone = offset === 0 ? 'UTC' : `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`;
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-e2e-'));
    const configFile = join(dir, 'tiergate.yaml');
    writeFileSync(configFile, `budgets: { timeZone: "${zone}" }\ntenants: { "*": { dailyTokenBudget: 1500 } }\n`);
    const s = await startTestDevStack({ configFile });
    try {
      const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sk-client-key' }); // maxRetries: the SDK's default (2)
      const ask = (id: string, maxTokens: number) => c.chat.completions.create({ model: 'auto', max_tokens: maxTokens, messages: [{ role: 'user', content: 'Say hi' }] }, { headers: { 'x-request-id': id } });
      // The first uses a few tokens of the day's 1,500; the second's reservation (1,480 and its prompt) no longer
      // fits beside them, though it would in a new day, so the 429 says to retry at midnight. (Until 2026-12-06
      // this relied on the first request's whole reservation still being held after its answer.)
      await ask('e2e-budget-1', 1000);
      const refused = ask('e2e-budget-2', 1480).then(
        () => 'admitted',
        (e: unknown) => e,
      );
      const got = await Promise.race([refused, new Promise((r) => setTimeout(() => r('still waiting after 5 s'), 5000))]);
      expect(got).toBeInstanceOf(OpenAI.RateLimitError);
      const err = got as InstanceType<typeof OpenAI.RateLimitError>;
      expect(err.code).toBe('daily_token_budget');
      expect(Number(err.headers?.get('retry-after'))).toBeGreaterThan(60);
      expect(err.headers?.get('x-should-retry')).toBe('false');
      // One request reached tiergate, not three.
      await expect.poll(() => ledgerRow('e2e-budget-2')).toBeDefined();
      const day = join('tiergate-ledger', `ledger-${new Date().toISOString().slice(0, 10)}.jsonl`);
      expect(readFileSync(day, 'utf8').split('\n').filter((l) => l.includes('"request_id":"e2e-budget-2"'))).toHaveLength(1);
    } finally {
      await s.stop();
    }
  });
});

describe('openai SDK against a limit on requests in flight', () => {
  it('the 429 concurrent_requests is retried by the SDK itself after retry-after: 1, and goes through once the slot is free', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-e2e-'));
    const configFile = join(dir, 'tiergate.yaml');
    writeFileSync(configFile, `tenants: { "*": { maxConcurrentRequests: 1 } }\n`);
    // Each backend answer takes 700 ms: the first request holds the one slot that long.
    const s = await startTestDevStack({ configFile, latencyMs: 700 });
    try {
      const ask = (c: OpenAI, id: string) => c.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: `Say hi (${id})` }] }, { headers: { 'x-request-id': id } });
      const first = ask(new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sk-client-key', maxRetries: 0 }), 'e2e-slot-1');
      const app = s.tiergate.app;
      const inFlight = async () => {
        const status = await app.budgets.status(app.config.current(), 'default');
        return status.find((l) => l.code === 'concurrent_requests')?.used;
      };
      await expect.poll(inFlight).toBe(1);
      // Without retries the application sees the 429 at once.
      const refused = await ask(new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sk-client-key', maxRetries: 0 }), 'e2e-slot-2').catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
      const err = refused as InstanceType<typeof OpenAI.RateLimitError>;
      expect([err.code, err.headers?.get('retry-after'), err.headers?.get('x-should-retry')]).toEqual(['concurrent_requests', '1', null]);
      // With the SDK's own retries (its default, 2): refused while the first holds the slot, then answered.
      const retried = await ask(new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sk-client-key' }), 'e2e-slot-3');
      expect(retried.choices[0]?.message.content).toContain('Hello from the');
      expect((await first).choices[0]?.message.content).toContain('Hello from the');
      // Each attempt reached tiergate and left its row: the refused one, then the one answered.
      const rows = () => {
        const day = join('tiergate-ledger', `ledger-${new Date().toISOString().slice(0, 10)}.jsonl`);
        return readFileSync(day, 'utf8').split('\n').filter((l) => l.includes('"request_id":"e2e-slot-3"')).map((l) => JSON.parse(l) as { status: string; error_code: string | null });
      };
      await expect.poll(() => rows().length).toBe(2);
      expect(rows().map((r) => [r.status, r.error_code])).toEqual([
        ['rejected', 'concurrent_requests'],
        ['success', null],
      ]);
    } finally {
      await s.stop();
    }
  });
});

describe('openai SDK and a tiergate that stops mid-stream', () => {
  it("an answer still streaming when the grace period ends reaches the SDK whole: tiergate hands the stream back to Envoy", async () => {
    const s = await startTestDevStack({ chunkDelayMs: 80 });
    try {
      const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sk-client-key', maxRetries: 0 });
      const id = `detach-${process.pid}`;
      const stream = await c.chat.completions.create(
        { model: 'auto', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Tell me a story, slowly' }] },
        { headers: { 'x-request-id': id } },
      );
      let text = '';
      let usage: OpenAI.CompletionUsage | null | undefined;
      let stopping: Promise<void> | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta?.content ?? '';
        usage ??= chunk.usage;
        // After the first piece, tiergate stops with a grace period far shorter than the rest of the answer.
        stopping ??= s.tiergate.stop({ graceMs: 150 });
      }
      await stopping;
      expect(text).toBe('Hello from the weak backend (model weak-model). You sent 1 message.');
      // The backend's usage chunk, which the client asked for, came through unread by tiergate.
      expect(usage?.completion_tokens).toBeGreaterThan(0);
      await expect.poll(() => ledgerRow(id)).toBeDefined();
      expect(ledgerRow(id)).toMatchObject({ status: 'cancelled', error_code: 'detached_at_shutdown', usage_source: 'estimated', tier: 'weak' });
    } finally {
      await s.stop();
    }
  });
});
