// A mock OpenAI-compatible backend for `tiergate dev` and the end-to-end tests. Answers are deterministic and
// name the backend and model that produced them; streams are real SSE with a usage chunk when asked.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readBody } from './read-body.js';
import { forcedToolCall, jsonAnswer } from './mock-json.js';

export interface MockBackendOptions {
  /** Shown in every answer, e.g. "weak". */
  name: string;
  /** Delay before the response headers. */
  latencyMs?: number;
  /** Delay between SSE chunks. */
  chunkDelayMs?: number;
  /**
   * The model names it serves, as vLLM's `--served-model-name`: a request naming another is answered 404, and
   * every answer reports the first. Unset: every name is served, and reported back as asked.
   */
  servedModels?: readonly string[];
}

const sleep = (ms: number) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());

/** Crude but deterministic: about four characters a token. */
export function mockTokenCount(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

/** Responses this backend stored (the Responses API keeps state per backend, as vLLM's in-memory store does). */
type StoredResponses = Map<string, Record<string, unknown>>;
const MAX_STORED = 1000;

export function createMockBackend(opts: MockBackendOptions): Server {
  const stored: StoredResponses = new Map();
  return createServer((req, res) => {
    void handle(req, res, opts, stored).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'mock backend failure', type: 'server_error', param: null, code: null } }));
    });
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: MockBackendOptions, stored: StoredResponses): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  if (req.method === 'GET' && path === '/v1/models') {
    const ids = opts.servedModels ?? [`${opts.name}-model`];
    sendJson(res, 200, { object: 'list', data: ids.map((id) => ({ id, object: 'model', owned_by: 'tiergate-mock' })) });
    return;
  }
  if (path.startsWith('/v1/responses/') && (req.method === 'GET' || req.method === 'DELETE')) {
    const id = path.slice('/v1/responses/'.length);
    const found = stored.get(id);
    if (!found) return notFound(res, `Response with id '${id}' not found.`);
    if (req.method === 'DELETE') stored.delete(id);
    sendJson(res, 200, req.method === 'GET' ? found : { id, object: 'response', deleted: true });
    return;
  }
  const raw = await readBody(req);
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
  } catch {
    sendJson(res, 400, { error: { message: 'invalid JSON', type: 'invalid_request_error', param: null, code: null } });
    return;
  }
  const asked = typeof body.model === 'string' ? body.model : 'unknown';
  const served = opts.servedModels;
  // vLLM serves a request that names no model with its own; one it does not serve is a 404, in its error shape
  // (the status as a number in `code`).
  if (served && typeof body.model === 'string' && body.model !== '' && !served.includes(asked)) {
    sendJson(res, 404, { error: { message: `The model \`${asked}\` does not exist.`, type: 'NotFoundError', param: 'model', code: 404 } });
    return;
  }
  const model = served?.[0] ?? asked;
  await sleep(opts.latencyMs ?? 0);
  if (path === '/v1/embeddings') {
    const input = Array.isArray(body.input) ? body.input.map(String) : [String(body.input ?? '')];
    // The openai SDKs ask for base64 unless told otherwise, and read any answer as base64 then: plain numbers
    // came out as other numbers (the Node SDK made two floats of the first one's bytes).
    const base64 = body.encoding_format === 'base64';
    const data = input.map((text, index) => ({ object: 'embedding', index, embedding: base64 ? float32Base64(embed(text)) : embed(text) }));
    const tokens = input.reduce((n, t) => n + mockTokenCount(t), 0);
    sendJson(res, 200, { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
    return;
  }
  if (path === '/v1/responses') return respond(res, body, model, opts, stored);
  const chat = path === '/v1/chat/completions';
  if (!chat && path !== '/v1/completions') {
    sendJson(res, 404, { error: { message: `no route ${path}`, type: 'invalid_request_error', param: null, code: null } });
    return;
  }
  const promptText = chat ? JSON.stringify(body.messages ?? []) : String(body.prompt ?? '');
  const nMessages = Array.isArray(body.messages) ? body.messages.length : 1;
  const greeting = `Hello from the ${opts.name} backend (model ${model}). You sent ${nMessages} message${nMessages === 1 ? '' : 's'}.`;
  // Structured outputs are JSON, as vLLM's guided decoding makes them (mock-json.ts).
  const answer = (chat ? jsonAnswer(body.response_format, greeting) : undefined) ?? greeting;
  // A call the request forces (tool_choice) instead of text, as a model constrained to it answers.
  const call = chat ? forcedToolCall(body.tools, body.tool_choice, greeting) : undefined;
  const usage = { prompt_tokens: mockTokenCount(promptText), completion_tokens: mockTokenCount(call ? call.arguments : answer) };
  const fullUsage = { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens };
  const id = `${chat ? 'chatcmpl' : 'cmpl'}-mock-${opts.name}`;
  const created = 1_700_000_000;
  // As OpenAI does when a request names one: the tier that served it (auto: the project's, default), on the body
  // and on every chunk. Nothing when none was asked, as vLLM answers.
  const serviceTier = servedTier(body.service_tier);
  const tier = serviceTier === undefined ? {} : { service_tier: serviceTier };
  if (body.stream === true) {
    const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const object = chat ? 'chat.completion.chunk' : 'text_completion';
    const frame = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ id, object, created, model, ...tier, choices, ...(includeUsage ? { usage: null } : {}), ...extra })}\n\n`;
    if (chat && call) {
      // The call's id and name first, then its arguments in pieces, as OpenAI and vLLM stream one.
      res.write(frame([{ index: 0, delta: { role: 'assistant', content: null, tool_calls: [{ index: 0, id: callId(opts), type: 'function', function: { name: call.name, arguments: '' } }] }, finish_reason: null }]));
      for (const piece of argumentPieces(call.arguments)) {
        await sleep(opts.chunkDelayMs ?? 0);
        res.write(frame([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: piece } }] }, finish_reason: null }]));
      }
      res.write(frame([{ index: 0, delta: {}, finish_reason: 'tool_calls' }]));
      if (includeUsage) res.write(frame([], { usage: fullUsage }));
      res.end('data: [DONE]\n\n');
      return;
    }
    if (chat) res.write(frame([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]));
    for (const piece of textPieces(answer)) {
      await sleep(opts.chunkDelayMs ?? 0);
      res.write(frame([chat ? { index: 0, delta: { content: piece }, finish_reason: null } : { index: 0, text: piece, finish_reason: null }]));
    }
    res.write(frame([chat ? { index: 0, delta: {}, finish_reason: 'stop' } : { index: 0, text: '', finish_reason: 'stop' }]));
    if (includeUsage) res.write(frame([], { usage: fullUsage }));
    res.end('data: [DONE]\n\n');
    return;
  }
  const choice = !chat
    ? { index: 0, text: answer, finish_reason: 'stop' }
    : call
      ? { index: 0, message: { role: 'assistant', content: null, tool_calls: [{ id: callId(opts), type: 'function', function: call }] }, finish_reason: 'tool_calls' }
      : { index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' };
  sendJson(res, 200, { id, object: chat ? 'chat.completion' : 'text_completion', created, model, ...tier, choices: [choice], usage: fullUsage });
}

/** How a stream cuts its text: word by word, each with the spacing after it. */
const textPieces = (text: string): string[] => text.match(/\S+\s*/g) ?? [];
/** How a stream cuts a call's arguments (JSON, with no words to cut at): 16 characters at a time. */
const argumentPieces = (args: string): string[] => args.match(/.{1,16}/gs) ?? [];

let callCount = 0;
/** A call id as backends mint them: new for every call. */
const callId = (opts: MockBackendOptions) => `call_mock_${opts.name}_${++callCount}`;

function servedTier(asked: unknown): string | undefined {
  if (typeof asked !== 'string') return undefined;
  return asked === 'flex' || asked === 'priority' ? asked : 'default';
}

let responseCount = 0;

/** The Responses API: a response object, or its stream of typed events ending in response.completed (no [DONE]). */
async function respond(res: ServerResponse, body: Record<string, unknown>, model: string, opts: MockBackendOptions, stored: StoredResponses): Promise<void> {
  // A continuation only works on the backend that stored what it continues: what routing must get right.
  const previous = body.previous_response_id;
  if (typeof previous === 'string' && !stored.has(previous)) return notFound(res, `Previous response with id '${previous}' not found.`);
  const items = Array.isArray(body.input) ? body.input.length : 1;
  const greeting = `Hello from the ${opts.name} backend (model ${model}). You sent ${items} input item${items === 1 ? '' : 's'}.`;
  const answer = jsonAnswer((body.text as { format?: unknown } | undefined)?.format, greeting) ?? greeting;
  const call = forcedToolCall(body.tools, body.tool_choice, greeting);
  const inputTokens = mockTokenCount(JSON.stringify(body.input ?? '') + String(body.instructions ?? ''));
  const outputTokens = mockTokenCount(call ? call.arguments : answer);
  const usage = {
    input_tokens: inputTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: outputTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: inputTokens + outputTokens,
  };
  const id = `resp_mock_${opts.name}_${++responseCount}`;
  const message = (text: string, status: string) => ({ type: 'message', id: `msg_${id}`, status, role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] });
  const base = { id, object: 'response', created_at: 1_700_000_000, model, instructions: body.instructions ?? null, error: null, incomplete_details: null };
  const functionCall = (args: string, status: string) => ({ type: 'function_call', id: `fc_${id}`, call_id: `call_${id}`, name: call?.name, arguments: args, status });
  const done = { ...base, status: 'completed', output: [call ? functionCall(call.arguments, 'completed') : message(answer, 'completed')], usage };
  if (body.store !== false) {
    stored.set(id, done);
    if (stored.size > MAX_STORED) stored.delete(stored.keys().next().value as string);
  }
  if (body.stream !== true) return sendJson(res, 200, done);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  let seq = 0;
  const send = (type: string, fields: Record<string, unknown>) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...fields })}\n\n`);
  send('response.created', { response: { ...base, status: 'in_progress', output: [], usage: null } });
  if (call) {
    send('response.output_item.added', { output_index: 0, item: functionCall('', 'in_progress') });
    for (const piece of argumentPieces(call.arguments)) {
      await sleep(opts.chunkDelayMs ?? 0);
      send('response.function_call_arguments.delta', { item_id: `fc_${id}`, output_index: 0, delta: piece });
    }
    send('response.function_call_arguments.done', { item_id: `fc_${id}`, output_index: 0, arguments: call.arguments });
    send('response.output_item.done', { output_index: 0, item: functionCall(call.arguments, 'completed') });
    send('response.completed', { response: done });
    res.end();
    return;
  }
  send('response.output_item.added', { output_index: 0, item: { ...message('', 'in_progress'), content: [] } });
  for (const piece of textPieces(answer)) {
    await sleep(opts.chunkDelayMs ?? 0);
    send('response.output_text.delta', { item_id: `msg_${id}`, output_index: 0, content_index: 0, delta: piece });
  }
  send('response.output_item.done', { output_index: 0, item: message(answer, 'completed') });
  send('response.completed', { response: done });
  res.end();
}

function notFound(res: ServerResponse, message: string): void {
  sendJson(res, 404, { error: { message, type: 'invalid_request_error', param: null, code: 'not_found' } });
}

/** A vector as OpenAI's `encoding_format: "base64"` carries it: its float32 values, little-endian. */
function float32Base64(v: number[]): string {
  const bytes = Buffer.alloc(v.length * 4);
  v.forEach((x, i) => bytes.writeFloatLE(x, i * 4));
  return bytes.toString('base64');
}

/** A small deterministic vector per text. */
function embed(text: string): number[] {
  const v = new Array<number>(8).fill(0);
  for (let i = 0; i < text.length; i++) v[i % 8] = ((v[i % 8] as number) + text.charCodeAt(i)) % 1000;
  const norm = Math.hypot(...v) || 1;
  return v.map((x) => x / norm);
}
