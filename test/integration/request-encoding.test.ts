// A compressed request body on an LLM path (content-encoding: gzip, br, …). tiergate reads the body as JSON, so
// such a body used to be answered 400 invalid_json, which sent the client looking for a syntax error it did not
// make. It is refused on the request headers with 415 unsupported_content_encoding (RFC 9110 §15.5.16), before
// Envoy buffers any of it; decompressing is Envoy's decompressor filter's job, placed before ext_proc.
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/auth/api-keys.js';
import { chatRequestHeaders, getHeader, postHeaders } from '../../src/dev/envoy-client.js';
import { jsonBody, rowFor, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

const KEY = 'tg-test-key-encoding';
let tg: TestTiergate;
beforeAll(async () => {
  tg = await startTiergate({ auth: { mode: 'api_key', keys: [{ id: 'app', sha256: sha256Hex(KEY), tenant: 'acme' }] } });
});
afterAll(async () => {
  await tg.stop();
});

const body = jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] });
const headers = (id: string, extra: Array<[string, string]>, path = '/v1/chat/completions') =>
  postHeaders(path, [['x-request-id', id], ['authorization', `Bearer ${KEY}`], ...extra]);

describe('a request body with a content-encoding', () => {
  it.each([
    ['gzip', 'gzip'],
    ['br', 'br'],
    ['a list with a coding in it', 'identity, GZIP'],
    ['any case', 'Deflate'],
  ])('%s: 415 unsupported_content_encoding on the headers, OpenAI-shaped, with accept-encoding: identity, and a ledger row', async (_name, coding) => {
    const id = `enc-${coding}`;
    const s = tg.pool.open();
    const o = await s.sendRequestHeaders(headers(id, [['content-encoding', coding]]), false);
    expect(o).toMatchObject({ kind: 'immediate', status: 415 });
    if (o.kind !== 'immediate') throw new Error('not refused');
    expect(getHeader(o.headers, 'content-type')).toBe('application/json');
    expect(getHeader(o.headers, 'accept-encoding')).toBe('identity');
    expect(JSON.parse(o.body.toString())).toEqual({
      error: {
        message: 'Compressed request bodies are not supported: send the JSON body without content-encoding.',
        type: 'invalid_request_error',
        param: 'content-encoding',
        code: 'unsupported_content_encoding',
      },
    });
    s.close();
    expect(await rowFor(tg, id)).toMatchObject({ status: 'rejected', tenant_id: 'acme', http_status: 415, error_code: 'unsupported_content_encoding' });
  });

  it('the refusal comes after authentication: no key is still 401', async () => {
    const s = tg.pool.open();
    const o = await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'enc-nokey'], ['content-encoding', 'gzip']]), false);
    expect(o).toMatchObject({ kind: 'immediate', status: 401 });
    s.close();
  });

  it.each([
    ['identity', 'identity'],
    ['empty', ''],
  ])('%s: read and routed as usual', async (_name, coding) => {
    const s = tg.pool.open();
    expect(await s.sendRequestHeaders(headers(`enc-plain-${_name}`, [['content-encoding', coding]]), false)).toMatchObject({ kind: 'continue' });
    const o = await s.sendRequestBody(body, true);
    expect(o).toMatchObject({ kind: 'continue', clearedRouteCache: true });
    expect(getHeader(s.requestHeaders, 'x-llm-tier')).toBe('weak');
    s.close();
  });

  it('a path routed without reading its body (embeddings) passes it on as sent', async () => {
    const s = tg.pool.open();
    const o = await s.sendRequestHeaders(headers('enc-embed', [['content-encoding', 'gzip']], '/v1/embeddings'), false);
    expect(o).toMatchObject({ kind: 'continue' });
    expect(await s.sendRequestBody(gzipSync(jsonBody({ model: 'auto', input: 'hi' })), true)).toMatchObject({ kind: 'continue' });
    expect(getHeader(s.requestHeaders, 'content-encoding')).toBe('gzip');
    s.close();
  });
});

// A body file saved by Windows PowerShell 5.1 (`Out-File -Encoding utf8`) and sent with `curl -d @file` starts with
// a UTF-8 byte order mark. vLLM and other FastAPI backends read it (Python's json.loads takes the mark off), so
// refusing it 400 invalid_json made tiergate the one hop where such a client broke.
describe('a request body that starts with a UTF-8 byte order mark', () => {
  it('is read as it would be without the mark: classified, rewritten without it, a true content-length, a routed row', async () => {
    const plain = jsonBody({ model: 'auto', seed: 1, messages: [{ role: 'user', content: 'Please optimize this query' }] });
    const s = tg.pool.open();
    await s.sendRequestHeaders(headers('enc-bom', []), false);
    const o = await s.sendRequestBody(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), plain]), true);
    if (o.kind !== 'continue') throw new Error(`not routed: ${JSON.stringify(o)}`);
    const sent = o.body as Buffer;
    expect(sent.subarray(0, 3)).not.toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    expect(JSON.parse(sent.toString('utf8'))).toEqual({ ...(JSON.parse(plain.toString()) as object), model: 'strong-model' });
    expect(getHeader(s.requestHeaders, 'content-length')).toBe(String(sent.length));
    expect(getHeader(s.requestHeaders, 'x-llm-tier')).toBe('strong'); // "optimize": the text was read
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    const usage = { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 };
    await s.sendResponseBody(jsonBody({ id: 'c', object: 'chat.completion', model: 'strong-model', choices: [], usage }), true);
    s.close();
    expect(await rowFor(tg, 'enc-bom')).toMatchObject({ status: 'success', tenant_id: 'acme', tier: 'strong', usage: { input_tokens: 12 }, error_code: null });
  });
});
