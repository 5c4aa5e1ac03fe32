// The official openai SDK through `tiergate dev --body-mode duplex`: the local Envoy sends both bodies
// FULL_DUPLEX_STREAMED (envoy-ext-proc.md §2.2), so tiergate holds the request's headers answer until the body is
// whole and passes response chunks on as streamed answers. A real client must not see the difference.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevStack } from '../../src/dev/dev-stack.js';
import { ledgerRow, readChatStream, startTestDevStack } from '../helpers/dev-stack.js';

let stack: DevStack;
let client: OpenAI;
beforeAll(async () => {
  stack = await startTestDevStack({ bodyMode: 'duplex' });
  client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'sk-client-key', maxRetries: 0 });
});
afterAll(async () => stack.stop());

describe('openai SDK through tiergate dev, bodies FULL_DUPLEX_STREAMED', () => {
  it('plain chat: routed by the body, with the tier headers on the response', async () => {
    const { data, response } = await client.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'Say hi' }] }).withResponse();
    expect(data.choices[0]?.message.content).toContain('weak backend');
    expect(response.headers.get('x-llm-tier')).toBe('weak');
    const strong = await client.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'Help me optimize this query' }] });
    expect(strong.model).toBe('strong-model');
  });

  it('a body of several chunks (40 KB) arrives whole and routed: long text goes to the strong tier', async () => {
    const long = 'Tell me about the weather in a few words. '.repeat(1000);
    const r = await client.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: long }] });
    expect(r.model).toBe('strong-model');
    expect(r.choices[0]?.message.content).toContain('You sent 1 message');
  });

  it('streaming: chunks arrive as they come, without the usage chunk the client did not ask for; usage still counted', async () => {
    const id = 'e2e-duplex-stream';
    const stream = await client.chat.completions.create({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'Say hi, streamed' }] }, { headers: { 'x-request-id': id } });
    const { text, chunks } = await readChatStream(stream);
    expect(chunks).toBeGreaterThan(5);
    expect(text).toBe('Hello from the weak backend (model weak-model). You sent 1 message.');
    await expect.poll(() => ledgerRow(id)).toBeDefined();
    expect(ledgerRow(id)).toMatchObject({ stream: true, usage_source: 'reported' });
  });

  it('bad input: the OpenAI-shaped 400, in place of the held answers', async () => {
    const err = await client.chat.completions.create({ model: 'auto', messages: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('messages');
  });

  it('the local Envoy saw no spurious answer', () => {
    expect(stack.dataPlane.pool.counters.spurious).toBe(0);
  });
});
