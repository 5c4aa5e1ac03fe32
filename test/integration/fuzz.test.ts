// Bad input, generated: "a malformed request is a 4xx OpenAI-shaped reply, never a crashed stream or a hung
// request", and a response tiergate cannot make sense of never breaks the stream or loses the ledger row.
// fast-check generates request bodies (OpenAI-like objects with wrong types, unknown and hostile keys, odd
// Unicode; byte-level damage to them; random bytes) and response bodies (JSON, SSE events cut at random offsets,
// random bytes, under any content type), and drives each through the Envoy-faithful client against a real
// tiergate. Every property below must hold for every generated case; a failure prints the shrunk case.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { parse as losslessParse, stringify as losslessStringify } from 'lossless-json';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECOMMENDED_FILTER, getHeader, postHeaders, type ExtProcSession, type Headers, type Outcome } from '../../src/dev/envoy-client.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { RedisServer } from '../helpers/redis-server.js';
import { metricValue, startTiergate, type TestTiergate } from '../helpers/tiergate.js';
import { fuzzRuns, fuzzTimeout } from '../helpers/generated.js';

const TIER_MODELS = new Set(['weak-model', 'strong-model']);
const LLM_PATHS = ['/v1/chat/completions', '/v1/completions', '/v1/responses'] as const;

/** These tests are about input, not latency: a loaded machine must not turn a slow answer into Envoy's 504. */
const PATIENT = { ...RECOMMENDED_FILTER, messageTimeoutMs: 10_000 };

let t: TestTiergate;
beforeAll(async () => {
  t = await startTiergate();
});
afterAll(async () => t.stop());

// ---- request bodies ----

/** Any JSON value, small; strings from the whole of Unicode (lone surrogates become U+FFFD in JSON.stringify). */
const anyJson = fc.jsonValue({ maxDepth: 3, depthSize: 'small' });
// The constants are texts that broke a library tiergate hands client text to: the tokenizer threw on a special
// token's string (a 500 under a token limit), the embedder on a question of only punctuation.
const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }), fc.constantFrom('', ' ', 'refactor', '설계', '😀'.repeat(300), 'What does <|endoftext|> mean?', '<|im_start|>user', '?', ' ... '));
const role = fc.oneof(fc.constantFrom('system', 'user', 'assistant', 'tool', 'developer', 'function'), fc.string(), anyJson);
const part = fc.oneof(
  fc.record({ type: fc.constantFrom('text', 'input_text', 'output_text'), text: fc.oneof(text, anyJson) }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constantFrom('image_url', 'input_image'), image_url: fc.oneof(fc.record({ url: fc.webUrl() }), anyJson) }),
  anyJson,
);
const content = fc.oneof(text, fc.constant(null), fc.array(part, { maxLength: 4 }), anyJson);
const message = fc.oneof(
  fc.record({ role, content, name: fc.string(), tool_calls: anyJson, tool_call_id: fc.string() }, { requiredKeys: ['role', 'content'] }),
  anyJson,
);
/** Well-typed: sealed reasoning (a few shared values, so that some come back to another caller), a call, an output. */
const sealedOrCall = fc.oneof(
  fc.record({ type: fc.constant('reasoning'), summary: fc.constant([]), encrypted_content: fc.oneof(fc.constantFrom('gAAAA-one', 'gAAAA-two'), fc.string({ minLength: 1 })) }),
  fc.record({ type: fc.constantFrom('shell_call', 'function_call'), call_id: fc.string(), arguments: text, action: anyJson }),
  fc.record({ type: fc.constantFrom('shell_call_output', 'function_call_output', 'computer_call_output'), call_id: fc.string(), output: fc.oneof(text, anyJson) }),
  fc.record({ type: fc.constant('item_reference'), id: fc.string() }),
);
/**
 * A Responses API input item that is not a message: sealed reasoning or a compaction, a call and its output (a
 * function's, a shell's, a patch's, a screenshot), a stored item named by id; its fields of any type.
 */
const responsesItem = fc.record(
  {
    type: fc.oneof(fc.constantFrom('reasoning', 'compaction', 'function_call', 'function_call_output', 'shell_call', 'shell_call_output', 'local_shell_call_output', 'apply_patch_call', 'computer_call_output', 'item_reference', 'mcp_call'), fc.string(), anyJson),
    id: fc.oneof(fc.string(), anyJson),
    encrypted_content: fc.oneof(text, anyJson),
    arguments: fc.oneof(text, anyJson),
    action: anyJson,
    output: fc.oneof(text, fc.array(fc.record({ stdout: fc.oneof(text, anyJson), stderr: fc.oneof(text, anyJson), type: fc.oneof(fc.string(), anyJson) }), { maxLength: 2 }), anyJson),
  },
  { requiredKeys: ['type'] },
);
const model = fc.oneof(fc.constantFrom('auto', 'weak-model', 'strong-model', 'gpt-4o', ''), fc.string(), anyJson);
const number = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -1, 1e308, 2 ** 53 + 1), fc.string(), anyJson);
/** Keys a request may carry, the real ones with values of any type, plus unknown and hostile ones. */
const requestObject = fc.record(
  {
    model,
    messages: fc.oneof(fc.array(message, { maxLength: 8 }), anyJson),
    prompt: fc.oneof(text, fc.array(text, { maxLength: 3 }), anyJson),
    input: fc.oneof(text, fc.array(fc.oneof(message, responsesItem), { maxLength: 4 }), anyJson),
    stream: fc.oneof(fc.boolean(), anyJson),
    stream_options: fc.oneof(fc.record({ include_usage: fc.oneof(fc.boolean(), anyJson) }), anyJson),
    max_tokens: number,
    max_completion_tokens: number,
    max_output_tokens: number,
    n: number,
    best_of: number,
    tools: anyJson,
    functions: anyJson,
    user: fc.oneof(fc.string(), anyJson),
    store: fc.oneof(fc.boolean(), anyJson),
    previous_response_id: fc.oneof(fc.string(), anyJson),
    __proto__: anyJson,
    constructor: anyJson,
    toString: anyJson,
  },
  { requiredKeys: [] },
);
/** A JSON text with damage done to it: cut short, a byte changed, invalid UTF-8, a BOM, a second value. */
function damaged(body: string): fc.Arbitrary<Buffer> {
  const b = Buffer.from(body);
  return fc.oneof(
    fc.nat({ max: b.length }).map((n) => b.subarray(0, n)),
    fc.tuple(fc.nat({ max: Math.max(0, b.length - 1) }), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
      const c = Buffer.from(b);
      if (c.length > 0) c[i] = v;
      return c;
    }),
    fc.constant(Buffer.concat([Buffer.from([0xff, 0xfe]), b])),
    fc.constant(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b])),
    fc.constant(Buffer.from(`${body} ${body}`)),
  );
}
/** Requests of the right shape for their path, with any values where the API leaves them open, and extra keys. */
const extra = fc.dictionary(fc.string({ maxLength: 12 }), anyJson, { maxKeys: 3 });
const goodText = fc.oneof(text, fc.array(fc.record({ type: fc.constant('text'), text }), { minLength: 1, maxLength: 3 }));
const optional = {
  stream: fc.boolean(),
  stream_options: fc.record({ include_usage: fc.boolean() }),
  max_tokens: fc.nat({ max: 100_000 }),
  n: fc.integer({ min: 1, max: 4 }),
  temperature: fc.double({ min: 0, max: 2, noNaN: true }),
  user: fc.string(),
  seed: fc.oneof(fc.integer(), fc.constant(2 ** 63)),
};
const goodModel = fc.constantFrom('auto', 'weak-model', 'strong-model', 'no-such-model');
const chatShaped = fc.record(
  {
    model: goodModel,
    messages: fc.array(fc.record({ role: fc.constantFrom('system', 'user', 'assistant', 'developer'), content: goodText }), { minLength: 1, maxLength: 8 }),
    tools: fc.array(fc.record({ type: fc.constant('function'), function: fc.record({ name: fc.string({ minLength: 1, maxLength: 10 }), parameters: anyJson }) }), { maxLength: 2 }),
    max_completion_tokens: fc.nat({ max: 100_000 }),
    ...optional,
  },
  { requiredKeys: ['messages'] },
);
const wellShaped: fc.Arbitrary<{ path: string; body: Record<string, unknown> }> = fc.oneof(
  chatShaped.map((body) => ({ path: '/v1/chat/completions', body })),
  fc
    .record({ model: goodModel, prompt: fc.oneof(text, fc.array(text, { minLength: 1, maxLength: 3 })), best_of: fc.integer({ min: 1, max: 4 }), ...optional }, { requiredKeys: ['model', 'prompt'] })
    .map((body) => ({ path: '/v1/completions', body })),
  fc
    .record(
      {
        model: goodModel,
        input: fc.oneof(text, fc.array(fc.oneof(fc.record({ role: fc.constantFrom('user', 'assistant', 'developer'), content: text }), sealedOrCall), { minLength: 1, maxLength: 4 })),
        store: fc.boolean(),
        max_output_tokens: fc.integer({ min: 16, max: 100_000 }),
        stream: fc.boolean(),
      },
      { requiredKeys: ['input'] },
    )
    .map((body) => ({ path: '/v1/responses', body })),
);
/** A chat request the cache may answer: no tools, and completion limits a free plan's budget can admit. */
const cacheableChat: fc.Arbitrary<RequestCase> = chatShaped.map(({ tools: _t, max_tokens: _m, max_completion_tokens: _c, n: _n, ...body }) => ({
  path: '/v1/chat/completions',
  body: Buffer.from(JSON.stringify({ ...body, max_tokens: 256 })),
}));
interface RequestCase {
  path: string;
  body: Buffer;
}
const requestCase: fc.Arbitrary<RequestCase> = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(wellShaped, extra).map(([w, x]) => ({ path: w.path, body: Buffer.from(JSON.stringify({ ...x, ...w.body })) })) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...LLM_PATHS), requestObject).map(([path, o]) => ({ path, body: Buffer.from(JSON.stringify(o)) })) },
  { weight: 2, arbitrary: wellShaped.chain((w) => damaged(JSON.stringify(w.body)).map((body) => ({ path: w.path, body }))) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom(...LLM_PATHS), fc.oneof(anyJson.map((v) => Buffer.from(JSON.stringify(v) ?? '')), fc.uint8Array({ maxLength: 300, size: 'max' }).map((a) => Buffer.from(a)))).map(([path, body]) => ({ path, body })),
  },
);

// ---- response bodies ----

const chunkEvent = fc
  .record({ content: text, finish: fc.constantFrom(null, 'stop', 'length'), model: fc.constantFrom('weak-model', 'strong-model', 'other') })
  .map(({ content, finish, model }) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model, choices: [{ index: 0, delta: { content }, finish_reason: finish }] })}\n\n`);
/** What a usage may say besides its counts: cached, reasoning and audio parts (any size), a transcription's duration. */
const wellFormedDetails = fc.record(
  {
    prompt_tokens_details: fc.record({ cached_tokens: fc.nat(), audio_tokens: fc.nat(), image_tokens: fc.nat() }, { requiredKeys: [] }),
    completion_tokens_details: fc.record({ reasoning_tokens: fc.nat(), audio_tokens: fc.nat(), image_tokens: fc.nat() }, { requiredKeys: [] }),
    type: fc.constantFrom('tokens', 'duration'),
    seconds: fc.nat(),
  },
  { requiredKeys: [] },
);
/** Any usage object: counts and details of any type. */
const anyUsage = fc.oneof(
  anyJson,
  fc.record({ prompt_tokens: number, completion_tokens: number, total_tokens: number, prompt_tokens_details: anyJson, input_token_details: anyJson, type: anyJson, seconds: number }, { requiredKeys: [] }),
  wellFormedDetails,
);
const usageEvent = fc
  .record({ prompt_tokens: fc.nat({ max: 10_000 }), completion_tokens: fc.nat({ max: 10_000 }), details: wellFormedDetails })
  .map(({ details, ...u }) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'weak-model', choices: [], usage: { ...u, ...details, total_tokens: u.prompt_tokens + u.completion_tokens } })}\n\n`);
const sseEvent = fc.oneof(
  { weight: 4, arbitrary: chunkEvent },
  { weight: 1, arbitrary: usageEvent },
  anyJson.map((v) => `data: ${JSON.stringify(v)}\n\n`),
  fc.record({ choices: fc.oneof(fc.array(anyJson, { maxLength: 2 }), anyJson), usage: anyUsage }, { requiredKeys: [] }).map((v) => `data: ${JSON.stringify(v)}\n\n`),
  fc.constantFrom('data: [DONE]\n\n', ': keep-alive\n\n', 'event: error\ndata: {"error":{"message":"x"}}\n\n', '\r\n', 'data: {"choices":[', 'retry: 10\n'),
  fc.string().map((s) => `data: ${s}\n\n`),
);
/** A stream as a backend sends it, with anything mixed in: CRLF line ends at times. */
const stream = fc
  .tuple(fc.array(sseEvent, { maxLength: 10 }), fc.boolean(), fc.boolean())
  .map(([es, done, crlf]) => {
    const s = es.join('') + (done ? 'data: [DONE]\n\n' : '');
    return Buffer.from(crlf ? s.replace(/\n/g, '\r\n') : s);
  });
/** Bytes cut into chunks at arbitrary offsets, as the network cuts them. */
function chunked(body: Buffer): fc.Arbitrary<Buffer[]> {
  return fc.uniqueArray(fc.nat({ max: Math.max(0, body.length) }), { maxLength: 6 }).map((cuts) => {
    const at = [0, ...cuts.sort((a, b) => a - b), body.length];
    const out: Buffer[] = [];
    for (let i = 1; i < at.length; i++) out.push(body.subarray(at[i - 1] as number, at[i] as number));
    return out.length > 0 ? out : [body];
  });
}
/** What a well-formed answer is known to hold: its usage, and for a stream the usage event's exact text. */
interface Known {
  total: number;
  usageEvent?: string;
}

/** A well-formed answer in both formats: the request's `stream` picks one. */
interface WellFormed {
  json: Buffer[];
  sse: { chunks: Buffer[]; usageEvent: string; total: number };
}

interface GeneratedResponse {
  status: string;
  contentType: string;
  encoding: string | undefined;
  chunks: Buffer[];
}
const response: fc.Arbitrary<GeneratedResponse> = fc.record({
  status: fc.constantFrom('200', '200', '400', '429', '500', '503'),
  contentType: fc.constantFrom('application/json', 'text/event-stream', 'text/event-stream; charset=utf-8', 'text/plain', ''),
  encoding: fc.constantFrom(undefined, undefined, undefined, 'gzip', 'br', 'x-unknown'),
  chunks: fc.oneof(
    { weight: 3, arbitrary: stream },
    { weight: 1, arbitrary: anyJson.map((v) => Buffer.from(JSON.stringify(v) ?? '')) },
    { weight: 2, arbitrary: fc.record({ model: model, usage: anyUsage, choices: anyJson }, { requiredKeys: [] }).map((v) => Buffer.from(JSON.stringify(v))) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300, size: 'max' }).map((a) => Buffer.from(a)) },
  ).chain(chunked),
});

// ---- the properties ----

interface ErrorBody {
  error: { message: unknown; type: unknown; param: unknown; code: unknown };
}

/** A local reply is OpenAI-shaped JSON: a 4xx for bad input, or a 200 cache hit; never a 5xx. */
function expectWellFormedReply(o: Extract<Outcome, { kind: 'immediate' }>): void {
  if (o.status === 200) {
    expect(getHeader(o.headers, 'x-cache')).toMatch(/^hit-/);
    return;
  }
  expect(o.status).toBeGreaterThanOrEqual(400);
  expect(o.status).toBeLessThan(500);
  expect(getHeader(o.headers, 'content-type')).toBe('application/json');
  const body = JSON.parse(o.body.toString('utf8')) as ErrorBody;
  expect(typeof body.error.message).toBe('string');
  expect(typeof body.error.type).toBe('string');
  expect(body.error).toHaveProperty('param');
  expect(body.error).toHaveProperty('code');
}

/** A routed request: the tier's headers are set and agree with the body's model, which is a tier model. */
function expectRouted(headers: Headers, body: Buffer | undefined): void {
  const tier = getHeader(headers, 'x-llm-tier');
  expect(['weak', 'strong']).toContain(tier);
  const resolved = getHeader(headers, 'x-llm-model') as string;
  expect(TIER_MODELS.has(resolved)).toBe(true);
  if (body !== undefined) {
    expect((JSON.parse(body.toString('utf8')) as { model: unknown }).model).toBe(resolved);
    expect(getHeader(headers, 'content-length')).toBe(String(body.length));
  }
}

/** The backend's answer as Envoy streams it to tiergate: every phase must be answered (never a 5xx or a reset). */
async function respond(s: ExtProcSession, res: GeneratedResponse): Promise<Buffer> {
  const headers: Headers = [[':status', res.status]];
  if (res.contentType) headers.push(['content-type', res.contentType]);
  if (res.encoding) headers.push(['content-encoding', res.encoding]);
  expect((await s.sendResponseHeaders(headers, false)).kind).toBe('continue');
  // What the client receives: each chunk, or the body tiergate answered it with.
  const received: Buffer[] = [];
  for (let i = 0; i < res.chunks.length; i++) {
    const o = await s.sendResponseBody(res.chunks[i] as Buffer, i === res.chunks.length - 1);
    expect(o.kind).toBe('continue');
    received.push(o.kind === 'continue' && o.body !== undefined ? o.body : (res.chunks[i] as Buffer));
  }
  return Buffer.concat(received);
}

let requestIds = 0;
describe('generated bad input (fast-check)', () => {
  it('any request body on an LLM path: routed with consistent headers, or a 4xx OpenAI-shaped error; any response after it: answered, and a ledger row', async () => {
    const before = (await t.rows()).length;
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(requestCase, response, async ({ path, body }, res) => {
        const id = `fuzz-${requestIds++}`;
        sent++;
        const s = t.pool.open(PATIENT);
        try {
          expect((await s.sendRequestHeaders(postHeaders(path, [['x-request-id', id]]), false)).kind).toBe('continue');
          const o = await s.sendRequestBody(body);
          if (o.kind === 'immediate') return expectWellFormedReply(o);
          expect(o.kind).toBe('continue');
          if (o.kind !== 'continue') return;
          expectRouted(s.requestHeaders, o.body);
          await respond(s, res);
        } finally {
          s.close();
        }
      }),
      { numRuns: fuzzRuns(400) },
    );
    expect(await metricValue(t.app, 'tiergate_extproc_processing_errors_total')).toBe(0);
    expect(t.pool.counters).toMatchObject({ spurious: 0, rejectedMutations: 0, timeouts: 0 });
    // Every one of them reached tiergate, so every one has its row (the runs shrinking repeats included).
    await expect.poll(async () => (await t.rows()).length - before).toBe(sent);
  }, fuzzTimeout(400, 120_000));
});

describe('generated input on paths routed without classification (fast-check)', () => {
  // Speech is read for the text it speaks (tts-1 by the character, the other by tokens); a transcription's upload
  // and an embeddings request are not read at all.
  const AUDIO_PATHS = ['/v1/audio/speech', '/v1/audio/transcriptions', '/v1/embeddings'] as const;
  const speechBody = fc
    .record({ model: fc.constantFrom('tts-1', 'gpt-4o-mini-tts'), input: fc.oneof(text, anyJson), voice: fc.string(), instructions: fc.oneof(text, anyJson) }, { requiredKeys: [] })
    .map((o) => Buffer.from(JSON.stringify(o)));
  const body = fc.oneof(
    { weight: 3, arbitrary: speechBody },
    { weight: 1, arbitrary: speechBody.chain((b) => damaged(b.toString('utf8'))) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300, size: 'max' }).map((a) => Buffer.from(a)) },
  );
  const audioAnswer: fc.Arbitrary<GeneratedResponse> = fc.record({
    status: fc.constantFrom('200', '200', '400', '500'),
    contentType: fc.constantFrom('audio/mpeg', 'text/plain', 'application/json', 'text/event-stream'),
    encoding: fc.constant(undefined),
    chunks: fc
      .oneof(
        fc.uint8Array({ maxLength: 300, size: 'max' }).map((a) => Buffer.from(a)),
        fc.record({ input_tokens: fc.nat(), output_tokens: fc.nat(), total_tokens: fc.nat() }, { requiredKeys: [] }).map((usage) => Buffer.from(`data: {"type":"speech.audio.delta","audio":"SUQz"}\n\ndata: ${JSON.stringify({ type: 'speech.audio.done', usage })}\n\n`)),
        stream,
      )
      .chain(chunked),
  });

  it('any body and any answer: routed untouched, answered, and a row whose characters are those of the text spoken', async () => {
    const u = await startTiergate({
      tiers: { weak: { model: 'weak-model' }, strong: { model: 'strong-model' }, tts: { model: 'tts-1' } },
      routing: { unclassifiedPaths: { '/v1/embeddings': { tier: 'weak' }, '/v1/audio/speech': { tier: 'tts' }, '/v1/audio/transcriptions': { tier: 'strong' } } },
      prices: { version: 'fuzz-audio', models: { 'tts-1': { characters: 15 }, 'weak-model': { input: 0.1, output: 0.4 }, 'strong-model': { input: 2.5, output: 10, audioInput: 6 } } },
    });
    try {
      const spoken = new Map<string, number>();
      let sent = 0;
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...AUDIO_PATHS), body, audioAnswer, async (path, b, res) => {
          const id = `audio-${requestIds++}`;
          sent++;
          const s = u.pool.open(PATIENT);
          try {
            expect((await s.sendRequestHeaders(postHeaders(path, [['x-request-id', id]]), false)).kind).toBe('continue');
            const o = await s.sendRequestBody(b);
            expect(o.kind).toBe('continue');
            expect(o.kind === 'continue' && o.body).toBeFalsy(); // read, never rewritten
            await respond(s, res);
          } finally {
            s.close();
          }
          let input: unknown;
          try {
            // As tiergate and the backend read it: a leading byte order mark taken off.
            input = (requestJson(b) as { input?: unknown } | null)?.input;
          } catch {
            // not JSON: nothing spoken
          }
          spoken.set(id, path === '/v1/audio/speech' && typeof input === 'string' ? [...input].length : 0);
        }),
        { numRuns: fuzzRuns(200) },
      );
      expect(await metricValue(u.app, 'tiergate_extproc_processing_errors_total')).toBe(0);
      expect(u.pool.counters).toMatchObject({ spurious: 0, rejectedMutations: 0, timeouts: 0 });
      await expect.poll(async () => (await u.rows()).length).toBe(sent);
      const rows = await u.rows();
      // A refused request spent nothing, its characters included.
      for (const r of rows) expect([r.request_id, r.usage.input_characters]).toEqual([r.request_id, r.usage_source === 'none' ? 0 : spoken.get(r.request_id)]);
      // Both ways a speech row is priced were taken: by its characters, and left unpriced.
      const speech = rows.filter((r) => r.path === '/v1/audio/speech' && r.usage_source !== 'none');
      expect(speech.some((r) => r.cost_usd !== null && (r.usage.input_characters ?? 0) > 0)).toBe(true);
      expect(speech.some((r) => r.cost_usd === null)).toBe(true);
    } finally {
      await u.stop();
    }
  }, fuzzTimeout(200, 120_000));
});

// ---- with every feature on: keys, plans, limits, the semantic cache, the model list ----

/** examples/tenants.yaml (keys, plans, ACLs, token and cost limits), plus the semantic cache for every tenant. */
function everythingOn(): ConfigInput {
  const example = parseYaml(readFileSync(fileURLToPath(new URL('../../examples/tenants.yaml', import.meta.url)), 'utf8')) as ConfigInput & { tenants: Record<string, object> };
  const tenants = Object.fromEntries(Object.entries(example.tenants).map(([k, v]) => [k, { ...v, cache: { mode: 'semantic' } }]));
  // The example's response affinity stays on, so that sealed items, item references and isolation are read too.
  // The weak model priced for audio and images too, the strong one not: such usage is both priced and not.
  const prices = { version: 'fuzz', models: { 'weak-model': { input: 0.1, output: 0.4, audioInput: 3, audioOutput: 6, audioMinute: 0.006, imageInput: 0.2 }, 'strong-model': { input: 2.5, cachedInput: 1.25, output: 10 } } };
  return { ...example, tenants: tenants as ConfigInput['tenants'], routing: { ...example.routing, models: { serve: true } }, prices };
}
/** Who the client says it is: no key, a good key (for one tenant, or for any named one), a bad one; spoofed routing. */
const anyTenant = fc.oneof(fc.constantFrom('', '(unauthenticated)', '../x'), fc.string({ maxLength: 70, size: 'max' }));
const caller: fc.Arbitrary<Headers> = fc
  .record({
    who: fc.oneof(
      { weight: 4, arbitrary: fc.record({ key: fc.constant('Bearer demo-acme-key'), tenant: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(undefined, 'acme') }, anyTenant) }) },
      { weight: 4, arbitrary: fc.record({ key: fc.constant('Bearer demo-platform-key'), tenant: fc.oneof({ weight: 3, arbitrary: fc.constantFrom('acme', 'globex', 'newco') }, fc.constant(undefined), anyTenant) }) },
      { weight: 2, arbitrary: fc.record({ key: fc.constantFrom(undefined, 'Bearer nope', 'Basic x', ''), tenant: fc.oneof(fc.constant(undefined), anyTenant) }) },
    ),
    spoof: fc.subarray([['x-llm-tier', 'strong'], ['x-llm-model', 'strong-model'], ['x-llm-classifier', 'v0']] as Array<[string, string]>),
  })
  .map(({ who: { key, tenant }, spoof }) => {
    const h: Headers = [...spoof];
    if (key !== undefined) h.push(['authorization', key]);
    // A header value cannot hold control characters (Envoy refuses them before ext_proc sees the request).
    if (tenant !== undefined) h.push(['x-tenant-id', tenant.replace(/[\u0000-\u001f\u007f]/g, '')]);
    return h;
  });

/** A request body as tiergate reads it: a leading UTF-8 byte order mark taken off, as the backends' parsers do. */
function withoutBom(body: Buffer): Buffer {
  return body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? body.subarray(3) : body;
}
function requestJson(body: Buffer): unknown {
  return JSON.parse(withoutBom(body).toString('utf8'));
}

/**
 * A cache hit is the answer in the client's wire format: SSE ending in [DONE] when it streamed, else JSON.
 * Returns the text it answers with (the message's content, or the stream's deltas joined).
 */
function expectWellFormedHit(o: Extract<Outcome, { kind: 'immediate' }>, request: Buffer): string {
  const streamed = (requestJson(request) as { stream?: unknown }).stream === true;
  const text = o.body.toString('utf8');
  if (!streamed) {
    expect(getHeader(o.headers, 'content-type')).toBe('application/json');
    const body = JSON.parse(text) as { choices: Array<{ message: { content: string | null } }> };
    return body.choices[0]?.message.content ?? '';
  }
  expect(getHeader(o.headers, 'content-type')).toMatch(/^text\/event-stream/);
  expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  const events = text.split('\n\n').filter((e) => e !== '' && e !== 'data: [DONE]');
  let content = '';
  for (const e of events) {
    const chunk = JSON.parse(e.replace(/^data: /, '')) as { choices?: Array<{ delta?: { content?: string | null } }> };
    content += chunk.choices?.[0]?.delta?.content ?? '';
  }
  return content;
}

/** The text of a well-formed answer as the backend sent it: the JSON message, or the stream's deltas joined. */
function answerText(res: GeneratedResponse): string {
  const whole = Buffer.concat(res.chunks).toString('utf8');
  if (res.contentType === 'application/json') return (JSON.parse(whole) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content ?? '';
  let content = '';
  for (const e of whole.split('\n\n')) {
    if (!e.startsWith('data: {')) continue;
    content += (JSON.parse(e.slice('data: '.length)) as { choices: Array<{ delta?: { content?: string } }> }).choices[0]?.delta?.content ?? '';
  }
  return content;
}

// With Redis the stores' own code runs (Lua scripts, the Redis vector index), on a private redis-server; fewer
// cases, each being several Redis round trips.
describe.each([
  ['memory', 400],
  ['redis', 150],
] as const)('generated bad input, every feature on (%s stores)', (store, defaultRuns) => {
  let all: TestTiergate;
  let redis: RedisServer | undefined;
  // Every case a minute later than the one before, so that the free plan's 5 requests per minute refuse some
  // repeats but not every request after the first few.
  const clock = { t: Date.UTC(2026, 11, 1, 0, 0, 30) };
  beforeAll(async () => {
    const config = everythingOn();
    if (store === 'redis') {
      redis = await RedisServer.start();
      // Timeouts a loaded CI machine meets: this is about input, not about a slow Redis.
      const on = { url: redis.url, commandTimeoutMs: 1000, connectTimeoutMs: 1000 };
      config.budgets = { ...config.budgets, store: 'redis', redis: { ...on, keyPrefix: 'fuzz:b:' } };
      config.cache = { store: 'redis', redis: { ...on, keyPrefix: 'fuzz:c:' }, lookupDeadlineMs: 1000, semantic: { lookupDeadlineMs: 1000 } };
    }
    all = await startTiergate(config, {}, { now: () => clock.t });
  });
  afterAll(async () => {
    await all.stop();
    await redis?.down();
  });

  it('any caller, request and response, sent once or twice: routed for a tenant its key allows, answered from its own cache in the wire format it asked for, or a 4xx; never a 5xx', async () => {
    let hits = 0;
    let routed = 0;
    /** Rows to check once written: a well-formed answer's usage must be the row's, as reported. */
    const reported: Array<{ id: string; total: number }> = [];
    /** The text of the well-formed answer last routed for a caller, path and body: what an exact hit must say. */
    const answered = new Map<string, string>();
    const cacheKey = (path: string, who: Headers, body: Buffer) => JSON.stringify([path, who, withoutBom(body).toString('base64')]);
    let exactChecked = 0;
    /**
     * `settle`: end with Envoy's graceful close, which resolves once tiergate has finished the stream. `known`: the
     * response is a well-formed answer, whose usage and (for a stream) usage event are known.
     */
    const send = async (path: string, who: Headers, body: Buffer, res: GeneratedResponse | undefined, id: string, settle = false, known?: Known) => {
      const s = all.pool.open(PATIENT);
      try {
        const first = await s.sendRequestHeaders(postHeaders(path, [...who, ['x-request-id', id]]), false);
        if (first.kind === 'immediate') return expectWellFormedReply(first);
        expect(first.kind).toBe('continue');
        const o = await s.sendRequestBody(body);
        if (o.kind === 'immediate') {
          if (o.status === 200) {
            hits++;
            const content = expectWellFormedHit(o, body);
            // An exact hit answers with what the backend answered this very request (any wire format, any cut).
            const stored = answered.get(cacheKey(path, who, body));
            if (getHeader(o.headers, 'x-cache') === 'hit-exact' && stored !== undefined) {
              expect(content).toBe(stored);
              exactChecked++;
            }
          }
          return expectWellFormedReply(o);
        }
        expect(o.kind).toBe('continue');
        if (o.kind !== 'continue') return;
        routed++;
        expectRouted(s.requestHeaders, o.body);
        // The tenant is the one the key may act for (acme's key: acme; the platform key: the one it names), and
        // the key itself goes no further.
        const key = getHeader(who, 'authorization');
        expect(key === 'Bearer demo-acme-key' || key === 'Bearer demo-platform-key').toBe(true);
        expect(getHeader(s.requestHeaders, 'x-tenant-id')).toBe(key === 'Bearer demo-acme-key' ? 'acme' : getHeader(who, 'x-tenant-id'));
        expect(getHeader(s.requestHeaders, 'authorization')).toBeUndefined();
        if (!res) return;
        const received = await respond(s, res);
        // Chat and completions speak the answers' format (the Responses API has its own usage shape).
        if (!known || path === '/v1/responses') return;
        reported.push({ id, total: known.total });
        answered.set(cacheKey(path, who, body), answerText(res));
        if (known.usageEvent === undefined) return;
        // tiergate asked for the usage event; the client gets it only if it asked too, every other byte as sent.
        const asked = (requestJson(body) as { stream_options?: { include_usage?: unknown } }).stream_options?.include_usage === true;
        const whole = Buffer.concat(res.chunks).toString('utf8');
        expect(received.toString('utf8')).toBe(asked ? whole : whole.replace(known.usageEvent, ''));
      } finally {
        if (settle) await s.halfClose();
        else s.close();
      }
    };
    // Well-formed answers in the format the request asked for, so that some are stored and the repeat is a hit.
    const answer: fc.Arbitrary<WellFormed> = fc.record({
      json: text.map((content) => [Buffer.from(JSON.stringify({ id: 'x', object: 'chat.completion', model: 'weak-model', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 } }))]),
      sse: fc.tuple(fc.array(chunkEvent, { minLength: 1, maxLength: 4 }), usageEvent).chain(([es, u]) => {
        // Every choice finishes once, in the last content chunk: only such an answer is stored.
        const content = es.map((e) => e.replace(/"finish_reason":"(stop|length)"/, '"finish_reason":null'));
        content[content.length - 1] = (content.at(-1) as string).replace('"finish_reason":null', '"finish_reason":"stop"');
        const total = (JSON.parse(u.slice('data: '.length)) as { usage: { total_tokens: number } }).usage.total_tokens;
        return chunked(Buffer.from(`${content.join('')}${u}data: [DONE]\n\n`)).map((chunks) => ({ chunks, usageEvent: u, total }));
      }),
    });
    const answerFor = (body: Buffer, a: WellFormed): { res: GeneratedResponse; known: Known } => {
      let streamed = false;
      try {
        streamed = (requestJson(body) as { stream?: unknown }).stream === true;
      } catch {
        // not JSON: refused before any response
      }
      const res = { status: '200', contentType: streamed ? 'text/event-stream' : 'application/json', encoding: undefined, chunks: streamed ? a.sse.chunks : a.json };
      return { res, known: streamed ? { total: a.sse.total, usageEvent: a.sse.usageEvent } : { total: 10 } };
    };
    await fc.assert(
      fc.asyncProperty(fc.oneof(requestCase, { weight: 2, arbitrary: cacheableChat }), caller, fc.option(response, { freq: 2 }), answer, fc.boolean(), async ({ path, body }, headers, generated, a, twice) => {
        clock.t += 60_000;
        const id = `all-${requestIds++}`;
        // A well-formed answer is always asked for again; the others at random.
        const again = !generated || twice;
        const wellFormed = generated ? undefined : answerFor(body, a);
        await send(path, headers, body, generated ?? wellFormed?.res, id, again, wellFormed?.known);
        if (!again) return;
        // Answers are stored when their streams settle, with their ledger rows.
        await all.app.ledger.flush();
        await send(path, headers, body, undefined, `${id}-again`);
        // Another tenant asking the very same thing is never answered from this one's cache.
        const hitsBefore = hits;
        await send(path, [['authorization', 'Bearer demo-platform-key'], ['x-tenant-id', `other-${id}`]], body, undefined, `${id}-other`);
        expect(hits).toBe(hitsBefore);
      }),
      { numRuns: fuzzRuns(defaultRuns) },
    );
    expect(await metricValue(all.app, 'tiergate_extproc_processing_errors_total')).toBe(0);
    // Nothing fell back to a degraded mode: every case ran against the store under test.
    expect(await metricValue(all.app, 'tiergate_budget_store_failures_total')).toBe(0);
    expect(await metricValue(all.app, 'tiergate_cache_lookups_total', { reason: 'store_error' })).toBe(0);
    // No question, whatever its text, made the embedder fail (which counts toward its breaker, for every tenant).
    expect(await metricValue(all.app, 'tiergate_cache_lookups_total', { kind: 'semantic', reason: 'embedder_error' })).toBe(0);
    expect(all.pool.counters).toMatchObject({ spurious: 0, rejectedMutations: 0, timeouts: 0 });
    // Every well-formed answer's usage is its row's, reported, however its stream was cut.
    const rows = new Map((await all.rows()).map((r) => [r.request_id, r]));
    for (const { id, total } of reported) expect([id, rows.get(id)?.usage.total_tokens, rows.get(id)?.usage_source]).toEqual([id, total, 'reported']);
    expect(reported.length).toBeGreaterThan(10);
    // Printed, so a run shows that both paths were taken (they depend on the generated cases).
    expect(exactChecked).toBeGreaterThan(5);
    console.log(`every feature on (${store} stores): ${routed} routed, ${hits} cache hits (${exactChecked} exact ones compared with their answers), ${reported.length} answers checked`);
  }, fuzzTimeout(defaultRuns, 120_000));
});

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const objects = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

describe('hostile request shapes', () => {
  const chat = (extra: string) => Buffer.from(`{"model":"auto","messages":[{"role":"user","content":"hi"}]${extra}}`);
  it.each([
    // JSON.parse reads these; serialising them again overflowed the stack (a 500 before limits.maxJsonDepth).
    ['an extra field nested 100,000 arrays deep', chat(`,"metadata":${nested(100_000)}`)],
    ['a content part nested 100,000 objects deep', Buffer.from(`{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"x","x":${objects(100_000)}}]}]}`)],
    ['tools nested 100,000 deep (the budget counts their tokens)', chat(`,"tools":[{"type":"function","function":{"name":"f","parameters":${objects(100_000)}}}]`)],
    ['10,000 messages', Buffer.from(JSON.stringify({ model: 'auto', messages: Array.from({ length: 10_000 }, () => ({ role: 'user', content: 'hi' })) }))],
    ['a NUL and lone surrogates in content', chat(`,"user":"\\u0000\\ud800\\udfff\\udc00"`)],
    ['__proto__ and constructor keys', chat(`,"__proto__":{"model":"strong-model","stream":true},"constructor":{"prototype":{"x":1}}`)],
  ])('%s: answered, never a 5xx', async (_name, body) => {
    const errorsBefore = await metricValue(t.app, 'tiergate_extproc_processing_errors_total');
    const s = t.pool.open(PATIENT);
    await s.sendRequestHeaders(postHeaders('/v1/chat/completions'), false);
    const o = await s.sendRequestBody(body);
    s.close();
    if (o.kind === 'immediate') expectWellFormedReply(o);
    else {
      expect(o.kind).toBe('continue');
      if (o.kind === 'continue') expectRouted(s.requestHeaders, o.body);
    }
    expect(await metricValue(t.app, 'tiergate_extproc_processing_errors_total')).toBe(errorsBefore);
    if (_name.includes('100,000')) expect(o).toMatchObject({ kind: 'immediate', status: 400 });
  });

  it('a duplicate model key: the last one counts (as JSON.parse reads it), and only it goes upstream', async () => {
    const s = t.pool.open(PATIENT);
    await s.sendRequestHeaders(postHeaders('/v1/chat/completions'), false);
    const o = await s.sendRequestBody(Buffer.from('{"model":"strong-model","messages":[{"role":"user","content":"hi"}],"model":"auto"}'));
    s.close();
    if (o.kind !== 'continue' || !o.body) throw new Error(`expected a rewritten body, got ${o.kind}`);
    expect(getHeader(s.requestHeaders, 'x-llm-tier')).toBe('weak');
    expect(o.body.toString().match(/"model"/g)).toHaveLength(1);
    expectRouted(s.requestHeaders, o.body);
  });

  it('at the largest limits.maxJsonDepth (1,000), a body that deep goes through every stage that walks it', async () => {
    // Tokens per minute count the tool definitions, the exact cache keys the whole body, the route re-serialises it.
    const deep = await startTiergate({ limits: { maxJsonDepth: 1000 }, tenants: { '*': { tokensPerMinute: 1_000_000, cache: { mode: 'exact' } } } });
    try {
      // 1 (body) + 1 (tools) + 1 (tool) + 1 (function) + 996 = 1,000 levels.
      const body = Buffer.from(`{"model":"auto","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":${objects(996)}}}]}`);
      for (const [b, want] of [[body, 'continue'], [Buffer.from(body.toString().replace('"a":1', '"a":{"a":1}')), 'immediate']] as const) {
        const s = deep.pool.open(PATIENT);
        await s.sendRequestHeaders(postHeaders('/v1/chat/completions'), false);
        const o = await s.sendRequestBody(b);
        s.close();
        expect(o.kind).toBe(want);
        if (o.kind === 'continue') expectRouted(s.requestHeaders, o.body);
        else if (o.kind === 'immediate') expect(o.status).toBe(400);
      }
      expect(await metricValue(deep.app, 'tiergate_extproc_processing_errors_total')).toBe(0);
    } finally {
      await deep.stop();
    }
  });
});

/**
 * Integers beyond 2^53 reach the backend digit for digit (README "Public contract"), whatever surrounds them:
 * generated bodies carry big integers at any depth beside strings that hold digit runs, quotes, backslashes and
 * the marker the rewrite uses, and the routed body is read back with a lossless JSON parser (lossless-json) as
 * the oracle. Every number must be the client's, exactly; only a body with a string spelled like the marker may
 * fall back to the rounded one (a client string must never turn into a number).
 */
describe('generated big integers (fast-check, lossless-json as the oracle)', () => {
  const MARKER = '\u0001tg';
  const leaf = fc.oneof(
    fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
    fc.bigInt({ min: 2n ** 53n - 3n, max: 2n ** 53n + 3n }),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom('12345678901234567890', '"9007199254740993"', `${MARKER}9007199254740993`, `"${MARKER}123"`, '\\', '\\"', ': 9223372036854775807,'),
    fc.string(),
    fc.boolean(),
    fc.constant(null),
  );
  const tree = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constant(`${MARKER}1`)), tie('node'), { maxKeys: 4 })),
  })).node;
  /** Integers as bigint and every other number as a double, so that 1e20 and 100000000000000000000 agree. */
  const exactly = (text: string): unknown =>
    losslessParse(text, null, (n) => {
      if (/^-?\d+$/.test(n)) return BigInt(n);
      const d = Number(n);
      return Number.isInteger(d) ? BigInt(d) : d;
    });
  /** What JSON.parse makes of it: integers rounded to doubles first. */
  const rounded = (text: string): unknown => exactly(JSON.stringify(JSON.parse(text)));
  const withoutRouting = (v: unknown) => {
    const { model: _m, stream_options: _s, ...rest } = v as Record<string, unknown>;
    return rest;
  };

  it('every integer reaches the backend as the client wrote it, at any depth, beside any string', async () => {
    let kept = 0;
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.string({ maxLength: 8 }), tree, { maxKeys: 4 }), fc.bigInt({ min: 2n ** 53n, max: 2n ** 64n }), async (extra, seed) => {
        // Unknown top-level keys (prefixed, so that none is a field the schema checks), and the same under metadata.
        const top = Object.fromEntries(Object.entries(extra).map(([k, v]) => [`x_${k}`, v]));
        const body = losslessStringify({ ...top, model: 'auto', messages: [{ role: 'user', content: 'hi' }], seed, metadata: extra }) as string;
        const s = t.pool.open(PATIENT);
        await s.sendRequestHeaders(postHeaders('/v1/chat/completions'), false);
        const o = await s.sendRequestBody(Buffer.from(body));
        s.close();
        if (o.kind !== 'continue' || !o.body) throw new Error(`expected a routed body, got ${o.kind}`);
        const sent = o.body.toString('utf8');
        if (body.includes('\\u0001tg') || body.includes(MARKER)) {
          // A client string spelled like the marker: the rewrite falls back to what JSON.parse read, never more.
          expect([exactly, rounded].some((read) => JSON.stringify(withoutRouting(exactly(sent)), big) === JSON.stringify(withoutRouting(read(body)), big))).toBe(true);
          return;
        }
        kept++;
        expect(withoutRouting(exactly(sent))).toEqual(withoutRouting(exactly(body)));
      }),
      { numRuns: fuzzRuns(300) },
    );
    console.log(`big integers: ${kept} bodies kept exact`);
    expect(kept).toBeGreaterThan(50);
  }, fuzzTimeout(300, 30_000));
});

const big = (_k: string, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v);
