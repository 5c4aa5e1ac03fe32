// Bad input, generated: "a malformed request is a 4xx OpenAI-shaped reply, never a crashed stream or a hung
// request", and a response tiergate cannot make sense of never breaks the stream or loses the ledger row.
// fast-check generates request bodies (OpenAI-like objects with wrong types, unknown and hostile keys, odd
// Unicode; byte-level damage to them; random bytes) and response bodies (JSON, SSE events cut at random offsets,
// random bytes, under any content type), and drives each through the Envoy-faithful client against a real
// tiergate. Every property below must hold for every generated case; a failure prints the shrunk case.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECOMMENDED_FILTER, getHeader, postHeaders, type Headers, type Outcome } from '../../src/dev/envoy-client.js';
import { metricValue, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

const TIER_MODELS = new Set(['weak-model', 'strong-model']);
const LLM_PATHS = ['/v1/chat/completions', '/v1/completions', '/v1/responses'] as const;

let t: TestTiergate;
beforeAll(async () => {
  t = await startTiergate();
});
afterAll(async () => t.stop());

// ---- request bodies ----

/** Any JSON value, small; strings from the whole of Unicode (lone surrogates become U+FFFD in JSON.stringify). */
const anyJson = fc.jsonValue({ maxDepth: 3, depthSize: 'small' });
const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }), fc.constantFrom('', ' ', 'refactor', '설계', '😀'.repeat(300)));
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
const model = fc.oneof(fc.constantFrom('auto', 'weak-model', 'strong-model', 'gpt-4o', ''), fc.string(), anyJson);
const number = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -1, 1e308, 2 ** 53 + 1), fc.string(), anyJson);
/** Keys a request may carry, the real ones with values of any type, plus unknown and hostile ones. */
const requestObject = fc.record(
  {
    model,
    messages: fc.oneof(fc.array(message, { maxLength: 8 }), anyJson),
    prompt: fc.oneof(text, fc.array(text, { maxLength: 3 }), anyJson),
    input: fc.oneof(text, fc.array(message, { maxLength: 3 }), anyJson),
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
const wellShaped: fc.Arbitrary<{ path: string; body: Record<string, unknown> }> = fc.oneof(
  fc
    .record(
      {
        model: goodModel,
        messages: fc.array(fc.record({ role: fc.constantFrom('system', 'user', 'assistant', 'developer'), content: goodText }), { minLength: 1, maxLength: 8 }),
        tools: fc.array(fc.record({ type: fc.constant('function'), function: fc.record({ name: fc.string({ minLength: 1, maxLength: 10 }), parameters: anyJson }) }), { maxLength: 2 }),
        max_completion_tokens: fc.nat({ max: 100_000 }),
        ...optional,
      },
      { requiredKeys: ['messages'] },
    )
    .map((body) => ({ path: '/v1/chat/completions', body })),
  fc
    .record({ model: goodModel, prompt: fc.oneof(text, fc.array(text, { minLength: 1, maxLength: 3 })), best_of: fc.integer({ min: 1, max: 4 }), ...optional }, { requiredKeys: ['model', 'prompt'] })
    .map((body) => ({ path: '/v1/completions', body })),
  fc
    .record(
      {
        model: goodModel,
        input: fc.oneof(text, fc.array(fc.record({ role: fc.constantFrom('user', 'assistant', 'developer'), content: text }), { minLength: 1, maxLength: 4 })),
        store: fc.boolean(),
        max_output_tokens: fc.integer({ min: 16, max: 100_000 }),
        stream: fc.boolean(),
      },
      { requiredKeys: ['input'] },
    )
    .map((body) => ({ path: '/v1/responses', body })),
);
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
    arbitrary: fc.tuple(fc.constantFrom(...LLM_PATHS), fc.oneof(anyJson.map((v) => Buffer.from(JSON.stringify(v) ?? '')), fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)))).map(([path, body]) => ({ path, body })),
  },
);

// ---- response bodies ----

const chunkEvent = fc
  .record({ content: text, finish: fc.constantFrom(null, 'stop', 'length'), model: fc.constantFrom('weak-model', 'strong-model', 'other') })
  .map(({ content, finish, model }) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model, choices: [{ index: 0, delta: { content }, finish_reason: finish }] })}\n\n`);
const usageEvent = fc
  .record({ prompt_tokens: fc.nat({ max: 10_000 }), completion_tokens: fc.nat({ max: 10_000 }) })
  .map((u) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'weak-model', choices: [], usage: { ...u, total_tokens: u.prompt_tokens + u.completion_tokens } })}\n\n`);
const sseEvent = fc.oneof(
  { weight: 4, arbitrary: chunkEvent },
  { weight: 1, arbitrary: usageEvent },
  anyJson.map((v) => `data: ${JSON.stringify(v)}\n\n`),
  fc.record({ choices: fc.oneof(fc.array(anyJson, { maxLength: 2 }), anyJson), usage: fc.oneof(anyJson, fc.record({ prompt_tokens: number, completion_tokens: number, total_tokens: number })) }, { requiredKeys: [] }).map((v) => `data: ${JSON.stringify(v)}\n\n`),
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
const response = fc.record({
  status: fc.constantFrom('200', '200', '400', '429', '500', '503'),
  contentType: fc.constantFrom('application/json', 'text/event-stream', 'text/event-stream; charset=utf-8', 'text/plain', ''),
  encoding: fc.constantFrom(undefined, undefined, undefined, 'gzip', 'br', 'x-unknown'),
  chunks: fc.oneof(
    { weight: 3, arbitrary: stream },
    { weight: 1, arbitrary: anyJson.map((v) => Buffer.from(JSON.stringify(v) ?? '')) },
    { weight: 2, arbitrary: fc.record({ model: model, usage: fc.oneof(anyJson, fc.record({ prompt_tokens: number, completion_tokens: number, total_tokens: number })), choices: anyJson }, { requiredKeys: [] }).map((v) => Buffer.from(JSON.stringify(v))) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)) },
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

let requestIds = 0;
describe('generated bad input (fast-check)', () => {
  it('any request body on an LLM path: routed with consistent headers, or a 4xx OpenAI-shaped error; any response after it: answered, and a ledger row', async () => {
    const before = (await t.rows()).length;
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(requestCase, response, async ({ path, body }, res) => {
        const id = `fuzz-${requestIds++}`;
        sent++;
        const s = t.pool.open();
        try {
          expect((await s.sendRequestHeaders(postHeaders(path, [['x-request-id', id]]), false)).kind).toBe('continue');
          const o = await s.sendRequestBody(body);
          if (o.kind === 'immediate') return expectWellFormedReply(o);
          expect(o.kind).toBe('continue');
          if (o.kind !== 'continue') return;
          expectRouted(s.requestHeaders, o.body);
          const headers: Headers = [[':status', res.status]];
          if (res.contentType) headers.push(['content-type', res.contentType]);
          if (res.encoding) headers.push(['content-encoding', res.encoding]);
          expect((await s.sendResponseHeaders(headers, false)).kind).toBe('continue');
          for (let i = 0; i < res.chunks.length; i++) {
            expect((await s.sendResponseBody(res.chunks[i] as Buffer, i === res.chunks.length - 1)).kind).toBe('continue');
          }
        } finally {
          s.close();
        }
      }),
      { numRuns: Number(process.env.TIERGATE_FUZZ_RUNS ?? 400) },
    );
    expect(await metricValue(t.app, 'tiergate_extproc_processing_errors_total')).toBe(0);
    expect(t.pool.counters).toMatchObject({ spurious: 0, rejectedMutations: 0, timeouts: 0 });
    // Every one of them reached tiergate, so every one has its row (the runs shrinking repeats included).
    await expect.poll(async () => (await t.rows()).length - before).toBe(sent);
  }, 120_000);
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
    const s = t.pool.open({ ...RECOMMENDED_FILTER, messageTimeoutMs: 10_000 });
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
    const s = t.pool.open();
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
        const s = deep.pool.open({ ...RECOMMENDED_FILTER, messageTimeoutMs: 10_000 });
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
