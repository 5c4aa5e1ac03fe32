// An upstream that fails before its response headers, through `tiergate dev`'s local Envoy: the client gets
// Envoy's own local reply (503, plain text, the reset reason in Envoy's words), as it would behind the shipped
// Envoy, and tiergate, whose stream ends without a response, still writes the request's ledger row.
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDataPlane, type DataPlane } from '../../src/dev/data-plane.js';
import type { DevStack } from '../../src/dev/dev-stack.js';
import { ledgerRow, startTestDevStack } from '../helpers/dev-stack.js';

let stack: DevStack;
let dp: DataPlane;
let url: string;
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
  dp = createDataPlane({
    extProcTarget: `127.0.0.1:${stack.tiergate.grpcPort}`,
    backends: { weak: `http://127.0.0.1:${closedPort}`, strong: `http://127.0.0.1:${(dropper.address() as AddressInfo).port}` },
    defaultTier: 'weak',
  });
  await new Promise<void>((r) => dp.server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(dp.server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  dp.server.closeAllConnections();
  await new Promise<void>((r) => dp.server.close(() => r()));
  dp.pool.close();
  dropper.close();
  await stack.stop();
});

async function chat(id: string, content: string) {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id },
    body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content }] }),
  });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

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
