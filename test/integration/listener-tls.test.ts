// TLS and mutual TLS on the ext_proc listener (src/extproc/listener-tls.ts), through serve() and its config, with
// certificates made by openssl for each run: who can open a side stream, what a bad file does to the start, and a
// renewed certificate served without a restart.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ExtProcPool, getHeader } from '../../src/dev/envoy-client.js';
import { serve, type Serving } from '../../src/main.js';
import { chatHeaders, jsonBody } from '../helpers/tiergate.js';

let dir: string;
const file = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

/** A key and a certificate for `cn`, signed by the CA `ca` (its .crt and .key in `dir`), or self-signed. */
function issue(name: string, cn: string, ca?: string, san = 'IP:127.0.0.1,DNS:localhost'): void {
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`];
  if (ca === undefined) {
    openssl('req', '-x509', ...key, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`);
    return;
  }
  openssl('req', ...key, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  writeFileSync(file(`${name}.ext`), `subjectAltName=${san}\n`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tiergate-tls-'));
  issue('ca', 'test ca');
  issue('server', 'tiergate', 'ca');
  issue('envoy', 'envoy', 'ca');
  issue('other-ca', 'another ca');
  issue('stranger', 'envoy', 'other-ca');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(tls: Record<string, unknown>): Promise<Serving> {
  const configFile = file(`tiergate-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(configFile, JSON.stringify({ server: { tls }, ledger: { spoolDir: mkdtempSync(join(dir, 'spool-')) } }));
  const s = await serve({ configFile, listen: '127.0.0.1:0', admin: '127.0.0.1:0', env: { TIERGATE_LOG_LEVEL: 'silent' } });
  cleanups.push(() => s.stop());
  return s;
}

const serverTls = () => ({ certFile: file('server.crt'), keyFile: file('server.key') });
const read = (name: string) => readFileSync(file(name));

/**
 * One chat request over a side stream made with `credentials`: the tier it was routed to, or how it failed. The
 * target is named `localhost` (the certificates name it too): grpc-js sends its target's host as the TLS server
 * name, and Node deprecates an IP address there (DEP0123, RFC 6066), which every CI run printed.
 */
async function route(port: number, credentials: grpc.ChannelCredentials): Promise<string> {
  const pool = new ExtProcPool(`localhost:${port}`, 0, credentials);
  try {
    const s = pool.open();
    const h = await s.sendRequestHeaders(chatHeaders(), false);
    if (h.kind !== 'continue') return h.kind;
    const b = await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }));
    s.close();
    return b.kind === 'continue' ? `routed ${getHeader(s.requestHeaders, 'x-llm-tier')}` : b.kind;
  } finally {
    pool.close();
  }
}

/** The serial number of the certificate the listener presents to a new connection now. */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca: read('ca.crt'), ALPNProtocols: ['h2'] }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.on('error', reject);
  });
}

describe('TLS on the ext_proc listener', () => {
  it('takes TLS only: a client that trusts its CA is served; plaintext, or a client that does not trust it, is not', async () => {
    const s = await start(serverTls());
    expect(await route(s.grpcPort, grpc.credentials.createSsl(read('ca.crt')))).toBe('routed weak');
    expect(await route(s.grpcPort, grpc.credentials.createInsecure())).toBe('error');
    expect(await route(s.grpcPort, grpc.credentials.createSsl(read('other-ca.crt')))).toBe('error');
  });

  it('mutual: only a client certificate the configured CA signed opens a side stream', async () => {
    const s = await start({ ...serverTls(), clientCaFile: file('ca.crt') });
    expect(await route(s.grpcPort, grpc.credentials.createSsl(read('ca.crt'), read('envoy.key'), read('envoy.crt')))).toBe('routed weak');
    expect(await route(s.grpcPort, grpc.credentials.createSsl(read('ca.crt')))).toBe('error');
    expect(await route(s.grpcPort, grpc.credentials.createSsl(read('ca.crt'), read('stranger.key'), read('stranger.crt')))).toBe('error');
  });

  it.each([
    ['a key file that cannot be read', () => ({ ...serverTls(), keyFile: '/nonexistent/tls.key' }), 'server.tls.keyFile: cannot read /nonexistent/tls.key'],
    ['a certificate file that cannot be read', () => ({ ...serverTls(), certFile: '/nonexistent/tls.crt' }), 'server.tls.certFile: cannot read /nonexistent/tls.crt'],
    ['a client CA file that cannot be read', () => ({ ...serverTls(), clientCaFile: '/nonexistent/ca.crt' }), 'server.tls.clientCaFile: cannot read /nonexistent/ca.crt'],
    ["a key that is not the certificate's", () => ({ ...serverTls(), keyFile: file('envoy.key') }), 'server.tls: the certificate and key cannot be used together'],
    ['a client CA file that holds no certificate', () => ({ ...serverTls(), clientCaFile: file('server.key') }), /^server\.tls\.clientCaFile: \S+\/server\.key holds no certificate: /],
  ])('stops the start on %s, saying which setting', async (_n, tls, message) => {
    await expect(start(tls())).rejects.toThrow(message);
  });

  it('serves a renewed certificate on new connections without a restart', async () => {
    // A copy the test can replace, as cert-manager replaces the files of a mounted Secret.
    writeFileSync(file('live.crt'), read('server.crt'));
    writeFileSync(file('live.key'), read('server.key'));
    const s = await start({ certFile: file('live.crt'), keyFile: file('live.key'), refreshSeconds: 1 });
    const before = await servedSerial(s.grpcPort);
    expect(before).toBe(openssl('x509', '-in', 'server.crt', '-noout', '-serial').toString().trim().replace(/^serial=/, ''));
    issue('renewed', 'tiergate', 'ca');
    renameSync(file('renewed.key'), file('live.key'));
    renameSync(file('renewed.crt'), file('live.crt'));
    const after = openssl('x509', '-in', 'live.crt', '-noout', '-serial').toString().trim().replace(/^serial=/, '');
    expect(after).not.toBe(before);
    await expect.poll(() => servedSerial(s.grpcPort), { timeout: 5000, interval: 250 }).toBe(after);
    expect(await route(s.grpcPort, grpc.credentials.createSsl(read('ca.crt')))).toBe('routed weak');
  });
});
