// A client still uploading, or giving up halfway, through `tiergate dev`'s local Envoy. Envoy sends the request
// headers to ext_proc as soon as they are in, before the body (envoy-ext-proc.md §2.2), so tiergate can turn a
// request away while its body is on the way, and a dropped upload is a stream tiergate sees end. The local data
// plane must do the same, in both body modes, or a developer sees a different product from the one they deploy.
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DevStack } from '../../src/dev/dev-stack.js';
import { DUPLEX_FILTER, RECOMMENDED_FILTER } from '../../src/dev/envoy-client.js';
import { createMockBackend } from '../../src/dev/mock-backend.js';
import { extProcServiceDefinition } from '../../src/extproc/protos.js';
import { LlmStream } from '../../src/pipeline/llm-stream.js';
import { ledgerRow, startDataPlane, startTestDevStack } from '../helpers/dev-stack.js';

const KEY = 'sk-upload-test';

/** An HTTP/1.1 POST written by hand: the headers and the first part of a body announced as `length` bytes long. */
function startUpload(port: number, id: string, first: string, length: number, auth = true, extra = ''): Socket {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  s.write(
    'POST /v1/chat/completions HTTP/1.1\r\nhost: gateway.local\r\ncontent-type: application/json\r\n' +
      `x-request-id: ${id}\r\n${auth ? `authorization: Bearer ${KEY}\r\n` : ''}${extra}content-length: ${length}\r\n\r\n${first}`,
  );
  return s;
}

/** The response's status, head and body, once it is all in; fails if it does not come in 10 s. */
function responseOf(s: Socket): Promise<{ status: number; head: string; text: string }> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => reject(new Error(`no response while the upload was unfinished (got ${JSON.stringify(got)})`)), 10_000);
    s.on('data', (d: Buffer) => {
      // Interim (1xx) responses come before the response and are not it.
      got = (got + d.toString('latin1')).replace(/^HTTP\/1\.1 1\d\d [^\r]*\r\n(?:[^\r]+\r\n)*\r\n/, '');
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = got.slice(0, end);
      let text = got.slice(end + 4);
      const length = /^content-length: (\d+)$/im.exec(head)?.[1];
      if (length !== undefined) {
        if (text.length < Number(length)) return;
      } else {
        // Chunked: complete at the zero-length chunk; the text is the chunks' data.
        if (!text.endsWith('0\r\n\r\n')) return;
        let data = '';
        for (let at = 0; ; ) {
          const eol = text.indexOf('\r\n', at);
          const size = parseInt(text.slice(at, eol), 16);
          if (!size) break;
          data += text.slice(eol + 2, eol + 2 + size);
          at = eol + 2 + size + 2;
        }
        text = data;
      }
      clearTimeout(timer);
      resolve({ status: Number(head.slice(9, 12)), head, text });
    });
  });
}

/**
 * The response to an upload still under way. As Envoy's HCM does with a response that starts before the request is
 * complete, the server closes the connection after it (fails if it has not in 10 s).
 */
async function earlyReplyOf(s: Socket): Promise<{ status: number; head: string; text: string }> {
  const ended = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server kept the connection open')), 10_000);
    s.once('end', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const r = await responseOf(s);
  expect(r.head).toMatch(/^connection: close$/im);
  await ended;
  s.destroy();
  return r;
}

let configFile: string;
beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'tiergate-upload-'));
  configFile = join(dir, 'tiergate.yaml');
  const digest = createHash('sha256').update(KEY).digest('hex');
  writeFileSync(configFile, `auth: { mode: api_key, keys: [{ id: app, sha256: ${digest}, tenant: acme }] }\n`);
});

describe.each(['buffered', 'duplex'] as const)('tiergate dev, --body-mode %s: requests whose body is still on the way', (bodyMode) => {
  let stack: DevStack;
  let port: number;
  beforeAll(async () => {
    stack = await startTestDevStack({ configFile, bodyMode });
    port = Number(new URL(stack.url).port);
  });
  afterAll(async () => stack.stop());

  it('no key: the 401 comes back while the client is still uploading, and is in the ledger', async () => {
    const id = `upload-401-${bodyMode}`;
    const s = startUpload(port, id, '{"model":"auto","messages":[{"role":"user","content":"', 100_000, false);
    const r = await earlyReplyOf(s);
    expect(r.status).toBe(401);
    expect(JSON.parse(r.text)).toMatchObject({ error: { code: 'missing_api_key' } });
    await expect.poll(() => ledgerRow(id), { timeout: 5000 }).toMatchObject({ status: 'rejected', http_status: 401 });
  });

  it('a client that drops its upload halfway leaves a cancelled row under its tenant', async () => {
    const id = `upload-dropped-${bodyMode}`;
    // Counts tiergate's calls for request headers (the stack runs in this process). In duplex mode tiergate holds
    // its answer until the body is whole, so the client cannot tell when it has them.
    const headersSeen = vi.spyOn(LlmStream.prototype, 'requestHeaders');
    const s = startUpload(port, id, '{"model":"auto","messages":[{"role":"user","content":"', 100_000);
    // tiergate has the headers (it knows the tenant); then the client goes.
    await expect.poll(() => headersSeen.mock.calls.some(([h]) => h.get('x-request-id') === id), { timeout: 5000 }).toBe(true);
    headersSeen.mockRestore();
    s.destroy();
    await expect.poll(() => ledgerRow(id), { timeout: 5000 }).toMatchObject({ tenant_id: 'acme', status: 'cancelled' });
  });

  it('a request that completes its upload slowly is answered as usual', async () => {
    const id = `upload-slow-${bodyMode}`;
    const body = JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'Say hi' }] });
    const s = startUpload(port, id, body.slice(0, 10), Buffer.byteLength(body));
    const response = responseOf(s);
    await new Promise((r) => setTimeout(r, 50));
    s.write(body.slice(10));
    const r = await response;
    s.destroy();
    expect(r.status).toBe(200);
    expect(r.head).toMatch(/^connection: keep-alive$/im);
    expect(JSON.parse(r.text)).toMatchObject({ model: 'weak-model' });
    await expect.poll(() => ledgerRow(id), { timeout: 5000 }).toMatchObject({ status: 'success', tier: 'weak' });
  });
});

describe('expect: 100-continue', () => {
  let stack: DevStack;
  beforeAll(async () => {
    stack = await startTestDevStack({ configFile });
  });
  afterAll(async () => stack.stop());

  it("is answered 100 by the data plane and never reaches tiergate, as Envoy's HCM removes it", async () => {
    const id = 'upload-expect';
    const headersSeen = vi.spyOn(LlmStream.prototype, 'requestHeaders');
    const body = JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'Say hi' }] });
    const s = startUpload(Number(new URL(stack.url).port), id, '', Buffer.byteLength(body), true, 'expect: 100-continue\r\n');
    let interim = '';
    await new Promise<void>((resolve) => {
      const onData = (d: Buffer) => {
        interim += d.toString('latin1');
        if (!interim.includes('\r\n\r\n')) return;
        s.off('data', onData);
        resolve();
      };
      s.on('data', onData);
    });
    expect(interim).toMatch(/^HTTP\/1\.1 100 Continue\r\n/);
    const response = responseOf(s);
    s.write(body);
    const r = await response;
    s.destroy();
    expect(r.status).toBe(200);
    const seen = headersSeen.mock.calls.find(([h]) => h.get('x-request-id') === id)?.[0];
    headersSeen.mockRestore();
    expect(seen?.get('content-length')).toBe(String(Buffer.byteLength(body)));
    expect(seen?.get('expect')).toBeUndefined();
  });
});

describe("a BUFFERED body larger than the local Envoy's buffer", () => {
  let stack: DevStack;
  let dp: Awaited<ReturnType<typeof startDataPlane>>;
  let port: number;
  beforeAll(async () => {
    stack = await startTestDevStack({ configFile });
    // The same data plane with a 64 KiB stream buffer in place of envoy.yaml's 32 MiB.
    dp = await startDataPlane({
      extProcTarget: `127.0.0.1:${stack.tiergate.grpcPort}`,
      backends: stack.backends,
      defaultTier: 'weak',
      filter: { ...RECOMMENDED_FILTER, bufferLimitBytes: 64 * 1024 },
    });
    port = dp.port;
  });
  afterAll(async () => {
    await dp.stop();
    await stack.stop();
  });

  it('is answered 413 once it outgrows the buffer, not after the client has sent it all', async () => {
    const s = startUpload(port, 'upload-413', '{"model":"auto","messages":[{"role":"user","content":"', 10 * 1024 * 1024);
    // 128 KiB of a 10 MiB body: past the buffer, far from the end.
    s.write('a'.repeat(128 * 1024));
    const r = await earlyReplyOf(s);
    expect(r.status).toBe(413);
    expect(r.text).toContain('request_payload_too_large');
  });
});

describe('duplex: an ext_proc server that ends the stream cleanly before the body', () => {
  it('gets the whole body passed on unprocessed, as Envoy does after a clean close (§8)', async () => {
    // A server that ends the call with OK on the request headers: "continue without me".
    const seen: string[] = [];
    const server = new grpc.Server();
    server.addService(extProcServiceDefinition(), {
      Process: (call: grpc.ServerDuplexStream<{ request?: string }, unknown>) => {
        call.on('data', (m: { request?: string }) => {
          seen.push(m.request ?? '');
          if (m.request === 'request_headers') call.end();
        });
        call.on('error', () => undefined);
      },
    });
    const grpcPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const backend = createMockBackend({ name: 'weak', latencyMs: 0, chunkDelayMs: 1 });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const dp = await startDataPlane({
      extProcTarget: `127.0.0.1:${grpcPort}`,
      backends: { weak: `http://127.0.0.1:${(backend.address() as AddressInfo).port}` },
      defaultTier: 'weak',
      filter: DUPLEX_FILTER,
    });
    try {
      const body = JSON.stringify({ model: 'weak-model', messages: [{ role: 'user', content: 'Say hi' }] });
      const s = startUpload(dp.port, 'upload-clean-close', '', Buffer.byteLength(body), false);
      const response = responseOf(s);
      // The body comes once the server has ended the call (and its OK has had time to reach the data plane).
      await expect.poll(() => seen).toContain('request_headers');
      await new Promise((r) => setTimeout(r, 200));
      s.write(body.slice(0, 20));
      await new Promise((r) => setTimeout(r, 20));
      s.write(body.slice(20));
      const r = await response;
      s.destroy();
      expect(r.status).toBe(200);
      expect(JSON.parse(r.text)).toMatchObject({ model: 'weak-model', choices: [{ message: { content: expect.stringContaining('You sent 1 message') } }] });
      expect(seen).toEqual(['request_headers']);
    } finally {
      await dp.stop();
      backend.closeAllConnections();
      backend.close();
      server.forceShutdown();
    }
  });
});
