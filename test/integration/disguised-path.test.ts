// A path written so that tiergate would not recognise it, though a backend would: Envoy's catch-all prefix route
// (/v1/) sends `/v1/chat/%63ompletions` to a backend, and uvicorn (vLLM) decodes it into /v1/chat/completions and
// serves it, unclassified, past the model ACL, the limits and the ledger. tiergate refuses such a request with an
// OpenAI-shaped 400 that names the plain path; paths it does not account for still pass untouched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chatRequestHeaders, postHeaders, type Headers } from '../../src/dev/envoy-client.js';
import { jsonBody, rowFor, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

let tg: TestTiergate;
beforeAll(async () => {
  tg = await startTiergate({ tenants: { '*': { requestsPerMinute: 1 } } });
});
afterAll(async () => {
  await tg.stop();
});

const withPath = (path: string, id: string): Headers => postHeaders(path, [['x-request-id', id]]);

describe('a disguised LLM path', () => {
  it.each([
    ['/v1/chat/%63ompletions', '/v1/chat/completions'],
    ['/v1/chat%2Fcompletions', '/v1/chat/completions'],
    ['/v1//chat/completions', '/v1/chat/completions'],
    ['/v1/chat/completions/', '/v1/chat/completions'],
    ['/v1/x/../chat/completions', '/v1/chat/completions'],
    ['/v1/%65mbeddings', '/v1/embeddings'],
    ['/v1/responses%2Fresp_123', '/v1/responses/resp_123'],
  ])('%s: refused with a 400 naming the plain path, and recorded', async (path, plain) => {
    const id = `disguised-${path}`;
    const s = tg.pool.open();
    const o = await s.sendRequestHeaders(withPath(path, id), false);
    s.close();
    expect(o).toMatchObject({ kind: 'immediate', status: 400 });
    if (o.kind !== 'immediate') return;
    const err = (JSON.parse(o.body.toString()) as { error: { code: string; message: string; type: string } }).error;
    expect([err.code, err.type]).toEqual(['invalid_path', 'invalid_request_error']);
    expect(err.message).toContain(plain.startsWith('/v1/responses/') ? '/v1/responses/resp_123' : plain);
    expect(await rowFor(tg, id)).toMatchObject({ status: 'rejected', http_status: 400, error_code: 'invalid_path' });
  });

  it('the plain path is served; a path tiergate does not account for, or a stored response already written as one, passes as before', async () => {
    const s = tg.pool.open();
    await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'plain-1']]), false);
    expect(await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }))).toMatchObject({ kind: 'continue', clearedRouteCache: true });
    s.close();
    for (const path of ['/v1/audio/transcriptions', '/v1/audio//transcriptions', '/v1/files/%66ile-1', '/healthz/', '/v1/responses/resp_1/input_items/']) {
      const o = tg.pool.open();
      expect((await o.sendRequestHeaders(withPath(path, `other-${path}`), false)).kind).toBe('continue');
      o.close();
    }
  });
});
