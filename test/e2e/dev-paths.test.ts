// A path written oddly, through `tiergate dev`: its local Envoy normalises it as envoy.yaml has Envoy do
// (normalize_path, merge_slashes) before tiergate sees it, so what works behind the shipped Envoy works here, and
// what tiergate refuses behind it (a disguise Envoy leaves in place) is refused here.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevStack } from '../../src/dev/dev-stack.js';
import { startTestDevStack } from '../helpers/dev-stack.js';

let stack: DevStack;
beforeAll(async () => {
  stack = await startTestDevStack();
});
afterAll(async () => stack.stop());

/** POSTs a chat body to `path` exactly as written (no client-side URL normalisation). */
function post(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const body = JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: `Say hi (${path})` }] });
  return new Promise((resolve, reject) => {
    const r = request(`${stack.url}/`, { method: 'POST', path, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

describe('tiergate dev: paths as the shipped Envoy passes them on', () => {
  it.each(['//v1/chat/completions', '/v1//chat/completions', '/v1/./chat/completions', '/v1/x/../chat/completions', '/v1/chat/%63ompletions', '/v1/%2e%2e/v1/chat/completions'])(
    '%s is the plain chat path by the time tiergate sees it: classified and answered',
    async (path) => {
      const r = await post(path);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ object: 'chat.completion', model: 'weak-model' });
    },
  );

  it.each(['/v1/chat%2Fcompletions', '/v1/chat/completions/'])('%s is left as it is, and tiergate refuses it naming the plain path', async (path) => {
    const r = await post(path);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: { code: 'invalid_path', message: expect.stringContaining('/v1/chat/completions') } });
  });
});
