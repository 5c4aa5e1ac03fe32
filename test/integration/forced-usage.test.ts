// The usage chunk tiergate asks for on a client's behalf is counted, then kept from a client that did not ask
// for it: driven through the Envoy-faithful client, with the response body STREAMED (chunks pipelined, each
// answer's body mutation replacing its chunk) and BUFFERED (content-length kept true to the new body).
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECOMMENDED_FILTER, chatRequestHeaders, getHeader, postHeaders, type ExtProcSession, type FilterConfig, type Outcome } from '../../src/dev/envoy-client.js';
import { jsonBody, rowFor, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

let tg: TestTiergate;
let tgForward: TestTiergate;
beforeAll(async () => {
  tg = await startTiergate();
  tgForward = await startTiergate({ usage: { forcedUsageChunk: 'forward' } });
});
afterAll(async () => {
  await tg.stop();
  await tgForward.stop();
});

const event = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
const delta = (content: string) => event({ object: 'chat.completion.chunk', model: 'weak-model', choices: [{ index: 0, delta: { content }, finish_reason: null }], usage: null });
const USAGE = { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 };
const USAGE_EVENT = event({ object: 'chat.completion.chunk', model: 'weak-model', choices: [], usage: USAGE });
const STREAM = delta('Hel') + delta('lo') + event({ object: 'chat.completion.chunk', model: 'weak-model', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: null }) + USAGE_EVENT + 'data: [DONE]\n\n';

async function streamRequest(t: TestTiergate, requestId: string, body: Record<string, unknown>, filter?: FilterConfig, path = '/v1/chat/completions'): Promise<ExtProcSession> {
  const s = t.pool.open(filter);
  await s.sendRequestHeaders(path === '/v1/chat/completions' ? chatRequestHeaders([['x-request-id', requestId]]) : postHeaders(path, [['x-request-id', requestId]]), false);
  const o = await s.sendRequestBody(jsonBody({ model: 'auto', stream: true, ...body }));
  expect(o.kind).toBe('continue');
  return s;
}

/** What reaches the client: each chunk, or its replacement, in order. Chunks are sent pipelined, as Envoy does. */
async function relay(s: ExtProcSession, pieces: readonly Buffer[]): Promise<{ text: string; replaced: number }> {
  await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
  const answers: Outcome[] = await Promise.all(pieces.map((p, i) => s.sendResponseBody(p, i === pieces.length - 1)));
  let replaced = 0;
  const out = answers.map((a, i) => {
    if (a.kind !== 'continue') throw new Error(`expected continue, got ${JSON.stringify(a)}`);
    if (a.body) replaced++;
    return a.body ?? (pieces[i] as Buffer);
  });
  return { text: Buffer.concat(out).toString(), replaced };
}

/** The stream cut mid-event at a few places, then Envoy's empty last chunk. */
function cut(text: string, at: readonly number[]): Buffer[] {
  const bytes = Buffer.from(text);
  const points = [0, ...at, bytes.length];
  return [...points.slice(1).map((p, i) => bytes.subarray(points[i], p)), Buffer.alloc(0)];
}


describe('the usage chunk tiergate forced', () => {
  it('is counted, then kept from a client that did not ask for it; every other byte arrives as sent', async () => {
    const s = await streamRequest(tg, 'strip-1', { messages: [{ role: 'user', content: 'hi' }] });
    const usageAt = STREAM.indexOf(USAGE_EVENT);
    const { text, replaced } = await relay(s, cut(STREAM, [7, usageAt + 20, usageAt + USAGE_EVENT.length + 3]));
    expect(text).toBe(STREAM.replace(USAGE_EVENT, ''));
    expect(replaced).toBeGreaterThan(0);
    expect(s.dynamicMetadata.tiergate).toMatchObject({ total_tokens: 15, usage_source: 'reported' });
    s.close();
    expect(await rowFor(tg, 'strip-1')).toMatchObject({ usage_source: 'reported', usage: { input_tokens: 12, output_tokens: 3 } });
  });

  it('reaches a client that asked for it, untouched, and chunks are never replaced', async () => {
    const s = await streamRequest(tg, 'asked-1', { stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
    const { text, replaced } = await relay(s, cut(STREAM, [7, 90, 200]));
    expect([text, replaced]).toEqual([STREAM, 0]);
    s.close();
  });

  it('is taken out of legacy completions streams too (usage before an empty choices)', async () => {
    const usageEvent = event({ object: 'text_completion', model: 'weak-model', usage: USAGE, choices: [] });
    const stream = event({ object: 'text_completion', model: 'weak-model', choices: [{ text: 'Hi', index: 0, finish_reason: 'stop' }], usage: null }) + usageEvent + 'data: [DONE]\n\n';
    const s = await streamRequest(tg, 'strip-2', { prompt: 'Say hi' }, undefined, '/v1/completions');
    const { text } = await relay(s, [Buffer.from(stream), Buffer.alloc(0)]);
    expect(text).toBe(stream.replace(usageEvent, ''));
    s.close();
    expect(await rowFor(tg, 'strip-2')).toMatchObject({ usage_source: 'reported', usage: { total_tokens: 15 } });
  });

  it('goes through with usage.forcedUsageChunk: forward', async () => {
    const s = await streamRequest(tgForward, 'fwd-1', { messages: [{ role: 'user', content: 'hi' }] });
    const { text, replaced } = await relay(s, cut(STREAM, [7, 90, 200]));
    expect([text, replaced]).toEqual([STREAM, 0]);
    s.close();
  });

  it('goes through in a compressed stream, whose bytes have no events to cut between, and is still counted', async () => {
    const s = await streamRequest(tg, 'gzip-1', { messages: [{ role: 'user', content: 'hi' }] });
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream'], ['content-encoding', 'gzip']], false);
    const zipped = gzipSync(Buffer.from(STREAM));
    const half = zipped.length >> 1;
    const answers = await Promise.all([s.sendResponseBody(zipped.subarray(0, half), false), s.sendResponseBody(zipped.subarray(half), false), s.sendResponseBody(Buffer.alloc(0), true)]);
    expect(answers.map((a) => a.kind === 'continue' && a.body === undefined)).toEqual([true, true, true]);
    s.close();
    expect(await rowFor(tg, 'gzip-1')).toMatchObject({ usage_source: 'reported', usage: { total_tokens: 15 } });
  });

  it('BUFFERED response: the whole body replaced, with a content-length Envoy accepts', async () => {
    const buffered: FilterConfig = { ...RECOMMENDED_FILTER, processingMode: { ...RECOMMENDED_FILTER.processingMode, responseBodyMode: 'BUFFERED' } };
    const s = await streamRequest(tg, 'strip-3', { messages: [{ role: 'user', content: 'hi' }] }, buffered);
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream'], ['content-length', String(Buffer.byteLength(STREAM))]], false);
    // The Envoy-faithful client answers a content-length that does not match the new body with a 500 (§5).
    const o = await s.sendResponseBody(Buffer.from(STREAM), true);
    if (o.kind !== 'continue') throw new Error(JSON.stringify(o));
    expect(o.body?.toString()).toBe(STREAM.replace(USAGE_EVENT, ''));
    expect(getHeader(s.responseHeaders, 'content-length')).toBe(String(o.body?.length));
    s.close();
  });
});
