// A mock OpenAI-compatible backend for `tiergate dev` and the end-to-end tests. Answers are deterministic and
// name the backend and model that produced them; streams are real SSE with a usage chunk when asked.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { complete, type AnswerContext } from './mock-completions.js';
import { MockStore } from './mock-conversations.js';
import { respond } from './mock-responses.js';
import { readBody } from './read-body.js';
import { badRequest, mockTokenCount, notFound, postOnly, sendJson, sleep } from './mock-wire.js';

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

export function createMockBackend(opts: MockBackendOptions): Server {
  const store = new MockStore(opts.name);
  return createServer((req, res) => {
    void handle(req, res, opts, store).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'mock backend failure', type: 'server_error', param: null, code: null } }));
    });
  });
}

/** The paths that take a JSON body, each by POST only. */
const POST_PATHS: ReadonlySet<string> = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses']);

async function handle(req: IncomingMessage, res: ServerResponse, opts: MockBackendOptions, store: MockStore): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://mock');
  const path = url.pathname;
  const ids = opts.servedModels ?? [`${opts.name}-model`];
  if (req.method === 'GET' && path === '/v1/models') {
    sendJson(res, 200, { object: 'list', data: ids.map(modelEntry) });
    return;
  }
  if (req.method === 'GET' && path.startsWith('/v1/models/')) {
    // `client.models.retrieve(id)`; without a served list every name is served, as a request may name any.
    const id = decodeURIComponent(path.slice('/v1/models/'.length));
    if (opts.servedModels && !ids.includes(id)) return notFound(res, `The model '${id}' does not exist`, 'model_not_found');
    sendJson(res, 200, modelEntry(id));
    return;
  }
  if (path.startsWith('/v1/responses/') && (req.method === 'GET' || req.method === 'DELETE')) {
    const [id = '', sub, ...more] = path.slice('/v1/responses/'.length).split('/');
    if (req.method === 'GET' && sub === 'input_items' && more.length === 0) return store.listInputItems(res, id, url.searchParams);
    if (sub !== undefined) return notFound(res, `no route ${req.method} ${path}`);
    const found = store.responses.get(id);
    if (!found) return notFound(res, `Response with id '${id}' not found.`);
    if (req.method === 'DELETE') store.deleteResponse(id);
    sendJson(res, 200, req.method === 'GET' ? found : { id, object: 'response', deleted: true });
    return;
  }
  if (path === '/v1/conversations' || path.startsWith('/v1/conversations/')) {
    const method = req.method ?? 'GET';
    if (method !== 'POST') return store.handle(res, method, path, url.searchParams, undefined);
    const body = await jsonBody(req, res);
    if (body) store.handle(res, method, path, url.searchParams, body);
    return;
  }
  // Anything else is answered on its path and method before a body is read: a GET of an unknown path is not
  // "invalid JSON".
  if (!POST_PATHS.has(path)) return notFound(res, `no route ${req.method ?? 'GET'} ${path}`);
  if (req.method !== 'POST') return postOnly(res, path);
  const body = await jsonBody(req, res);
  if (!body) return;
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
  const ctx: AnswerContext = { backend: opts.name, model, chunkDelayMs: opts.chunkDelayMs ?? 0 };
  if (path === '/v1/responses') return respond(res, body, ctx, store);
  return complete(res, body, ctx, path === '/v1/chat/completions');
}

/** A request's JSON object, or undefined once it has been answered 400 (not JSON, or not an object). */
async function jsonBody(req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown> | undefined> {
  const raw = (await readBody(req)).toString('utf8');
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    return void badRequest(res, 'invalid JSON', null);
  }
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) return body as Record<string, unknown>;
  return void badRequest(res, 'the body must be a JSON object', null);
}

const modelEntry = (id: string) => ({ id, object: 'model', owned_by: 'tiergate-mock' });

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
