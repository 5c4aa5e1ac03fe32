// Envoy's FULL_DUPLEX_STREAMED body mode (envoy-ext-proc.md §2.2, Envoy 1.34+; kgateway's GatewayExtension
// offers it), driven by the Envoy-faithful client: body chunks go out without waiting for any answer, there is
// no message timer, and a body answer must be a streamed_response (anything else is spurious, §2.5). tiergate
// holds the request's headers answer until the body is whole, so the routing headers still reach Envoy's
// router, then sends the rewritten body in one streamed answer; response chunks are passed on one for one.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECOMMENDED_FILTER, chatRequestHeaders, getHeader, postHeaders, type ExtProcSession, type FilterConfig, type Outcome } from '../../src/dev/envoy-client.js';
import { extProcClientConstructor } from '../../src/extproc/protos.js';
import type { WireProcessingRequest, WireProcessingResponse } from '../../src/extproc/wire.js';
import { jsonBody, rowFor, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

let tg: TestTiergate;
beforeAll(async () => {
  tg = await startTiergate({ tiers: { weak: { model: 'small-v1' }, strong: { model: 'large-v1', credentialsEnv: 'STRONG_KEY' } } }, { STRONG_KEY: 'sk-upstream' });
});
afterAll(async () => {
  await tg.stop();
});

const mode = (requestBodyMode: 'FULL_DUPLEX_STREAMED' | 'BUFFERED', responseBodyMode: 'FULL_DUPLEX_STREAMED' | 'STREAMED'): FilterConfig => ({
  ...RECOMMENDED_FILTER,
  // Envoy requires trailer mode SEND with FULL_DUPLEX_STREAMED.
  processingMode: { ...RECOMMENDED_FILTER.processingMode, requestBodyMode, responseBodyMode, requestTrailerMode: 'SEND', responseTrailerMode: 'SEND' },
  // Envoy ignores allow_mode_override with a duplex body; tiergate must not send overrides either.
  allowModeOverride: true,
});
const DUPLEX = mode('FULL_DUPLEX_STREAMED', 'FULL_DUPLEX_STREAMED');

function pieces(buf: Buffer, n: number): Buffer[] {
  const size = Math.ceil(buf.length / n);
  return Array.from({ length: n }, (_, i) => buf.subarray(i * size, (i + 1) * size));
}
const asContinue = (o: Outcome) => {
  if (o.kind !== 'continue') throw new Error(`expected continue, got ${JSON.stringify(o)}`);
  return o;
};

/** Headers, then every chunk at once (Envoy does not wait in this mode); the outcomes of both. */
async function sendRequest(s: ExtProcSession, headers: Array<[string, string]>, chunks: readonly Buffer[]): Promise<{ headers: Outcome; body: Outcome }> {
  const h = s.sendRequestHeaders(headers, false);
  const bodies = chunks.map((c, i) => s.sendRequestBody(c, i === chunks.length - 1));
  return { headers: await h, body: (await Promise.all(bodies))[0] as Outcome };
}

const event = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
const delta = (content: string) => event({ object: 'chat.completion.chunk', model: 'small-v1', choices: [{ index: 0, delta: { content }, finish_reason: null }], usage: null });
const USAGE_EVENT = event({ object: 'chat.completion.chunk', model: 'small-v1', choices: [], usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 } });
const STREAM = delta('Hel') + delta('lo') + USAGE_EVENT + 'data: [DONE]\n\n';

describe('FULL_DUPLEX_STREAMED request body', () => {
  it('holds the headers answer for the body: routing headers set, client copies removed, the rewritten body in one streamed answer', async () => {
    const s = tg.pool.open(DUPLEX);
    const body = jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'Please debug this race condition' }] });
    const { headers, body: b } = await sendRequest(s, chatRequestHeaders([['x-request-id', 'fd-1'], ['content-length', String(body.length)], ['x-llm-tier', 'weak'], ['authorization', 'Bearer client-key']]), pieces(body, 3));
    expect(asContinue(headers).clearedRouteCache).toBe(true);
    expect(s.requestHeaders.filter(([k]) => k === 'x-llm-tier')).toEqual([['x-llm-tier', 'strong']]);
    expect(getHeader(s.requestHeaders, 'x-llm-model')).toBe('large-v1');
    expect(getHeader(s.requestHeaders, 'authorization')).toBe('Bearer sk-upstream');
    // Envoy drops content-length in this mode and skips a server's (§5): the upstream request is chunked.
    expect(getHeader(s.requestHeaders, 'content-length')).toBeUndefined();
    const sent = JSON.parse((asContinue(b).body as Buffer).toString()) as Record<string, unknown>;
    expect(sent).toMatchObject({ model: 'large-v1', messages: [{ role: 'user', content: 'Please debug this race condition' }] });
    s.close();
    expect(await rowFor(tg, 'fd-1')).toMatchObject({ tier: 'strong', model_resolved: 'large-v1', classifier_rule: 'keyword' });
  });

  it('one chunk or many, and a body split inside a multi-byte character: the same routing and the same bytes', async () => {
    const body = jsonBody({ model: 'auto', messages: [{ role: 'user', content: '안녕하세요, 오늘 날씨 어때요?' }] });
    const results: string[] = [];
    for (const n of [1, 2, 7]) {
      const s = tg.pool.open(DUPLEX);
      const { body: b } = await sendRequest(s, chatRequestHeaders([['x-request-id', `fd-split-${n}`]]), pieces(body, n));
      expect(getHeader(s.requestHeaders, 'x-llm-tier')).toBe('weak');
      results.push((asContinue(b).body as Buffer).toString());
      s.close();
    }
    expect(new Set(results).size).toBe(1);
    expect(JSON.parse(results[0] as string)).toMatchObject({ model: 'small-v1' });
  });

  it('a request tiergate refuses gets its reply in place of the held answers (bad JSON: 400)', async () => {
    const s = tg.pool.open(DUPLEX);
    const { headers } = await sendRequest(s, chatRequestHeaders([['x-request-id', 'fd-bad']]), [Buffer.from('{"model": "auto", "mess'), Buffer.from('ages": [')]);
    expect(headers.kind).toBe('immediate');
    if (headers.kind === 'immediate') expect(headers.status).toBe(400);
    s.close();
  });

  it('a tenant past its requests per minute: the 429 on the headers, the chunks already sent are let go, the process serves on', async () => {
    const t = await startTiergate({ tenants: { '*': { requestsPerMinute: 1 } } });
    try {
      const body = jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] });
      const first = t.pool.open(DUPLEX);
      asContinue((await sendRequest(first, chatRequestHeaders([['x-request-id', 'fd-rpm-1']]), pieces(body, 2))).headers);
      first.close();
      // The minute is full: refused on the headers, while this mode's body chunks are already on their way.
      const second = t.pool.open(DUPLEX);
      const { headers } = await sendRequest(second, chatRequestHeaders([['x-request-id', 'fd-rpm-2']]), pieces(body, 3));
      expect(headers).toMatchObject({ kind: 'immediate', status: 429 });
      expect((await second.halfClose()).code).toBe(grpc.status.OK);
      expect(await rowFor(t, 'fd-rpm-2')).toMatchObject({ http_status: 429, error_code: 'requests_per_minute' });
      // The process serves on: the next stream is answered as ever.
      const other = t.pool.open(DUPLEX);
      expect((await other.sendRequestHeaders([[':method', 'GET'], [':path', '/healthz']], true)).kind).toBe('continue');
      other.close();
    } finally {
      await t.stop();
    }
  });

  it('a body that ends with trailers: decided on the trailers, headers then body then the trailers answer', async () => {
    const s = tg.pool.open(DUPLEX);
    const body = jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] });
    const h = s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'fd-trailers']]), false);
    const b = s.sendRequestBody(body, false);
    const t = s.sendRequestTrailers([['x-checksum', 'abc']]);
    expect(asContinue(await h).clearedRouteCache).toBe(true);
    expect(JSON.parse((asContinue(await b).body as Buffer).toString())).toMatchObject({ model: 'small-v1' });
    asContinue(await t);
    expect(getHeader(s.requestHeaders, 'x-llm-tier')).toBe('weak');
    s.close();
  });

  it('a path tiergate does not account for: headers answered at once, each chunk passed on as it came', async () => {
    const s = tg.pool.open(DUPLEX);
    const chunks = [Buffer.from('part one, '), Buffer.from('part two')];
    const seen: string[] = [];
    s.onStreamedBody = (_kind, b) => seen.push(b.toString());
    const h = await s.sendRequestHeaders(postHeaders('/v1/audio/transcriptions', [['x-request-id', 'fd-other']]), false);
    asContinue(h);
    const bodies = await Promise.all(chunks.map((c, i) => s.sendRequestBody(c, i === chunks.length - 1)));
    expect(asContinue(bodies[0] as Outcome).body?.toString()).toBe('part one, part two');
    expect(seen).toEqual(['part one, ', 'part two']);
    s.close();
  });
});

describe('FULL_DUPLEX_STREAMED response body', () => {
  async function routed(requestId: string, filter: FilterConfig, extra: Record<string, unknown> = {}): Promise<ExtProcSession> {
    const s = tg.pool.open(filter);
    const body = jsonBody({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'hi' }], ...extra });
    if (filter.processingMode.requestBodyMode === 'FULL_DUPLEX_STREAMED') await sendRequest(s, chatRequestHeaders([['x-request-id', requestId]]), [body]);
    else {
      await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', requestId]]), false);
      asContinue(await s.sendRequestBody(body));
    }
    return s;
  }

  it.each([
    ['both directions duplex', DUPLEX],
    ['request BUFFERED, response duplex', mode('BUFFERED', 'FULL_DUPLEX_STREAMED')],
  ])('%s: SSE passed on chunk by chunk, usage counted, the forced usage chunk kept from the client', async (_name, filter) => {
    const id = `fd-sse-${filter.processingMode.requestBodyMode}`;
    const s = await routed(id, filter);
    const h = asContinue(await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false));
    expect(h.kind).toBe('continue');
    expect(getHeader(s.responseHeaders, 'x-llm-tier')).toBe('weak');
    const forwarded: Buffer[] = [];
    s.onStreamedBody = (kind, b) => {
      if (kind === 'response_body') forwarded.push(b);
    };
    const bytes = Buffer.from(STREAM);
    const cutAt = [5, 60, STREAM.indexOf(USAGE_EVENT) + 10, bytes.length];
    const chunks = cutAt.map((end, i) => bytes.subarray(i === 0 ? 0 : (cutAt[i - 1] as number), end));
    const all = await Promise.all([...chunks, Buffer.alloc(0)].map((c, i, a) => s.sendResponseBody(c, i === a.length - 1)));
    const whole = asContinue(all[0] as Outcome).body?.toString();
    expect(whole).toBe(STREAM.replace(USAGE_EVENT, ''));
    expect(Buffer.concat(forwarded).toString()).toBe(whole);
    // Bytes reach the client before the stream ends: the first events went on before the last chunk came.
    expect(forwarded.length).toBeGreaterThan(1);
    expect(forwarded[0]?.toString().startsWith(delta('Hel'))).toBe(true);
    expect(s.dynamicMetadata.tiergate).toMatchObject({ total_tokens: 15, usage_source: 'reported' });
    s.close();
    expect(await rowFor(tg, id)).toMatchObject({ usage_source: 'reported', usage: { input_tokens: 12, output_tokens: 3 } });
  });

  it('a JSON response: passed on as it came, usage read at its end', async () => {
    const s = await routed('fd-json', DUPLEX, { stream: false });
    asContinue(await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json'], ['content-length', '200']], false));
    expect(getHeader(s.responseHeaders, 'content-length')).toBeUndefined();
    const json = JSON.stringify({ id: 'x', object: 'chat.completion', model: 'small-v1', choices: [{ index: 0, message: { role: 'assistant', content: 'Hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 } });
    const out = await Promise.all(pieces(Buffer.from(json), 3).map((c, i) => s.sendResponseBody(c, i === 2)));
    expect(asContinue(out[0] as Outcome).body?.toString()).toBe(json);
    expect(s.dynamicMetadata.tiergate).toMatchObject({ total_tokens: 6 });
    s.close();
  });
});

describe('what tiergate writes in duplex mode, on the wire', () => {
  it('never a plain body answer, never a mode_override; per direction headers, then body, in order', async () => {
    const Client = extProcClientConstructor();
    const client = new Client(tg.target, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Process(): grpc.ClientDuplexStream<WireProcessingRequest, WireProcessingResponse> };
    const call = client.Process();
    const answers: WireProcessingResponse[] = [];
    call.on('data', (a: WireProcessingResponse) => answers.push(a));
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => undefined);
    const enc = (h: Array<[string, string]>) => ({ headers: h.map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) });
    const until = async (n: number) => {
      for (let i = 0; i < 200 && answers.length < n; i++) await new Promise((r) => setTimeout(r, 5));
    };
    const body = jsonBody({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    const [b1, b2] = pieces(body, 2) as [Buffer, Buffer];
    call.write({ request_headers: { headers: enc(chatRequestHeaders([['x-request-id', 'fd-wire']])) }, protocol_config: { request_body_mode: 'FULL_DUPLEX_STREAMED', response_body_mode: 'FULL_DUPLEX_STREAMED' } });
    call.write({ request_body: { body: b1 } });
    await new Promise((r) => setTimeout(r, 50));
    // Nothing yet: the headers answer waits for the body.
    expect(answers).toEqual([]);
    call.write({ request_body: { body: b2, end_of_stream: true } });
    await until(2);
    call.write({ response_headers: { headers: enc([[':status', '200'], ['content-type', 'text/event-stream']]) } });
    await until(3);
    call.write({ response_body: { body: Buffer.from(STREAM) } });
    call.write({ response_body: { body: Buffer.alloc(0), end_of_stream: true } });
    await until(5);
    call.end();
    expect((await status).code).toBe(grpc.status.OK);
    client.close();
    expect(answers.map((a) => a.response)).toEqual(['request_headers', 'request_body', 'response_headers', 'response_body', 'response_body']);
    for (const a of answers) {
      expect(a.mode_override).toBeFalsy();
      if (a.response === 'request_body' || a.response === 'response_body') {
        // (proto-loader adds the oneof's name, `mutation`, beside the field that is set)
        expect(Object.keys(a[a.response]?.response?.body_mutation ?? {}).filter((k) => k !== 'mutation')).toEqual(['streamed_response']);
      }
    }
    expect(answers[1]?.request_body?.response?.body_mutation?.streamed_response?.end_of_stream).toBe(true);
    expect(answers[4]?.response_body?.response?.body_mutation?.streamed_response?.end_of_stream).toBe(true);
  });

  it('the Envoy-faithful client saw no spurious answer in any test of this file', () => {
    expect(tg.pool.counters.spurious).toBe(0);
  });
});
