// The transport with hand-written handlers: ordering, failure rules, malformed input.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { DUPLEX_FILTER, ExtProcPool, RECOMMENDED_FILTER, getHeader } from '../../src/dev/envoy-client.js';
import { extProcClientConstructor } from '../../src/extproc/protos.js';
import { createExtProcServer, type ExtProcServer } from '../../src/extproc/server.js';
import { CONTINUE, type Decision, type StreamHandler } from '../../src/extproc/types.js';
import { chatHeaders } from '../helpers/tiergate.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const REPLY_500: Decision = { kind: 'reply', status: 500, headers: [['content-type', 'application/json']], body: Buffer.from('{"error":{}}'), details: 'internal' };

function passthrough(overrides: Partial<StreamHandler> = {}): StreamHandler {
  const pass = () => CONTINUE;
  return { requestHeaders: pass, requestBody: pass, requestTrailers: pass, responseHeaders: pass, responseBody: pass, responseTrailers: pass, end() {}, ...overrides };
}

async function start(handler: () => StreamHandler, rule: 'reply' | 'continue' = 'reply') {
  const errors: string[] = [];
  const server: ExtProcServer = createExtProcServer(handler, {
    allowModeOverride: () => false,
    failureRule: () => rule,
    internalErrorReply: () => REPLY_500,
    hooks: { streamStarted() {}, streamEnded() {}, answered() {}, processingError: (phase, err) => void errors.push(`${phase}: ${(err as Error).message}`) },
  });
  const port = await server.listen('127.0.0.1:0');
  const pool = new ExtProcPool(`127.0.0.1:${port}`);
  cleanups.push(() => pool.close(), async () => void (await server.shutdown(500)));
  return { pool, errors, port };
}

describe('failure rules', () => {
  it.each([
    ['a synchronous throw', () => passthrough({ requestBody: () => { throw new Error('boom'); } })],
    ['a rejected promise', () => passthrough({ requestBody: () => Promise.reject(new Error('boom')) })],
  ])('rule reply: %s becomes the 500 reply, is counted, and the server keeps serving', async (_n, handler) => {
    const { pool, errors } = await start(handler, 'reply');
    const s = pool.open();
    await s.sendRequestHeaders(chatHeaders(), false);
    const o = await s.sendRequestBody(Buffer.from('{}'));
    expect(o).toMatchObject({ kind: 'immediate', status: 500 });
    expect(errors).toEqual(['request_body: boom']);
    const next = pool.open();
    expect((await next.sendRequestHeaders(chatHeaders(), false)).kind).toBe('continue');
    next.close();
    s.close();
  });

  it('rule continue: the failing message and every later one pass unmodified', async () => {
    const { pool, errors } = await start(() => passthrough({
      requestBody: () => { throw new Error('boom'); },
      responseHeaders: () => ({ kind: 'continue', headers: { set: [['x-should-not', 'appear']] } }),
    }), 'continue');
    const s = pool.open();
    await s.sendRequestHeaders(chatHeaders(), false);
    expect((await s.sendRequestBody(Buffer.from('{}'))).kind).toBe('continue');
    expect((await s.sendResponseHeaders([[':status', '200']], false)).kind).toBe('continue');
    expect(s.responseHeaders.some(([k]) => k === 'x-should-not')).toBe(false);
    expect(errors).toHaveLength(1);
    s.close();
  });

  it("the handler's reply headers go on its own replies and on the failure rule's 500, even when it cannot give them", async () => {
    const named = { replyHeaders: () => [['x-request-id', 'req-9']] as const };
    const own = await start(() => passthrough({ ...named, requestBody: () => ({ ...REPLY_500, status: 429 }) }), 'reply');
    let s = own.pool.open();
    await s.sendRequestHeaders(chatHeaders(), false);
    let o = await s.sendRequestBody(Buffer.from('{}'));
    expect(o).toMatchObject({ kind: 'immediate', status: 429 });
    expect(o.kind === 'immediate' && [getHeader(o.headers, 'x-request-id'), getHeader(o.headers, 'content-type')]).toEqual(['req-9', 'application/json']);
    s.close();
    const failing = await start(() => passthrough({ ...named, requestBody: () => { throw new Error('boom'); } }), 'reply');
    s = failing.pool.open();
    await s.sendRequestHeaders(chatHeaders(), false);
    o = await s.sendRequestBody(Buffer.from('{}'));
    expect(o.kind === 'immediate' && [o.status, getHeader(o.headers, 'x-request-id')]).toEqual([500, 'req-9']);
    s.close();
    const broken = await start(() => passthrough({ replyHeaders: () => { throw new Error('no id'); }, requestBody: () => { throw new Error('boom'); } }), 'reply');
    s = broken.pool.open();
    await s.sendRequestHeaders(chatHeaders(), false);
    o = await s.sendRequestBody(Buffer.from('{}'));
    expect(o.kind === 'immediate' && [o.status, getHeader(o.headers, 'x-request-id')]).toEqual([500, undefined]);
    s.close();
  });

  it('a handler factory that throws is handled by the rule too', async () => {
    const { pool, errors } = await start(() => { throw new Error('factory'); }, 'reply');
    const s = pool.open();
    expect(await s.sendRequestHeaders(chatHeaders(), false)).toMatchObject({ kind: 'immediate', status: 500 });
    expect(errors).toEqual(['request_headers: factory']);
    s.close();
  });

  it('an invalid header value from a stage never reaches Envoy (which would 500 on it)', async () => {
    const { pool, errors } = await start(() => passthrough({ requestHeaders: () => ({ kind: 'continue', headers: { set: [['x-a', 'bad\r\nvalue']] } }) }), 'continue');
    const s = pool.open();
    expect(await s.sendRequestHeaders(chatHeaders(), false)).toMatchObject({ kind: 'continue' });
    expect(errors).toEqual(['request_headers: invalid value for header x-a']);
    s.close();
  });
});

describe('ordering', () => {
  it('answers in arrival order even when an earlier message takes longer', async () => {
    let n = 0;
    const { pool } = await start(() => passthrough({
      responseBody: async (chunk) => {
        const i = n++;
        // The first chunks are the slowest: an async 'data' listener would let later ones overtake them.
        await new Promise((r) => setTimeout(r, i < 3 ? 30 - i * 10 : 0));
        return { kind: 'continue', body: Buffer.from(`${chunk.toString()}!`) };
      },
    }));
    const s = pool.open();
    await s.sendRequestHeaders(chatHeaders(), false);
    await s.sendRequestBody(Buffer.from('{}'));
    await s.sendResponseHeaders([[':status', '200']], false);
    const outs = await Promise.all(Array.from({ length: 8 }, (_, i) => s.sendResponseBody(Buffer.from(String(i)), i === 7)));
    expect(outs.map((o) => (o.kind === 'continue' ? o.body?.toString() : o.kind))).toEqual(['0!', '1!', '2!', '3!', '4!', '5!', '6!', '7!']);
    s.close();
  });
});

describe('malformed input', () => {
  it('a ProcessingRequest with no request set ends the call with an error status', async () => {
    const { pool, port, errors } = await start(() => passthrough());
    pool.close();
    const Client = extProcClientConstructor();
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Process(): grpc.ClientDuplexStream<object, object> };
    cleanups.push(() => client.close());
    const call = client.Process();
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => undefined);
    call.write({});
    const st = await status;
    // INVALID_ARGUMENT, naming what is wrong: Envoy applies its failure mode and logs the status.
    expect([st.code, st.details]).toEqual([grpc.status.INVALID_ARGUMENT, 'ProcessingRequest without a request']);
    expect(errors).toEqual(['unknown: ProcessingRequest without a request']);
  });

  it('rejects nothing Envoy may legitimately send: an empty final body chunk', async () => {
    const { pool } = await start(() => passthrough());
    const s = pool.open({ ...RECOMMENDED_FILTER });
    await s.sendRequestHeaders(chatHeaders(), false);
    expect((await s.sendRequestBody(Buffer.alloc(0), true)).kind).toBe('continue');
    s.close();
  });
});

describe('FULL_DUPLEX_STREAMED with hand-written handlers (duplex.ts)', () => {
  const AWAIT: Decision = { kind: 'continue', awaitBody: true };
  const chunks = [Buffer.from('{"a":'), Buffer.from('1,"b":'), Buffer.from('2}')];

  it('rule continue: a failure on the held body passes the original bytes on, behind the held headers answer', async () => {
    const { pool, errors } = await start(() => passthrough({
      requestHeaders: () => AWAIT,
      requestBody: (_c, eos) => {
        if (eos) throw new Error('boom');
        return CONTINUE;
      },
    }), 'continue');
    const s = pool.open(DUPLEX_FILTER);
    const h = s.sendRequestHeaders(chatHeaders(), false);
    const bodies = chunks.map((c, i) => s.sendRequestBody(c, i === chunks.length - 1));
    expect((await h).kind).toBe('continue');
    expect(await bodies[0]).toMatchObject({ kind: 'continue', body: Buffer.concat(chunks) });
    expect(errors).toEqual(['request_body: boom']);
    expect(pool.counters.spurious).toBe(0);
    s.close();
  });

  it('the body decision’s headers reach the held headers answer; its body replaces the held chunks', async () => {
    const { pool } = await start(() => passthrough({
      requestHeaders: () => ({ kind: 'continue', awaitBody: true, headers: { remove: ['x-client'] } }),
      requestBody: (_c, eos) => (eos ? { kind: 'continue', headers: { set: [['x-decided', 'yes']] }, clearRouteCache: true, body: Buffer.from('{"new":true}') } : CONTINUE),
    }));
    const s = pool.open(DUPLEX_FILTER);
    const h = s.sendRequestHeaders(chatHeaders([['x-client', 'v']]), false);
    const bodies = chunks.map((c, i) => s.sendRequestBody(c, i === chunks.length - 1));
    expect(await h).toMatchObject({ kind: 'continue', clearedRouteCache: true });
    expect(getHeader(s.requestHeaders, 'x-decided')).toBe('yes');
    expect(getHeader(s.requestHeaders, 'x-client')).toBeUndefined();
    expect((await bodies[2])).toMatchObject({ kind: 'continue', body: Buffer.from('{"new":true}') });
    s.close();
  });

  it('trailers straight after the headers: the held headers answer, then the trailers answer, and no body answer (Envoy would call it spurious)', async () => {
    const { pool } = await start(() => passthrough({ requestHeaders: () => AWAIT }));
    const s = pool.open(DUPLEX_FILTER);
    const h = s.sendRequestHeaders(chatHeaders(), false);
    const t = s.sendRequestTrailers([['x-t', '1']]);
    expect((await h).kind).toBe('continue');
    expect((await t).kind).toBe('continue');
    expect(pool.counters.spurious).toBe(0);
    s.close();
  });
});
