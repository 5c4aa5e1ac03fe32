// Generated ext_proc message sequences, sent with a raw gRPC client that keeps none of Envoy's rules: any
// kind in any order, repeated or missing phases, bodies before headers, odd header entries (both value fields,
// bytes that are not UTF-8, upper-case and empty names), any protocol_config and observability_mode, then a
// half-close or a reset. The transport's contract still holds for each: it never hangs (a status arrives), never
// answers more messages than it got, answers in order and in kind, answers nothing in observability mode, and
// never asks for a mode override the config does not allow; and tiergate still serves a normal request after
// all of them.
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chatRequestHeaders } from '../../src/dev/envoy-client.js';
import { extProcClientConstructor } from '../../src/extproc/protos.js';
import type { RequestKind, WireHeaderValue, WireProcessingRequest, WireProcessingResponse } from '../../src/extproc/wire.js';
import { jsonBody, startTiergate, type TestTiergate } from '../helpers/tiergate.js';
import { fuzzRuns, fuzzTimeout } from '../helpers/generated.js';

type RawClient = grpc.Client & { Process(): grpc.ClientDuplexStream<WireProcessingRequest, WireProcessingResponse> };

let t: TestTiergate;
let client: RawClient;
beforeAll(async () => {
  t = await startTiergate();
  const Client = extProcClientConstructor();
  client = new Client(t.target, grpc.credentials.createInsecure()) as unknown as RawClient;
});
afterAll(async () => {
  client.close();
  await t.stop();
});

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const headerEntry: fc.Arbitrary<WireHeaderValue> = fc.oneof(
  fc.record({
    key: fc.constantFrom(':path', ':method', ':status', ':authority', 'content-type', 'content-length', 'authorization', 'x-request-id', 'x-tenant-id', 'x-llm-tier', 'content-encoding', 'cache-control'),
    raw_value: fc.oneof(fc.constantFrom('/v1/chat/completions', '/v1/responses', '/v1/embeddings', '/v1/models', 'POST', 'GET', '200', 'application/json', 'text/event-stream', 'gzip').map((v) => Buffer.from(v)), bytes(40)),
  }),
  fc.record({ key: fc.string({ maxLength: 20, size: 'max' }), value: fc.string({ maxLength: 20, size: 'max' }) }),
  fc.record({ key: fc.string({ maxLength: 20, size: 'max' }), value: fc.string({ maxLength: 20, size: 'max' }), raw_value: bytes(20) }),
);
const headers = fc.record({ headers: fc.record({ headers: fc.array(headerEntry, { maxLength: 8 }) }), end_of_stream: fc.boolean() }, { requiredKeys: ['headers'] });
const body = fc.record(
  { body: fc.oneof(bytes(200), fc.constant(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] })), fc.constant(Buffer.from('data: {"usage":{"total_tokens":3}}\n\n'))), end_of_stream: fc.boolean() },
  { requiredKeys: [] },
);
const trailers = fc.record({ trailers: fc.record({ headers: fc.array(headerEntry, { maxLength: 3 }) }) }, { requiredKeys: [] });
const message: fc.Arbitrary<WireProcessingRequest> = fc.oneof(
  headers.map((h) => ({ request_headers: h })),
  body.map((b) => ({ request_body: b })),
  trailers.map((x) => ({ request_trailers: x })),
  headers.map((h) => ({ response_headers: h })),
  body.map((b) => ({ response_body: b })),
  trailers.map((x) => ({ response_trailers: x })),
);
const bodyMode = fc.constantFrom('NONE', 'STREAMED', 'BUFFERED', 'BUFFERED_PARTIAL', 'FULL_DUPLEX_STREAMED');
/** What the first message may carry besides its phase. */
const firstExtras = fc.record(
  { observability_mode: fc.boolean(), protocol_config: fc.record({ request_body_mode: bodyMode, response_body_mode: bodyMode, send_body_without_waiting_for_header_response: fc.boolean() }, { requiredKeys: [] }) },
  { requiredKeys: [] },
);
/** Half the sequences start as a real request does (an LLM path's headers), so the pipeline runs on what follows. */
const llmStart = fc.constantFrom('/v1/chat/completions', '/v1/completions', '/v1/responses', '/v1/embeddings').map(
  (path): WireProcessingRequest => ({
    request_headers: { headers: { headers: [[':method', 'POST'], [':path', path], ['content-type', 'application/json']].map(([key, v]) => ({ key: key as string, raw_value: Buffer.from(v as string) })) } },
  }),
);
const sequence = fc.record({
  messages: fc.tuple(fc.option(llmStart), fc.array(message, { minLength: 1, maxLength: 8 })).map(([start, rest]) => (start ? [start, ...rest] : rest)),
  first: firstExtras,
  end: fc.constantFrom('half-close', 'half-close then reset', 'reset'),
});

const kindOf = (m: WireProcessingRequest): RequestKind => (Object.keys(m).find((k) => k.startsWith('request_') || k.startsWith('response_')) as RequestKind);

/** Sends the messages, ends the stream as asked, and collects every answer until the call's status. */
function run(messages: WireProcessingRequest[], end: string): Promise<{ answers: WireProcessingResponse[]; status: grpc.StatusObject | 'hung' }> {
  return new Promise((resolve) => {
    const call = client.Process();
    const answers: WireProcessingResponse[] = [];
    const timer = setTimeout(() => {
      call.cancel();
      resolve({ answers, status: 'hung' });
    }, 10_000); // far beyond any answer, even on a loaded machine: only a stream left open hits it
    call.on('data', (a: WireProcessingResponse) => answers.push(a));
    call.on('error', () => undefined);
    call.on('status', (status) => {
      clearTimeout(timer);
      // A reset ends the call at once on this side; give answers already on the wire a moment to be read.
      setImmediate(() => resolve({ answers, status }));
    });
    for (const m of messages) call.write(m);
    if (end !== 'reset') call.end();
    // A half-close alone waits for the server to finish; the reset follows only once it has answered everything.
    if (end === 'reset') call.cancel();
    else if (end === 'half-close then reset') setTimeout(() => call.cancel(), 50);
  });
}

/**
 * FULL_DUPLEX_STREAMED directions answer M chunks with N answers, and a request's headers answer may wait for
 * its body (duplex.ts), so answers are not matched one for one. What still holds: an immediate response is
 * last; every answer is of a kind that was sent; a body answer is a streamed_response exactly in a duplex
 * direction; and no body answer comes before its direction's headers answer.
 */
function duplexRules(sent: WireProcessingRequest[], answers: WireProcessingResponse[], duplex: { request: boolean; response: boolean }): void {
  const kinds = new Set(sent.map(kindOf));
  const headersAnswered = { request: false, response: false };
  // Only where the direction began with its headers, as Envoy's does; generated sequences may not.
  const startsWithHeaders = (direction: 'request' | 'response') => sent.map(kindOf).find((k) => k.startsWith(`${direction}_`)) === `${direction}_headers`;
  for (let i = 0; i < answers.length; i++) {
    const a = answers[i] as WireProcessingResponse;
    expect(a.mode_override).toBeFalsy();
    if (a.response === 'immediate_response') {
      expect(i).toBe(answers.length - 1);
      break;
    }
    expect(kinds.has(a.response as RequestKind)).toBe(true);
    const direction = a.response?.startsWith('request_') ? 'request' : 'response';
    if (a.response === 'request_headers' || a.response === 'response_headers') headersAnswered[direction] = true;
    if (a.response === 'request_body' || a.response === 'response_body') {
      const streamed = a[a.response]?.response?.body_mutation?.streamed_response;
      expect(streamed !== undefined).toBe(duplex[direction]);
      if (duplex[direction] && startsWithHeaders(direction)) expect(headersAnswered[direction]).toBe(true);
    }
  }
}

describe('generated ext_proc message sequences (fast-check)', () => {
  it('any sequence, any order: answered in kind and in order, never more answers than messages, never hung; tiergate serves on', async () => {
    await fc.assert(
      fc.asyncProperty(sequence, async ({ messages, first, end }) => {
        const sent = messages.map((m, i) => (i === 0 ? { ...first, ...m } : m));
        const { answers, status } = await run(sent, end);
        expect(status).not.toBe('hung');
        expect(answers.length).toBeLessThanOrEqual(sent.length);
        if (first.observability_mode === true) expect(answers).toEqual([]);
        const pc = first.protocol_config;
        const duplex = { request: pc?.request_body_mode === 'FULL_DUPLEX_STREAMED', response: pc?.response_body_mode === 'FULL_DUPLEX_STREAMED' };
        if (first.observability_mode !== true && (duplex.request || duplex.response)) return duplexRules(sent, answers, duplex);
        for (let i = 0; i < answers.length; i++) {
          const a = answers[i] as WireProcessingResponse;
          expect(a.mode_override).toBeFalsy();
          if (a.response === 'immediate_response') {
            expect(i).toBe(answers.length - 1); // nothing after an immediate response (§7)
            break;
          }
          expect(a.response).toBe(kindOf(sent[i] as WireProcessingRequest));
        }
        // Half-closed and fully answered: the call ends OK, every message answered unless one was a reply.
        if (end === 'half-close' && first.observability_mode !== true && typeof status === 'object' && status.code === grpc.status.OK && !answers.some((a) => a.response === 'immediate_response')) {
          expect(answers.length).toBe(sent.length);
        }
      }),
      { numRuns: fuzzRuns(300) },
    );
    // Still serving: a normal request is routed.
    const s = t.pool.open();
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    const o = await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'Say hi' }] }));
    s.close();
    expect(o.kind).toBe('continue');
  }, fuzzTimeout(300, 120_000));
});
