// The SDK's Conversations client and a stored response's input items through `tiergate dev` with the shipped
// examples/tenants.yaml (two keys, response affinity on): what one tenant's conversation holds, and whose it is.
// The mock backends keep conversations as OpenAI does, so each request here reaches a backend unless tiergate
// refuses it; a refusal is told from the backend's own "not found" by its code and the ledger row it leaves.
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevStack } from '../../src/dev/dev-stack.js';
import { ledgerRow, startTestDevStack } from '../helpers/dev-stack.js';

let stack: DevStack;
let acme: OpenAI;
let newco: OpenAI;
let requestCount = 0;
/** Each request with an id of its own, so its ledger row can be found. */
const withId = () => {
  const id = `conv-e2e-${process.pid}-${++requestCount}`;
  return { id, options: { headers: { 'x-request-id': id } } };
};

beforeAll(async () => {
  stack = await startTestDevStack({ configFile: fileURLToPath(new URL('../../examples/tenants.yaml', import.meta.url)) });
  acme = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'demo-acme-key', maxRetries: 0 });
  newco = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'demo-platform-key', maxRetries: 0, defaultHeaders: { 'x-tenant-id': 'newco' } });
});
afterAll(async () => stack.stop());

/**
 * The error a call ended in: its status, its code, and the code of the ledger row tiergate wrote for it. A
 * refusal of tiergate's has a row; what reaches a backend on these paths has none (nothing is spent), so the
 * backend's own "not found" (code not_found) is told from tiergate's by its code.
 */
async function refusal(call: (options: { headers: Record<string, string> }) => Promise<unknown>): Promise<{ status: number | undefined; code: unknown; row?: unknown }> {
  const { id, options } = withId();
  const err = await call(options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OpenAI.APIError);
  const { status, code } = err as InstanceType<typeof OpenAI.APIError>;
  if (code === 'not_found') return { status, code };
  await expect.poll(() => ledgerRow(id)).toBeDefined();
  return { status, code, row: ledgerRow(id)?.error_code };
}

describe('openai SDK: conversations through tiergate dev (examples/tenants.yaml)', () => {
  it("a tenant's conversation: created, continued by turns, its items listed and paged, updated and deleted", async () => {
    const conv = await acme.conversations.create({ metadata: { topic: 'trip' }, items: [{ type: 'message', role: 'user', content: 'Plan a trip' }] });
    expect(conv.metadata).toEqual({ topic: 'trip' });
    const turn = await acme.responses.create({ model: 'auto', conversation: conv.id, input: 'Somewhere warm' });
    expect(turn.conversation?.id).toBe(conv.id);
    let completed: OpenAI.Responses.Response | undefined;
    const stream = await acme.responses.create({ model: 'auto', conversation: { id: conv.id }, input: 'In May', stream: true });
    for await (const e of stream) if (e.type === 'response.completed') completed = e.response;
    // Both turns reached the backend holding the conversation, which billed the second for the history it read.
    expect(completed?.usage?.input_tokens).toBeGreaterThan(turn.usage?.input_tokens ?? Infinity);
    const items = await acme.conversations.items.list(conv.id, { order: 'asc' });
    expect(items.data.map((i) => (i.type === 'message' ? i.role : i.type))).toEqual(['user', 'user', 'assistant', 'user', 'assistant']);
    // The SDK's auto-pagination follows `after` through tiergate, two items a page.
    const paged: string[] = [];
    for await (const item of acme.conversations.items.list(conv.id, { limit: 2 })) paged.push(item.id ?? '');
    expect(paged).toEqual(items.data.map((i) => i.id).reverse());
    expect((await acme.conversations.update(conv.id, { metadata: { topic: 'work' } })).metadata).toEqual({ topic: 'work' });
    expect(await acme.conversations.delete(conv.id)).toMatchObject({ id: conv.id, deleted: true });
    // Gone from the backend: its own "not found", not tiergate's refusal.
    expect(await refusal((o) => acme.conversations.retrieve(conv.id, o))).toEqual({ status: 404, code: 'not_found' });
  });

  it("another tenant's key can neither read, add to, continue nor delete it: tiergate answers 404 for each, and the owner still has it", async () => {
    const conv = await acme.conversations.create({ items: [{ type: 'message', role: 'user', content: 'Private notes' }] });
    const refused = { status: 404, code: 'conversation_not_found', row: 'conversation_not_found' };
    expect(await refusal((o) => newco.conversations.retrieve(conv.id, o))).toEqual(refused);
    expect(await refusal((o) => newco.conversations.items.list(conv.id, {}, o))).toEqual(refused);
    expect(await refusal((o) => newco.conversations.items.create(conv.id, { items: [{ type: 'message', role: 'user', content: 'mine now' }] }, o))).toEqual(refused);
    expect(await refusal((o) => newco.responses.create({ model: 'auto', conversation: conv.id, input: 'What did it say?' }, o))).toEqual(refused);
    expect(await refusal((o) => newco.conversations.delete(conv.id, o))).toEqual(refused);
    const left = await acme.conversations.items.list(conv.id);
    expect(left.data).toHaveLength(1);
  });

  it("a stored response's input items: listed for the tenant that stored it, not found for another", async () => {
    const r = await acme.responses.create({ model: 'auto', input: [{ role: 'user', content: 'first' }, { role: 'user', content: 'second' }] });
    const listed = await acme.responses.inputItems.list(r.id, { order: 'asc' });
    expect(listed.data.map((i) => (i.type === 'message' && Array.isArray(i.content) ? (i.content[0] as { text?: string }).text : i.type))).toEqual(['first', 'second']);
    expect(await refusal((o) => newco.responses.inputItems.list(r.id, {}, o))).toEqual({ status: 404, code: 'response_not_found', row: 'response_not_found' });
  });
});
