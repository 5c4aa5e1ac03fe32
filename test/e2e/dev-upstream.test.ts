// An upstream that fails before its response headers, through `tiergate dev`'s local Envoy: the client gets
// Envoy's own local reply (503, plain text, the reset reason in Envoy's words), as it would behind the shipped
// Envoy, and tiergate, whose stream ends without a response, still writes the request's ledger row. And a
// fallback backend, which gets the body tiergate routed to another tier's model.
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { DevStack } from '../../src/dev/dev-stack.js';
import { createMockBackend } from '../../src/dev/mock-backend.js';
import { ledgerRow, startDataPlane, startTestDevStack } from '../helpers/dev-stack.js';

let stack: DevStack;
let dp: Awaited<ReturnType<typeof startDataPlane>>;
let dropper: TcpServer;
beforeAll(async () => {
  stack = await startTestDevStack();
  // weak: a port nothing listens on (bound, then closed). strong: a server that reads the request and drops
  // the connection without a word.
  const closed = createTcpServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const closedPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  dropper = createTcpServer((s) => s.once('data', () => s.destroy()));
  await new Promise<void>((r) => dropper.listen(0, '127.0.0.1', r));
  dp = await startDataPlane({
    extProcTarget: `127.0.0.1:${stack.tiergate.grpcPort}`,
    backends: { weak: `http://127.0.0.1:${closedPort}`, strong: `http://127.0.0.1:${(dropper.address() as AddressInfo).port}` },
    defaultTier: 'weak',
  });
});
afterAll(async () => {
  await dp.stop();
  dropper.close();
  await stack.stop();
});

async function chat(id: string, content: string) {
  const res = await fetch(`${dp.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id, 'cache-control': 'no-store' }, // each request reaches its backend
    body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content }] }),
  });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

describe("Envoy's fallback from strong to weak (envoy.yaml's aggregate clusters)", () => {
  /** A data plane whose strong tier goes to a weak backend, as the fallback cluster sends it. */
  async function fallingBack(servedModels: string[]) {
    const weak = createMockBackend({ name: 'weak', servedModels });
    await new Promise<void>((r) => weak.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(weak.address() as AddressInfo).port}`;
    const plane = await startDataPlane({ extProcTarget: `127.0.0.1:${stack.tiergate.grpcPort}`, backends: { weak: base, strong: base }, defaultTier: 'weak' });
    onTestFinished(async () => {
      await plane.stop();
      weak.closeAllConnections();
      weak.close();
    });
    return plane.url;
  }
  const refactor = (base: string, id: string) =>
    fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': id, 'cache-control': 'no-store' }, // each request reaches its backend
      body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'Please refactor this' }] }),
    });

  it('a weak backend that also serves the strong model answers, and the row says fallback_used', async () => {
    const r = await refactor(await fallingBack(['weak-model', 'strong-model']), 'fallback-served');
    expect([r.status, r.headers.get('x-llm-tier')]).toEqual([200, 'strong']);
    expect(((await r.json()) as { model: string }).model).toBe('weak-model');
    await expect.poll(() => ledgerRow('fallback-served')).toBeDefined();
    expect(ledgerRow('fallback-served')).toMatchObject({ tier: 'strong', model_resolved: 'weak-model', status: 'success', fallback_used: true });
  });

  it('one that serves only its own model refuses the body tiergate routed to strong: the 404 every fallback would get', async () => {
    const r = await refactor(await fallingBack(['weak-model']), 'fallback-unserved');
    expect(r.status).toBe(404);
    expect(await r.json()).toMatchObject({ error: { message: 'The model `strong-model` does not exist.' } });
    await expect.poll(() => ledgerRow('fallback-unserved')).toBeDefined();
    expect(ledgerRow('fallback-unserved')).toMatchObject({ tier: 'strong', status: 'upstream_error', http_status: 404 });
  });
});

describe('tiergate dev: an upstream that fails before its headers', () => {
  it.each([
    ['refuses the connection', 'upstream-refused', 'Say hi', 'weak', 'remote connection failure, transport failure reason: delayed connect error: Connection refused'],
    ['drops it after the request', 'upstream-dropped', 'Please refactor this', 'strong', 'connection termination'],
  ])('one that %s: Envoy’s 503 with its reset reason, and the request’s row', async (_what, id, content, tier, reason) => {
    const r = await chat(id, content);
    expect(r).toEqual({ status: 503, type: 'text/plain', text: `upstream connect error or disconnect/reset before headers. reset reason: ${reason}\n` });
    await expect.poll(() => ledgerRow(id)).toBeDefined();
    expect(ledgerRow(id)).toMatchObject({ tier, status: 'cancelled' });
  });
});
