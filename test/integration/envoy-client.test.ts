// The Envoy-faithful client itself (src/dev/), against a scripted ext_proc server that answers with whatever a
// test writes, right or wrong. Every other integration suite trusts this client to treat tiergate's answers as
// Envoy would; here each of its rules is held to the fact in envoy-ext-proc.md it models (section in each name),
// so that a client too lenient to catch a server bug fails here first.
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { DUPLEX_FILTER, ExtProcPool, RECOMMENDED_FILTER, chatRequestHeaders, getHeader, type FilterConfig, type Headers } from '../../src/dev/envoy-client.js';
import { createMockBackend } from '../../src/dev/mock-backend.js';
import { extProcServiceDefinition } from '../../src/extproc/protos.js';
import { startDataPlane } from '../helpers/dev-stack.js';
import type { WireCommonResponse, WireHeaderMutation, WireProcessingRequest, WireProcessingResponse } from '../../src/extproc/wire.js';

type Call = grpc.ServerDuplexStream<WireProcessingRequest, WireProcessingResponse>;
/** How the scripted server answers each message it receives (nothing written: no answer). */
type Script = (msg: WireProcessingRequest, call: Call, index: number) => void;

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** The scripted server on a free port: every message it receives, in order, and the port. */
async function scriptedServer(script: Script) {
  const seen: WireProcessingRequest[] = [];
  const server = new grpc.Server();
  server.addService(extProcServiceDefinition(), {
    Process: (call: Call) => {
      call.on('data', (m: WireProcessingRequest) => script(m, call, seen.push(m) - 1));
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  cleanups.push(() => server.forceShutdown());
  return { port, seen };
}

/** The scripted server and a pool of sessions driving it. */
async function scripted(script: Script) {
  const { port, seen } = await scriptedServer(script);
  const pool = new ExtProcPool(`127.0.0.1:${port}`);
  cleanups.push(() => pool.close());
  return { pool, seen };
}

/** A server that answers every message with a plain continue, except those `special` answers. */
const answering = (special: (m: WireProcessingRequest) => WireProcessingResponse | undefined): Script => (m, call) =>
  call.write(special(m) ?? { [m.request as string]: m.request?.endsWith('trailers') ? {} : { response: {} } });
const common = (kind: 'request_headers' | 'request_body' | 'response_headers' | 'response_body', r: WireCommonResponse): WireProcessingResponse => ({ [kind]: { response: r } });
const raw = (key: string, v: string, append?: boolean) => ({ header: { key, raw_value: Buffer.from(v) }, ...(append === undefined ? {} : { append: { value: append } }) });
const withFilter = (over: Partial<FilterConfig>, modes: Partial<FilterConfig['processingMode']> = {}): FilterConfig => ({
  ...RECOMMENDED_FILTER,
  ...over,
  processingMode: { ...RECOMMENDED_FILTER.processingMode, ...modes },
});

/** The request headers after one headers answer carrying `mutation`, and how the session took it. */
async function afterHeaderMutation(mutation: WireHeaderMutation, headers: Headers = chatRequestHeaders([['x-a', 'old'], ['content-length', '2']])) {
  const { pool } = await scripted(answering((m) => (m.request === 'request_headers' ? common('request_headers', { header_mutation: mutation }) : undefined)));
  const s = pool.open();
  const outcome = await s.sendRequestHeaders(headers, false);
  s.close();
  return { outcome, headers: s.requestHeaders, counters: pool.counters };
}

describe('header mutations (§3, §4)', () => {
  it('removals first, then sets: removing and setting one header in one mutation sets it (§3.3)', async () => {
    const { headers } = await afterHeaderMutation({ remove_headers: ['x-a'], set_headers: [raw('x-a', 'new')] });
    expect(headers.filter(([k]) => k === 'x-a')).toEqual([['x-a', 'new']]);
  });

  it('overwrite by default, add with append: true (§3.3)', async () => {
    const { headers } = await afterHeaderMutation({ set_headers: [raw('x-a', 'one'), raw('x-b', 'two'), raw('x-b', 'three', true)] });
    expect(headers.filter(([k]) => k === 'x-a' || k === 'x-b')).toEqual([['x-a', 'one'], ['x-b', 'two'], ['x-b', 'three']]);
  });

  it('a value-only header arrives empty: only raw_value is read since 1.32 (§3.2)', async () => {
    const { headers, outcome } = await afterHeaderMutation({ set_headers: [{ header: { key: 'x-tier', value: 'strong' } }] });
    expect(outcome.kind).toBe('continue');
    expect(getHeader(headers, 'x-tier')).toBe('');
  });

  it('value and raw_value both set: a 500 (§3.2)', async () => {
    const { outcome } = await afterHeaderMutation({ set_headers: [{ header: { key: 'x-tier', value: 'strong', raw_value: Buffer.from('strong') } }] });
    expect(outcome).toEqual({ kind: 'error', status: 500, details: 'Only one of value or raw_value in the HeaderValue message should be set' });
  });

  it('host, :authority, :scheme, :method and x-envoy-* are never set, pseudo-headers and host never removed: ignored and counted; :path may change (§4)', async () => {
    const before = chatRequestHeaders();
    const { headers, outcome, counters } = await afterHeaderMutation(
      {
        remove_headers: [':path', 'host', 'x-envoy-original-path', ':status'],
        set_headers: ['host', ':authority', ':scheme', ':method', 'x-envoy-upstream'].map((k) => raw(k, 'evil')).concat(raw(':path', '/v1/other')),
      },
      before,
    );
    expect(outcome.kind).toBe('continue');
    expect(counters.rejectedMutations).toBe(9);
    // A set without append replaces: the new :path goes last.
    expect(headers).toEqual([...before.filter(([k]) => k !== ':path'), [':path', '/v1/other']]);
  });

  it.each([
    ['a value with a newline', raw('x-a', 'one\ntwo'), 'invalid header x-a'],
    ['a value with NUL', raw('x-a', 'one\0'), 'invalid header x-a'],
    ['a name with a space', raw('x a', 'v'), 'invalid header x a'],
  ])('%s is a 500 whatever the rules say (§4)', async (_n, option, details) => {
    expect((await afterHeaderMutation({ set_headers: [option] })).outcome).toEqual({ kind: 'error', status: 500, details });
  });

  it('names are compared lower-cased: an upper-case set overwrites the header Envoy sent', async () => {
    const { headers } = await afterHeaderMutation({ set_headers: [raw('X-A', 'new')] });
    expect(headers.filter(([k]) => k === 'x-a')).toEqual([['x-a', 'new']]);
  });
});

describe('bodies and content-length (§5)', () => {
  async function bufferedBodyAnswer(r: WireCommonResponse) {
    const { pool } = await scripted(answering((m) => (m.request === 'request_body' ? common('request_body', r) : undefined)));
    const s = pool.open();
    await s.sendRequestHeaders(chatRequestHeaders([['content-length', '2']]), false);
    const outcome = await s.sendRequestBody(Buffer.from('{}'));
    s.close();
    return { outcome, headers: s.requestHeaders };
  }

  it('BUFFERED: a body of another length with the content-length kept is refused with a 500', async () => {
    expect((await bufferedBodyAnswer({ body_mutation: { body: Buffer.from('{"a":1}') } })).outcome).toEqual({
      kind: 'error',
      status: 500,
      details: 'mismatch between content length and the length of the mutated body',
    });
  });

  it('BUFFERED: the same answer setting the new length, or removing it, is taken (its header mutation applies first)', async () => {
    const body = Buffer.from('{"a":1}');
    const set = await bufferedBodyAnswer({ header_mutation: { set_headers: [raw('content-length', '7')] }, body_mutation: { body } });
    expect(set.outcome).toEqual({ kind: 'continue', body, clearedRouteCache: false });
    expect(getHeader(set.headers, 'content-length')).toBe('7');
    const removed = await bufferedBodyAnswer({ header_mutation: { remove_headers: ['content-length'] }, body_mutation: { body } });
    expect(removed.outcome).toMatchObject({ kind: 'continue', body });
    expect(getHeader(removed.headers, 'content-length')).toBeUndefined();
  });

  it('clear_body empties the body; a body of the same length needs no header', async () => {
    expect((await bufferedBodyAnswer({ header_mutation: { remove_headers: ['content-length'] }, body_mutation: { clear_body: true } })).outcome).toEqual({
      kind: 'continue',
      body: Buffer.alloc(0),
      clearedRouteCache: false,
    });
    expect((await bufferedBodyAnswer({ body_mutation: { body: Buffer.from('[]') } })).outcome).toMatchObject({ kind: 'continue', body: Buffer.from('[]') });
  });

  it("a STREAMED body answer's header mutation does not apply: headers went on before the body", async () => {
    const { pool } = await scripted(answering((m) => (m.request === 'response_body' ? common('response_body', { header_mutation: { set_headers: [raw('x-late', '1')] } }) : undefined)));
    const s = pool.open();
    await s.sendResponseHeaders([[':status', '200'], ['content-length', '10']], false);
    expect(await s.sendResponseBody(Buffer.from('data: {}\n\n'), true)).toMatchObject({ kind: 'continue' });
    // Envoy also removed the content-length itself, the response body being STREAMED.
    expect(s.responseHeaders).toEqual([[':status', '200']]);
    s.close();
  });

  it('a body in a headers answer replaces the body only with CONTINUE_AND_REPLACE, and Envoy then drops content-length', async () => {
    const body = Buffer.from('{"model":"m"}');
    // The content-length the server sets is wrong on purpose: Envoy drops it without comparing (that check is
    // the BUFFERED body answer's).
    const answer = (status?: 'CONTINUE_AND_REPLACE') =>
      afterHeaderMutationWith(common('request_headers', { ...(status ? { status } : {}), header_mutation: { set_headers: [raw('content-length', '99')] }, body_mutation: { body } }));
    const replaced = await answer('CONTINUE_AND_REPLACE');
    expect(replaced.outcome).toEqual({ kind: 'continue', body, clearedRouteCache: false });
    expect(getHeader(replaced.headers, 'content-length')).toBeUndefined();
    const ignored = await answer();
    expect(ignored.outcome).toEqual({ kind: 'continue', clearedRouteCache: false });
    expect(getHeader(ignored.headers, 'content-length')).toBe('99');
  });

  it('a BUFFERED body over the stream buffer never reaches the server: 413 for a request, 500 for a response', async () => {
    const { pool, seen } = await scripted(answering(() => undefined));
    const filter = withFilter({ bufferLimitBytes: 4 }, { responseBodyMode: 'BUFFERED' });
    const s = pool.open(filter);
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    expect(await s.sendRequestBody(Buffer.from('12345'))).toEqual({ kind: 'error', status: 413, details: 'request_payload_too_large' });
    expect(s.isDone).toBe(true);
    const r = pool.open(filter);
    await r.sendRequestHeaders(chatRequestHeaders(), false);
    await r.sendRequestBody(Buffer.from('1234'));
    await r.sendResponseHeaders([[':status', '200']], false);
    expect(await r.sendResponseBody(Buffer.from('12345'), true)).toEqual({ kind: 'error', status: 500, details: 'response_payload_too_large' });
    r.close();
    expect(seen.map((m) => m.request)).toEqual(['request_headers', 'request_headers', 'request_body', 'response_headers']);
  });

  it('the limit is for BUFFERED bodies only, and a body of exactly the limit is sent', async () => {
    const { pool, seen } = await scripted(answering(() => undefined));
    const s = pool.open(withFilter({ bufferLimitBytes: 4 }, { requestBodyMode: 'STREAMED', responseBodyMode: 'BUFFERED' }));
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    expect(await s.sendRequestBody(Buffer.from('123456789'), true)).toMatchObject({ kind: 'continue' });
    await s.sendResponseHeaders([[':status', '200']], false);
    expect(await s.sendResponseBody(Buffer.from('1234'), true)).toMatchObject({ kind: 'continue' });
    s.close();
    const streamed = pool.open(withFilter({ bufferLimitBytes: 4 }));
    await streamed.sendRequestHeaders(chatRequestHeaders(), false);
    await streamed.sendRequestBody(Buffer.from('{}'));
    await streamed.sendResponseHeaders([[':status', '200']], false);
    expect(await streamed.sendResponseBody(Buffer.from('123456789'), true)).toMatchObject({ kind: 'continue' });
    streamed.close();
    expect(seen.map((m) => m.request)).toEqual(['request_headers', 'request_body', 'response_headers', 'response_body', 'request_headers', 'request_body', 'response_headers', 'response_body']);
  });
});

async function afterHeaderMutationWith(answer: WireProcessingResponse) {
  const { pool } = await scripted(answering((m) => (m.request === 'request_headers' ? answer : undefined)));
  const s = pool.open();
  const outcome = await s.sendRequestHeaders(chatRequestHeaders([['content-length', '2']]), false);
  s.close();
  return { outcome, headers: s.requestHeaders };
}

describe('clear_route_cache (§6)', () => {
  it.each([
    ['with a header mutation, on the request path', 'request_headers', { clear_route_cache: true, header_mutation: {} }, true],
    ['without a header mutation', 'request_headers', { clear_route_cache: true }, false],
    ['in a BUFFERED request body answer, with one', 'request_body', { clear_route_cache: true, header_mutation: {} }, true],
  ] as const)('%s → cleared: %s', async (_n, kind, r, cleared) => {
    const { pool } = await scripted(answering((m) => (m.request === kind ? common(kind, r) : undefined)));
    const s = pool.open();
    const headers = await s.sendRequestHeaders(chatRequestHeaders(), false);
    const outcome = kind === 'request_headers' ? headers : await s.sendRequestBody(Buffer.from('{}'));
    s.close();
    expect(outcome).toMatchObject({ kind: 'continue', clearedRouteCache: cleared });
  });

  it('never in the response direction, nor from a STREAMED request body answer', async () => {
    const routeClear = { clear_route_cache: true, header_mutation: {} };
    const { pool } = await scripted(answering((m) => (m.request === 'response_headers' || m.request === 'request_body' ? common(m.request, routeClear) : undefined)));
    const s = pool.open(withFilter({}, { requestBodyMode: 'STREAMED' }));
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    expect(await s.sendRequestBody(Buffer.from('{}'), true)).toMatchObject({ clearedRouteCache: false });
    expect(await s.sendResponseHeaders([[':status', '200']], false)).toMatchObject({ clearedRouteCache: false });
    s.close();
  });
});

describe('ImmediateResponse (§7)', () => {
  async function immediate(ir: NonNullable<WireProcessingResponse['immediate_response']>) {
    const { pool, seen } = await scripted(answering(() => ({ immediate_response: ir })));
    const s = pool.open();
    const outcome = await s.sendRequestHeaders(chatRequestHeaders(), false);
    const after = await s.sendRequestBody(Buffer.from('{}'));
    s.close();
    return { outcome, after, seen };
  }

  it('a JSON reply: its content-type kept, content-length computed over the one sent, details as given; nothing more is sent', async () => {
    const body = Buffer.from('{"error":{}}');
    const { outcome, after, seen } = await immediate({
      status: { code: 429 },
      headers: { set_headers: [raw('content-type', 'application/json'), raw('content-length', '999'), raw('retry-after', '3')] },
      body,
      details: 'tiergate_rate_limited',
    });
    expect(outcome).toEqual({
      kind: 'immediate',
      status: 429,
      headers: [['content-type', 'application/json'], ['retry-after', '3'], ['content-length', String(body.length)]],
      body,
      details: 'tiergate_rate_limited',
    });
    expect(after).toEqual({ kind: 'skipped' });
    expect(seen).toHaveLength(1);
  });

  it('no content-type: text/plain; an empty body: neither content-type nor content-length', async () => {
    expect((await immediate({ status: { code: 403 }, body: Buffer.from('no') })).outcome).toMatchObject({ headers: [['content-length', '2'], ['content-type', 'text/plain']] });
    expect((await immediate({ status: { code: 204 }, headers: { set_headers: [raw('content-type', 'application/json')] } })).outcome).toMatchObject({
      status: 204,
      headers: [],
      body: Buffer.alloc(0),
      details: '',
    });
  });

  it.each([
    ['missing', undefined, 200],
    ['below 200', { code: 100 }, 200],
    ['a name the enum knows', { code: 'TooManyRequests' }, 429],
    ['exactly 200', { code: 200 }, 200],
  ] as const)('a status %s (%j) becomes %i', async (_n, status, expected) => {
    expect((await immediate({ ...(status ? { status } : {}), body: Buffer.from('x') })).outcome).toMatchObject({ kind: 'immediate', status: expected });
  });

  it('an invalid header in it is a 500 instead', async () => {
    expect((await immediate({ status: { code: 400 }, headers: { set_headers: [raw('x-a', 'bad\r\n')] }, body: Buffer.from('x') })).outcome).toEqual({
      kind: 'error',
      status: 500,
      details: 'invalid header x-a',
    });
  });
});

describe('timeouts and failures (§8)', () => {
  it.each([
    [false, { kind: 'error', status: 504, details: 'ext_proc_error_per-message_timeout_exceeded' }],
    [true, { kind: 'skipped' }],
  ] as const)('no answer within message_timeout, failure_mode_allow %s', async (allow, expected) => {
    const { pool } = await scripted(() => undefined);
    const s = pool.open(withFilter({ messageTimeoutMs: 50, failureModeAllow: allow }));
    expect(await s.sendRequestHeaders(chatRequestHeaders(), false)).toEqual(expected);
    expect(pool.counters.timeouts).toBe(1);
    // The stream is given up: what follows never reaches the server. Fail-open, it continues unmodified;
    // fail-closed, the request already ended with the 504, which is all that follows can get.
    expect(await s.sendRequestBody(Buffer.from('{}'))).toEqual(expected);
  });

  it('the server ends the call with OK before answering: continue unmodified, even fail-closed', async () => {
    const { pool } = await scripted((_m, call) => call.end());
    const s = pool.open();
    expect(await s.sendRequestHeaders(chatRequestHeaders(), false)).toEqual({ kind: 'skipped' });
    expect((await s.status()).code).toBe(grpc.status.OK);
  });

  it.each([
    [false, { kind: 'error', status: 500, details: `ext_proc_error_gRPC_error_${grpc.status.UNAVAILABLE}` }],
    [true, { kind: 'skipped' }],
  ] as const)('the server ends the call with an error status, failure_mode_allow %s', async (allow, expected) => {
    const { pool } = await scripted((_m, call) => call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'down' }));
    const s = pool.open(withFilter({ failureModeAllow: allow }));
    expect(await s.sendRequestHeaders(chatRequestHeaders(), false)).toEqual(expected);
  });

  it.each([
    [false, { kind: 'error', status: 500, details: `ext_proc_error_gRPC_error_${grpc.status.UNAVAILABLE}` }],
    [true, { kind: 'skipped' }],
  ] as const)('an error status with no message waiting fails the request then (SRC Filter::onGrpcError), failure_mode_allow %s', async (allow, expected) => {
    // The headers are answered; the call then fails while Envoy is still reading the body from the client.
    const { pool } = await scripted((_m, call) => {
      call.write({ request_headers: { response: {} } });
      setImmediate(() => call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'going away' }));
    });
    const s = pool.open(withFilter({ failureModeAllow: allow }));
    expect(await s.sendRequestHeaders(chatRequestHeaders(), false)).toMatchObject({ kind: 'continue' });
    expect((await s.status()).code).toBe(grpc.status.UNAVAILABLE);
    // Fail-closed, the body comes too late: the request has had its 500, not a pass.
    expect(await s.sendRequestBody(Buffer.from('{}'))).toEqual(expected);
  });
});

describe('how the filter ends the side stream (§2.6, §8)', () => {
  it("close: half-close then reset; a message still waiting continues unmodified", async () => {
    const ends: string[] = [];
    const server = await scripted((_m, call) => {
      call.on('end', () => ends.push('end'));
      call.on('cancelled', () => ends.push('cancelled'));
    });
    const s = server.pool.open();
    const waiting = s.sendRequestHeaders(chatRequestHeaders(), false);
    await expect.poll(() => server.seen.length).toBe(1);
    s.close();
    s.close();
    expect(await waiting).toEqual({ kind: 'skipped' });
    expect(await s.sendRequestBody(Buffer.from('{}'))).toEqual({ kind: 'skipped' });
    await expect.poll(() => ends).toContain('cancelled');
  });

  it('halfClose (the opt-in graceful close) waits for the server to finish the call', async () => {
    const { pool } = await scripted(answering(() => undefined));
    const s = pool.open();
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    expect((await s.halfClose()).code).toBe(grpc.status.OK);
    expect((await s.status()).code).toBe(grpc.status.OK);
    expect(s.isDone).toBe(true);
  });

  it('cancel (the downstream went away): a bare reset, and what was waiting continues unmodified', async () => {
    const { pool, seen } = await scripted(() => undefined);
    const s = pool.open();
    const waiting = s.sendRequestHeaders(chatRequestHeaders(), false);
    await expect.poll(() => seen.length).toBe(1);
    s.cancel();
    expect(await waiting).toEqual({ kind: 'skipped' });
    expect((await s.status()).code).toBe(grpc.status.CANCELLED);
  });

  it('an ImmediateResponse to the first of pipelined chunks: the others continue unmodified, unanswered', async () => {
    const { pool } = await scripted((m, call, i) => {
      if (m.request === 'request_headers') call.write(common('request_headers', {}));
      if (i === 1) call.write({ immediate_response: { status: { code: 400 }, body: Buffer.from('x') } });
    });
    const s = pool.open(withFilter({}, { requestBodyMode: 'STREAMED' }));
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    const first = s.sendRequestBody(Buffer.from('a'), false);
    const second = s.sendRequestBody(Buffer.from('b'), true);
    expect(await first).toMatchObject({ kind: 'immediate', status: 400 });
    expect(await second).toEqual({ kind: 'skipped' });
    s.close();
  });
});

describe('spurious answers (§2.5)', () => {
  it.each([
    ['an answer for another phase', () => common('request_body', {})],
    ['a streamed_response outside FULL_DUPLEX_STREAMED', () => common('request_headers', { body_mutation: { streamed_response: { body: Buffer.from('x'), end_of_stream: true } } })],
    ['an unset oneof', () => ({})],
  ])('%s: fail-closed 500 (1.35+), counted; fail-open continues', async (_n, wrong) => {
    for (const allow of [false, true]) {
      const { pool } = await scripted(answering(wrong));
      const s = pool.open(withFilter({ failureModeAllow: allow }));
      const expected = allow ? { kind: 'skipped' } : { kind: 'error', status: 500, details: 'ext_proc_error_spurious_message' };
      expect(await s.sendRequestHeaders(chatRequestHeaders(), false)).toEqual(expected);
      expect(pool.counters.spurious).toBe(1);
      expect(s.isDone).toBe(true);
    }
  });

  it('a second answer to one message is spurious and ends the stream', async () => {
    const { pool } = await scripted((_m, call, i) => {
      if (i === 0) for (let n = 0; n < 2; n++) call.write(common('request_headers', {}));
    });
    const s = pool.open();
    expect(await s.sendRequestHeaders(chatRequestHeaders(), false)).toMatchObject({ kind: 'continue' });
    await expect.poll(() => pool.counters.spurious).toBe(1);
    // Fail-closed (1.35+), the spurious answer failed the request with a 500 then; the body comes too late for it.
    expect(await s.sendRequestBody(Buffer.from('{}'))).toEqual({ kind: 'error', status: 500, details: 'ext_proc_error_spurious_message' });
  });
});

describe('what Envoy sends (§2, §9, §12)', () => {
  it('each message as Envoy builds it: lower-cased names, values in raw_value, end_of_stream only when true', async () => {
    const { pool, seen } = await scripted(answering(() => undefined));
    const s = pool.open(withFilter({ sendProtocolConfig: false }, { responseBodyMode: 'BUFFERED', requestTrailerMode: 'SEND', responseTrailerMode: 'SEND' }));
    await s.sendRequestHeaders([[':path', '/v1/chat/completions'], ['X-Request-Id', 'r1'], ['x-name', 'caf\u00e9']], false);
    await s.sendRequestBody(Buffer.from('{}'), false);
    await s.sendRequestTrailers([['x-t', 'a']]);
    await s.sendResponseHeaders([[':status', '200'], ['Content-Length', '3']], false);
    await s.sendResponseBody(Buffer.from('abc'), true);
    await s.sendResponseTrailers([['x-t', 'b']]);
    s.close();
    const header = (key: string, v: string) => ({ key, raw_value: Buffer.from(v) });
    expect(seen.map(({ request: _kind, ...m }) => m)).toEqual([
      // A header's bytes as they came: each character of the value is one byte (latin1), as Envoy holds them.
      { request_headers: { headers: { headers: [header(':path', '/v1/chat/completions'), header('x-request-id', 'r1'), { key: 'x-name', raw_value: Buffer.from([0x63, 0x61, 0x66, 0xe9]) }] } } },
      { request_body: { body: Buffer.from('{}') } },
      { request_trailers: { trailers: { headers: [header('x-t', 'a')] } } },
      // BUFFERED with its headers sent: Envoy keeps the response's content-length (§5).
      { response_headers: { headers: { headers: [header(':status', '200'), header('content-length', '3')] } } },
      { response_body: { body: Buffer.from('abc'), end_of_stream: true } },
      { response_trailers: { trailers: { headers: [header('x-t', 'b')] } } },
    ]);
  });

  it('a request without a body: end_of_stream on its headers', async () => {
    const { pool, seen } = await scripted(answering(() => undefined));
    const s = pool.open();
    await s.sendRequestHeaders([[':method', 'GET'], [':path', '/v1/models']], true);
    await s.sendResponseHeaders([[':status', '200']], true);
    s.close();
    expect(seen.map((m) => [m.request, (m.request_headers ?? m.response_headers)?.end_of_stream])).toEqual([
      ['request_headers', true],
      ['response_headers', true],
    ]);
  });

  it.each([
    ['request STREAMED', { requestBodyMode: 'STREAMED' }, 'request'],
    ['request FULL_DUPLEX_STREAMED', { requestBodyMode: 'FULL_DUPLEX_STREAMED' }, 'request'],
    ['request BUFFERED_PARTIAL', { requestBodyMode: 'BUFFERED_PARTIAL' }, 'request'],
    ['response STREAMED', { responseBodyMode: 'STREAMED' }, 'response'],
    ['response FULL_DUPLEX_STREAMED', { responseBodyMode: 'FULL_DUPLEX_STREAMED', responseTrailerMode: 'SEND' }, 'response'],
  ] as const)('%s: Envoy removes content-length before the server sees the headers, and skips one the server sets (§5)', async (_n, modes, direction) => {
    const setLength = { header_mutation: { set_headers: [raw('content-length', '5')] } };
    const { pool, seen } = await scripted(answering((m) => (m.request === `${direction}_headers` ? common(`${direction}_headers`, setLength) : undefined)));
    const s = pool.open(withFilter({}, { requestBodyMode: 'BUFFERED', ...modes }));
    const send = direction === 'request' ? () => s.sendRequestHeaders(chatRequestHeaders([['content-length', '5']]), false) : () => s.sendResponseHeaders([[':status', '200'], ['content-length', '5']], false);
    expect(await send()).toMatchObject({ kind: 'continue' });
    s.close();
    const sent = seen.find((m) => m.request === `${direction}_headers`);
    expect((sent?.request_headers ?? sent?.response_headers)?.headers?.headers?.map((h) => h.key)).not.toContain('content-length');
    expect(getHeader(direction === 'request' ? s.requestHeaders : s.responseHeaders, 'content-length')).toBeUndefined();
  });

  it('BUFFERED with the headers not sent (header mode SKIP): content-length removed too (§5)', async () => {
    const { pool, seen } = await scripted(answering(() => undefined));
    const s = pool.open(withFilter({}, { requestHeaderMode: 'SKIP' }));
    expect(await s.sendRequestHeaders(chatRequestHeaders([['content-length', '2']]), false)).toEqual({ kind: 'continue', clearedRouteCache: false });
    expect(getHeader(s.requestHeaders, 'content-length')).toBeUndefined();
    expect(await s.sendRequestBody(Buffer.from('{}'))).toMatchObject({ kind: 'continue' });
    s.close();
    expect(seen.map((m) => m.request)).toEqual(['request_body']);
  });

  it('protocol_config on the first message only, with the configured body modes', async () => {
    const { pool, seen } = await scripted(answering(() => undefined));
    const s = pool.open();
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    await s.sendRequestBody(Buffer.from('{}'));
    s.close();
    expect(seen.map((m) => m.protocol_config)).toEqual([{ request_body_mode: 'BUFFERED', response_body_mode: 'STREAMED' }, undefined]);
    expect(seen[1]?.request_body).toEqual({ body: Buffer.from('{}'), end_of_stream: true });
  });

  it('observability mode: every message marked, no protocol_config, never waits for an answer, no body unless STREAMED', async () => {
    const { pool, seen } = await scripted(() => undefined);
    const s = pool.open(withFilter({ observabilityMode: true, messageTimeoutMs: 20 }));
    expect(await s.sendRequestHeaders(chatRequestHeaders(), false)).toEqual({ kind: 'continue', clearedRouteCache: false });
    // The request body is BUFFERED: not sent. The response body is STREAMED: sent.
    expect(await s.sendRequestBody(Buffer.from('{}'))).toEqual({ kind: 'continue', clearedRouteCache: false });
    expect(await s.sendResponseHeaders([[':status', '200']], false)).toEqual({ kind: 'continue', clearedRouteCache: false });
    expect(await s.sendResponseBody(Buffer.from('data: {}\n\n'), true)).toEqual({ kind: 'continue', clearedRouteCache: false });
    await expect.poll(() => seen.length).toBe(3);
    await new Promise((r) => setTimeout(r, 60));
    s.close();
    expect(seen.map((m) => [m.request, m.observability_mode, m.protocol_config])).toEqual([
      ['request_headers', true, undefined],
      ['response_headers', true, undefined],
      ['response_body', true, undefined],
    ]);
    expect(pool.counters.timeouts).toBe(0);
  });

  it('observability mode: answers are ignored, counted, and the stream goes on', async () => {
    const { pool, seen } = await scripted(answering((m) => (m.request === 'request_headers' ? { immediate_response: { status: { code: 403 } } } : undefined)));
    const s = pool.open(withFilter({ observabilityMode: true }));
    expect(await s.sendRequestHeaders(chatRequestHeaders(), false)).toEqual({ kind: 'continue', clearedRouteCache: false });
    await expect.poll(() => pool.counters.ignoredAnswers).toBe(1);
    expect(await s.sendResponseHeaders([[':status', '200']], false)).toEqual({ kind: 'continue', clearedRouteCache: false });
    await expect.poll(() => pool.counters.ignoredAnswers).toBe(2);
    expect(s.isDone).toBe(false);
    s.close();
    expect(seen.map((m) => m.request)).toEqual(['request_headers', 'response_headers']);
    expect(pool.counters).toMatchObject({ spurious: 0, timeouts: 0 });
  });

  it('a phase whose mode is SKIP or NONE is not sent; trailers only in mode SEND (§2.4)', async () => {
    const { pool, seen } = await scripted(answering(() => undefined));
    const s = pool.open(withFilter({}, { responseHeaderMode: 'SKIP', responseBodyMode: 'NONE', requestTrailerMode: 'SEND' }));
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    await s.sendRequestBody(Buffer.from('{}'), false);
    await s.sendRequestTrailers([['x-t', '1']]);
    await s.sendResponseHeaders([[':status', '200']], false);
    await s.sendResponseBody(Buffer.from('x'), true);
    await s.sendResponseTrailers([['x-t', '2']]);
    s.close();
    expect(seen.map((m) => m.request)).toEqual(['request_headers', 'request_body', 'request_trailers']);
    // The recommended filter sends no trailers either way.
    const { pool: other, seen: none } = await scripted(answering(() => undefined));
    const d = other.open();
    expect(await d.sendRequestTrailers([['x-t', '1']])).toEqual({ kind: 'continue', clearedRouteCache: false });
    expect(await d.sendResponseTrailers([['x-t', '2']])).toEqual({ kind: 'continue', clearedRouteCache: false });
    d.close();
    expect(none).toEqual([]);
  });

  it('the request attributes Envoy was asked for, under its own namespace (§12)', async () => {
    const { pool, seen } = await scripted(answering(() => undefined));
    const s = pool.open();
    await s.sendRequestHeaders(chatRequestHeaders(), false, { 'request.path': '/v1/chat/completions' });
    s.close();
    expect(seen[0]?.attributes).toMatchObject({ 'envoy.filters.http.ext_proc': { fields: { 'request.path': { stringValue: '/v1/chat/completions' } } } });
  });
});

describe('mode_override (§10)', () => {
  const override = { response_header_mode: 'SKIP', response_body_mode: 'BUFFERED' } as const;

  it('ignored unless the filter allows it', async () => {
    const { pool } = await scripted(answering((m) => (m.request === 'request_headers' ? { ...common('request_headers', {}), mode_override: override } : undefined)));
    const s = pool.open();
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    s.close();
    expect(s.mode).toEqual(RECOMMENDED_FILTER.processingMode);
  });

  it('allowed, on a headers answer: body modes as sent (an omitted one is NONE), a DEFAULT header mode changes nothing', async () => {
    const { pool } = await scripted(answering((m) => (m.request === 'request_headers' ? { ...common('request_headers', {}), mode_override: { ...override, response_trailer_mode: 'DEFAULT' } } : undefined)));
    const s = pool.open(withFilter({ allowModeOverride: true }, { responseTrailerMode: 'SEND' }));
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    s.close();
    expect(s.mode).toEqual({ ...RECOMMENDED_FILTER.processingMode, requestBodyMode: 'NONE', responseHeaderMode: 'SKIP', responseBodyMode: 'BUFFERED', responseTrailerMode: 'SEND' });
  });

  it('allowed, on a response headers answer too; trailer modes change, a DEFAULT response header mode does not', async () => {
    const { pool } = await scripted(
      answering((m) =>
        m.request === 'response_headers'
          ? { ...common('response_headers', {}), mode_override: { response_body_mode: 'BUFFERED', response_header_mode: 'DEFAULT', request_trailer_mode: 'SEND', response_trailer_mode: 'SEND' } }
          : undefined,
      ),
    );
    const s = pool.open(withFilter({ allowModeOverride: true }));
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    await s.sendRequestBody(Buffer.from('{}'));
    await s.sendResponseHeaders([[':status', '200']], false);
    s.close();
    expect(s.mode).toEqual({ ...RECOMMENDED_FILTER.processingMode, requestBodyMode: 'NONE', responseBodyMode: 'BUFFERED', requestTrailerMode: 'SEND', responseTrailerMode: 'SEND' });
  });

  it('allowed, but on a body answer: ignored', async () => {
    const { pool } = await scripted(answering((m) => (m.request === 'request_body' ? { ...common('request_body', {}), mode_override: override } : undefined)));
    const s = pool.open(withFilter({ allowModeOverride: true }));
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    await s.sendRequestBody(Buffer.from('{}'));
    s.close();
    expect(s.mode).toEqual(RECOMMENDED_FILTER.processingMode);
  });
});

describe('dynamic metadata (§11)', () => {
  it('kept only under a receiving namespace and as a Struct; values read from the camelCase fields', async () => {
    const { pool } = await scripted(
      answering((m) =>
        m.request === 'request_headers'
          ? {
              ...common('request_headers', {}),
              dynamic_metadata: {
                fields: {
                  tiergate: { structValue: { fields: { tier: { stringValue: 'strong' }, tokens: { numberValue: 42 }, hit: { boolValue: false }, none: { nullValue: 'NULL_VALUE' } } } },
                  other: { structValue: { fields: { x: { stringValue: 'y' } } } },
                },
              },
            }
          : undefined,
      ),
    );
    const s = pool.open();
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    s.close();
    expect(s.dynamicMetadata).toEqual({ tiergate: { tier: 'strong', tokens: 42, hit: false, none: null } });
  });

  it("an ImmediateResponse's is kept; a spurious answer's is not", async () => {
    const md = (v: string) => ({ fields: { tiergate: { structValue: { fields: { code: { stringValue: v } } } } } });
    const { pool } = await scripted(answering((m) => (m.request === 'request_headers' ? { immediate_response: { status: { code: 429 } }, dynamic_metadata: md('limited') } : undefined)));
    const s = pool.open();
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    expect(s.dynamicMetadata).toEqual({ tiergate: { code: 'limited' } });
    const wrong = await scripted(answering((m) => (m.request === 'request_headers' ? { ...common('request_body', {}), dynamic_metadata: md('spurious') } : undefined)));
    const t = wrong.pool.open();
    expect(await t.sendRequestHeaders(chatRequestHeaders(), false)).toMatchObject({ kind: 'error' });
    expect(t.dynamicMetadata).toEqual({});
  });
});

describe('FULL_DUPLEX_STREAMED (§2.2)', () => {
  it("chunks go out without waiting; the server's streamed bytes are passed on as they come, the body ends with its end_of_stream", async () => {
    const { pool, seen } = await scripted((m, call) => {
      if (m.request === 'request_headers') call.write(common('request_headers', {}));
      if (m.request === 'request_body') {
        const body = m.request_body?.body ?? Buffer.alloc(0);
        call.write(common('request_body', { body_mutation: { streamed_response: { body: Buffer.from(body.toString().toUpperCase()), end_of_stream: m.request_body?.end_of_stream === true } } }));
      }
    });
    const s = pool.open(DUPLEX_FILTER);
    const passed: Array<[string, boolean]> = [];
    s.onStreamedBody = (_kind, body, eos) => void passed.push([body.toString(), eos]);
    const headers = s.sendRequestHeaders(chatRequestHeaders([['content-length', '6']]), false);
    // Both chunks are written before any answer has come.
    const first = s.sendRequestBody(Buffer.from('abc'), false);
    const second = s.sendRequestBody(Buffer.from('def'), true);
    expect(await first).toEqual({ kind: 'continue', body: Buffer.from('ABCDEF'), clearedRouteCache: false });
    expect(await second).toBe(await first);
    await headers;
    s.close();
    expect(passed).toEqual([['ABC', false], ['DEF', true]]);
    expect(seen.map((m) => m.request)).toEqual(['request_headers', 'request_body', 'request_body']);
    // Envoy removes content-length itself for a FULL_DUPLEX_STREAMED body (§5).
    expect(getHeader(s.requestHeaders, 'content-length')).toBeUndefined();
  });

  it('no message timeout on a duplex body; its trailers answer ends a body sent without end_of_stream (§2.4); an empty last piece still ends it', async () => {
    const md = { fields: { tiergate: { structValue: { fields: { seen: { boolValue: true } } } } } };
    const { pool } = await scripted((m, call) => {
      if (m.request === 'request_headers') call.write(common('request_headers', {}));
      if (m.request === 'request_body') setTimeout(() => call.write({ ...common('request_body', { body_mutation: { streamed_response: { body: m.request_body?.body } } }), dynamic_metadata: md }), 80);
      if (m.request === 'request_trailers') setTimeout(() => call.write({ request_trailers: {} }), 100);
      if (m.request === 'response_headers') call.write(common('response_headers', {}));
      if (m.request === 'response_body') call.write(common('response_body', { body_mutation: { streamed_response: { end_of_stream: true } } }));
    });
    const s = pool.open(withFilter({ messageTimeoutMs: 30 }, DUPLEX_FILTER.processingMode));
    const passed: Array<[string, string, boolean]> = [];
    s.onStreamedBody = (kind, body, eos) => void passed.push([kind, body.toString(), eos]);
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    const body = s.sendRequestBody(Buffer.from('abc'), false);
    const trailers = s.sendRequestTrailers([['x-t', '1']]);
    expect(await body).toEqual({ kind: 'continue', body: Buffer.from('abc'), clearedRouteCache: false });
    expect(await trailers).toEqual({ kind: 'continue', clearedRouteCache: false });
    await s.sendResponseHeaders([[':status', '200']], false);
    expect(await s.sendResponseBody(Buffer.from('xyz'), true)).toEqual({ kind: 'continue', body: Buffer.alloc(0), clearedRouteCache: false });
    s.close();
    expect(pool.counters.timeouts).toBe(0);
    expect(passed).toEqual([['request_body', 'abc', false], ['response_body', '', true]]);
    expect(s.dynamicMetadata).toEqual({ tiergate: { seen: true } });
  });

  it('the response side alike: ended by its trailers answer; an empty piece without end_of_stream is nothing to pass on', async () => {
    const { pool } = await scripted((m, call) => {
      if (m.request === 'request_headers' || m.request === 'response_headers') call.write(common(m.request, {}));
      if (m.request === 'request_body') call.write(common('request_body', { body_mutation: { streamed_response: { body: m.request_body?.body, end_of_stream: true } } }));
      if (m.request === 'response_body') {
        call.write(common('response_body', { body_mutation: { streamed_response: {} } }));
        call.write(common('response_body', { body_mutation: { streamed_response: { body: Buffer.from('data: x\n\n') } } }));
      }
      if (m.request === 'response_trailers') call.write({ response_trailers: {} });
    });
    const s = pool.open(DUPLEX_FILTER);
    const passed: Array<[string, string, boolean]> = [];
    s.onStreamedBody = (kind, body, eos) => void passed.push([kind, body.toString(), eos]);
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    await s.sendRequestBody(Buffer.from('{}'), true);
    await s.sendResponseHeaders([[':status', '200']], false);
    const body = s.sendResponseBody(Buffer.from('data: x\n\n'), false);
    const trailers = s.sendResponseTrailers([['grpc-status', '0']]);
    expect(await body).toEqual({ kind: 'continue', body: Buffer.from('data: x\n\n'), clearedRouteCache: false });
    expect(await trailers).toEqual({ kind: 'continue', clearedRouteCache: false });
    s.close();
    expect(passed).toEqual([['request_body', '{}', true], ['response_body', 'data: x\n\n', false]]);
  });

  it('an ImmediateResponse while a duplex body flows ends the request with it', async () => {
    const { pool } = await scripted((m, call) => {
      if (m.request === 'request_headers') call.write(common('request_headers', {}));
      if (m.request === 'request_body') call.write({ immediate_response: { status: { code: 413 }, body: Buffer.from('too big') } });
    });
    const s = pool.open(DUPLEX_FILTER);
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    expect(await s.sendRequestBody(Buffer.from('{}'), false)).toMatchObject({ kind: 'immediate', status: 413, body: Buffer.from('too big') });
    expect(pool.counters.spurious).toBe(0);
    s.close();
  });

  it('a plain body answer there is spurious (§2.5)', async () => {
    const { pool } = await scripted(answering(() => undefined));
    const s = pool.open(DUPLEX_FILTER);
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    expect(await s.sendRequestBody(Buffer.from('{}'), true)).toEqual({ kind: 'error', status: 500, details: 'ext_proc_error_spurious_message' });
    expect(pool.counters.spurious).toBe(1);
  });
});

describe('the local data plane (src/dev/data-plane.ts): a failure once the answer has started (§8)', () => {
  /** A slow streaming backend behind the data plane, and the data plane driven by the scripted server. */
  async function plane(script: Script) {
    const backend = createMockBackend({ name: 'weak', chunkDelayMs: 30 });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
    const { port } = await scriptedServer(script);
    const dp = await startDataPlane({ extProcTarget: `127.0.0.1:${port}`, backends: { weak: base }, defaultTier: 'weak' });
    cleanups.push(() => void dp.stop(), () => {
      backend.closeAllConnections();
      backend.close();
    });
    return dp.url;
  }

  it.each([
    ['an error status', (call: Call) => void call.emit('error', { code: grpc.status.INTERNAL, details: 'boom' })],
    ['an ImmediateResponse', (call: Call) => void call.write({ immediate_response: { status: { code: 500 }, body: Buffer.from('{}') } })],
  ])('%s on the second streamed piece: the client gets the first, then a reset, never the rest', async (_n, fail) => {
    let pieces = 0;
    const url = await plane((m, call) => {
      if (m.request === 'response_body' && ++pieces === 2) return fail(call);
      call.write({ [m.request as string]: m.request?.endsWith('trailers') ? {} : { response: {} } });
    });
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'weak-model', stream: true, messages: [{ role: 'user', content: 'Say hi' }] }),
    });
    expect(res.status).toBe(200);
    let text = '';
    const read = (async () => {
      for await (const piece of res.body as AsyncIterable<Uint8Array>) text += Buffer.from(piece).toString('utf8');
    })();
    await expect(read).rejects.toThrow();
    expect(text).toContain('data: ');
    expect(text).not.toContain('[DONE]');
  });
});
