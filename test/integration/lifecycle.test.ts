// serve(): admin endpoints, grpc.health.v1, hot reload of the config file, graceful shutdown.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { rowsFromFiles } from '../../src/ledger/read.js';
import { collectRows } from '../helpers/ledger-rows.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ExtProcPool, RECOMMENDED_FILTER, chatRequestHeaders, getHeader, postHeaders } from '../../src/dev/envoy-client.js';
import { ConfigError, logLevel, serve, type Serving } from '../../src/main.js';
import { chatHeaders, jsonBody, metricValue } from '../helpers/tiergate.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(configFile?: string, env: NodeJS.ProcessEnv = {}): Promise<Serving & { pool: ExtProcPool }> {
  const s = await serve({ configFile, listen: '127.0.0.1:0', admin: '127.0.0.1:0', env: { TIERGATE_LOG_LEVEL: 'silent', ...env } });
  const pool = new ExtProcPool(`127.0.0.1:${s.grpcPort}`);
  cleanups.push(() => s.stop(), () => pool.close());
  return { ...s, pool };
}

type HealthClient = grpc.Client & { check(r: { service: string }, cb: (e: grpc.ServiceError | null, r?: { status: string }) => void): void };

function healthCheck(port: number, service = ''): Promise<string> {
  const Ctor = grpc.makeGenericClientConstructor(healthService, 'Health');
  const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as HealthClient;
  return new Promise((resolve, reject) => {
    client.check({ service }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res?.status ?? 'UNKNOWN');
    });
  });
}

async function routeTier(pool: ExtProcPool, content = 'hi'): Promise<string | undefined> {
  const s = pool.open();
  await s.sendRequestHeaders(chatHeaders(), false);
  await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content }] }));
  const model = getHeader(s.requestHeaders, 'x-llm-model');
  s.close();
  return model;
}

describe('admin and health', () => {
  it('serves /healthz, /readyz and Prometheus /metrics, and grpc.health.v1 SERVING', async () => {
    const s = await start();
    const base = `http://127.0.0.1:${s.adminPort}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-type')]).toEqual([200, 'text/plain; version=0.0.4; charset=utf-8']);
    // Read-only: anything else is refused, not answered as a GET.
    for (const method of ['POST', 'DELETE']) {
      const r = await fetch(`${base}/healthz`, { method });
      expect([r.status, r.headers.get('allow'), await r.text()]).toEqual([405, 'GET, HEAD', 'the admin listener answers GET and HEAD only\n']);
    }
    await routeTier(s.pool);
    // The request is counted when its stream ends, just after the close.
    await expect.poll(async () => (await fetch(`${base}/metrics`)).text()).toContain('tiergate_requests_total{tier="weak",outcome="routed"} 1');
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/tiergate_config_info\{version="[0-9a-f]{12}",classifier_version="v7"\} 1/);
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(text).toContain(`tiergate_build_info{version="${version}",node_version="${process.versions.node}"} 1`);
    expect(text).toContain('tiergate_extproc_phase_seconds_bucket');
    expect(await healthCheck(s.grpcPort)).toBe('SERVING');
    expect(await healthCheck(s.grpcPort, 'envoy.service.ext_proc.v3.ExternalProcessor')).toBe('SERVING');
  });
});

describe('graceful shutdown', () => {
  it('flips health to NOT_SERVING, lets an in-flight stream finish, then stops', async () => {
    const s = await start();
    const session = s.pool.open();
    await session.sendRequestHeaders(chatHeaders(), false);
    const stopping = s.stop();
    // Readiness goes first, so Envoy/Kubernetes stop sending new work.
    expect((await fetch(`http://127.0.0.1:${s.adminPort}/readyz`).catch(() => ({ status: 503 }))).status).toBe(503);
    // The stream that was already open still gets its answers.
    const o = await session.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }));
    expect(o.kind).toBe('continue');
    expect((await session.halfClose()).code).toBe(0);
    await stopping;
    // And nothing new gets in once it has stopped.
    const late = new ExtProcPool(`127.0.0.1:${s.grpcPort}`);
    cleanups.push(() => late.close());
    const o2 = await late.open({ ...RECOMMENDED_FILTER, messageTimeoutMs: 1000 }).sendRequestHeaders(chatHeaders(), false);
    expect(o2.kind).not.toBe('continue');
  });
});

describe('the end of the grace period', () => {
  it("hands a stream whose request was answered back to Envoy with OK, so its answer goes on; cuts one still being decided", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-grace-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'tiergate.yaml');
    writeFileSync(
      file,
      `server: { shutdownGraceMs: 300 }\ntenants: { "*": { tokensPerMinute: 1000000 } }\n` +
        `ledger: { sinks: [{ type: file, dir: ${join(dir, 'ledger')} }], spoolDir: ${join(dir, 'spool')} }\n`,
    );
    const s = await start(file);
    // A long streamed answer: routed, its headers and a first chunk answered, the rest still to come.
    const long = s.pool.open();
    await long.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'long-stream']]), false);
    await long.sendRequestBody(jsonBody({ model: 'auto', stream: true, max_tokens: 800, messages: [{ role: 'user', content: 'Write a long story' }] }));
    expect(getHeader(long.requestHeaders, 'x-llm-tier')).toBe('weak');
    await long.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    const chunk = (text: string) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'weak-model', choices: [{ index: 0, delta: { content: text }, finish_reason: null }] })}\n\n`;
    expect(await long.sendResponseBody(Buffer.from(chunk('Once upon a time, ')), false)).toMatchObject({ kind: 'continue' });
    // A request still being decided: its headers answered, its body not yet sent.
    const undecided = s.pool.open();
    await undecided.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'undecided']]), false);
    // An answer whose last piece ended inside an event that may be the usage chunk tiergate takes out for this
    // client: tiergate holds those bytes back, owed to the client with the next piece, so it cannot step away.
    const holding = s.pool.open();
    await holding.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'holding']]), false);
    await holding.sendRequestBody(jsonBody({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'Count to three' }] }));
    await holding.sendResponseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
    const first = chunk('One, ');
    const split = first + 'data: {"id":"c1","object":"chat.completion.chunk"';
    expect(await holding.sendResponseBody(Buffer.from(split), false)).toMatchObject({ kind: 'continue', body: Buffer.from(first) });

    const reconciled = vi.spyOn(s.app.budgets, 'reconcile');
    const stopped = Date.now();
    await s.stop();
    expect(Date.now() - stopped).toBeLessThan(5_000);
    // OK: Envoy carries on without tiergate (envoy-ext-proc.md §8), and the rest of the answer passes as it is.
    expect((await long.status()).code).toBe(grpc.status.OK);
    expect(await long.sendResponseBody(Buffer.from(chunk('there was a gateway.')), false)).toEqual({ kind: 'skipped' });
    expect(await long.sendResponseBody(Buffer.from('data: [DONE]\n\n'), true)).toEqual({ kind: 'skipped' });
    // UNAVAILABLE: Envoy fails the request (its status_on_error, 500), never lets an undecided request through,
    // and cuts an answer short rather than let it go on with bytes missing from its middle.
    expect((await undecided.status()).code).toBe(grpc.status.UNAVAILABLE);
    expect((await holding.status()).code).toBe(grpc.status.UNAVAILABLE);
    expect(await undecided.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }))).toMatchObject({ kind: 'error', status: 500 });

    const rows = await collectRows(rowsFromFiles(readdirSync(join(dir, 'ledger')).map((f) => join(dir, 'ledger', f))));
    const row = (id: string) => rows.find((r) => r.request_id === id);
    // What had passed is estimated; the row says the answer went on without tiergate.
    expect(row('long-stream')).toMatchObject({ status: 'cancelled', error_code: 'detached_at_shutdown', usage_source: 'estimated', tier: 'weak' });
    expect(row('long-stream')?.usage.output_tokens).toBeGreaterThan(0);
    expect(row('undecided')).toMatchObject({ status: 'cancelled', error_code: null });
    expect(row('holding')).toMatchObject({ status: 'cancelled', error_code: null });
    expect(await metricValue(s.app, 'tiergate_extproc_streams_total', { end: 'detached' })).toBe(1);
    // The budget keeps the whole reservation (max_tokens 800 and the prompt), not the few tokens the row counts:
    // the backend may well use all of it, and tiergate hears no more of that answer.
    // (The cut answer, whose reservation is the completion estimate, is reconciled with its row as usual.)
    expect(reconciled).toHaveBeenCalledTimes(2);
    const kept = reconciled.mock.calls.filter(([a, tokens]) => tokens === a.reserved);
    expect(kept).toHaveLength(1);
    expect(kept[0]?.[1]).toBeGreaterThan(800);
    expect(kept[0]?.[1]).toBeLessThan(1024);
    expect(row('long-stream')?.usage.total_tokens).toBeLessThan(100);
  });
});

describe('the end of the grace period, for a request that sends no body', () => {
  it('its headers answer was its last (the filter sends no body, or tiergate told it not to): detached as soon as that is answered', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-grace-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'tiergate.yaml');
    writeFileSync(file, `server: { shutdownGraceMs: 200 }\nenvoy: { allowModeOverride: true }\nledger: { sinks: [{ type: file, dir: ${join(dir, 'ledger')} }], spoolDir: ${join(dir, 'spool')} }\n`);
    const s = await start(file);
    // An embeddings request: tiergate answers its headers with request_body_mode NONE, and the backend takes long.
    const embeddings = s.pool.open({ ...RECOMMENDED_FILTER, allowModeOverride: true });
    expect(await embeddings.sendRequestHeaders(postHeaders('/v1/embeddings', [['x-request-id', 'embeddings']]), false)).toMatchObject({ kind: 'continue' });
    expect(embeddings.mode.requestBodyMode).toBe('NONE');
    // A route whose filter sends no request body at all (protocol_config says so).
    const bodiless = s.pool.open({ ...RECOMMENDED_FILTER, processingMode: { ...RECOMMENDED_FILTER.processingMode, requestBodyMode: 'NONE' } });
    expect(await bodiless.sendRequestHeaders(postHeaders('/v1/embeddings', [['x-request-id', 'bodiless']]), false)).toMatchObject({ kind: 'continue' });
    // A chat request whose body is still to come is not: it is cut.
    const chat = s.pool.open({ ...RECOMMENDED_FILTER, allowModeOverride: true });
    await chat.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'chat']]), false);
    await s.stop();
    expect((await embeddings.status()).code).toBe(grpc.status.OK);
    expect((await bodiless.status()).code).toBe(grpc.status.OK);
    expect((await chat.status()).code).toBe(grpc.status.UNAVAILABLE);
    expect(await metricValue(s.app, 'tiergate_extproc_streams_total', { end: 'detached' })).toBe(2);
  });
});

describe('draining', () => {
  it('reports not ready at once, goes on serving new streams for the drain delay, then refuses them', async () => {
    const s = await start();
    const base = `http://127.0.0.1:${s.adminPort}`;
    const inflight = s.pool.open();
    await inflight.sendRequestHeaders(chatHeaders(), false);
    const stopping = s.stop({ drainMs: 1500 });
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    expect(await healthCheck(s.grpcPort, 'envoy.service.ext_proc.v3.ExternalProcessor')).toBe('NOT_SERVING');
    // A stream opened during the drain, as Envoy does until its health checks or the endpoint's removal catch up.
    expect(await routeTier(s.pool)).toBe('weak-model');
    expect((await inflight.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }))).kind).toBe('continue');
    expect((await inflight.halfClose()).code).toBe(0);
    await stopping;
    const late = new ExtProcPool(`127.0.0.1:${s.grpcPort}`);
    cleanups.push(() => late.close());
    expect((await late.open({ ...RECOMMENDED_FILTER, messageTimeoutMs: 1000 }).sendRequestHeaders(chatHeaders(), false)).kind).not.toBe('continue');
  });
});

describe('config hot reload', () => {
  it('a reloaded shutdown grace period is the one SIGTERM uses', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-reload-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'tiergate.yaml');
    const ledger = `ledger: { sinks: [{ type: file, dir: ${join(dir, 'ledger')} }], spoolDir: ${join(dir, 'spool')} }\n`;
    writeFileSync(file, `server: { shutdownGraceMs: 120000 }\ntiers: { weak: { model: small-v1 }, strong: { model: large-v1 } }\n${ledger}`);
    const s = await start(file);
    writeFileSync(join(dir, 'next.yaml'), `server: { shutdownGraceMs: 200 }\ntiers: { weak: { model: small-v2 }, strong: { model: large-v2 } }\n${ledger}`);
    renameSync(join(dir, 'next.yaml'), file);
    await expect.poll(() => routeTier(s.pool), { timeout: 5000, interval: 100 }).toBe('small-v2');
    // A stream that never finishes: only the grace period ends it. Two minutes would outlast this test's timeout.
    const stuck = s.pool.open();
    await stuck.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'stuck-at-shutdown']]), false);
    const stopped = Date.now();
    await s.stop();
    expect(Date.now() - stopped).toBeLessThan(20_000);
    expect(await metricValue(s.app, 'tiergate_config_restart_required')).toBe(0);
    // The request the grace period cut off still has its ledger row.
    const rows = await collectRows(rowsFromFiles(readdirSync(join(dir, 'ledger')).map((f) => join(dir, 'ledger', f))));
    expect(rows.filter((r) => r.request_id === 'stuck-at-shutdown').map((r) => r.status)).toEqual(['cancelled']);
  });

  it('a reload that changes only what --listen, --admin and TIERGATE_LOG_LEVEL override asks for no restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-reload-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'tiergate.yaml');
    writeFileSync(file, 'tiers: { weak: { model: small-v1 }, strong: { model: large-v1 } }\n');
    const s = await start(file); // --listen, --admin and TIERGATE_LOG_LEVEL all set
    writeFileSync(
      join(dir, 'next.yaml'),
      'server: { listen: 0.0.0.0:9102, admin: 0.0.0.0:9190 }\nlogging: { level: debug }\ncache: { maxEntries: 5 }\ntiers: { weak: { model: small-v2 }, strong: { model: large-v2 } }\n',
    );
    renameSync(join(dir, 'next.yaml'), file);
    await expect.poll(() => routeTier(s.pool), { timeout: 5000, interval: 100 }).toBe('small-v2');
    // The one setting the file decides is flagged; the overridden three are not.
    expect(await metricValue(s.app, 'tiergate_config_restart_required')).toBe(1);
    expect(await metricValue(s.app, 'tiergate_config_restart_required', { setting: 'cache.maxEntries' })).toBe(1);
  });

  it("TIERGATE_LOG_LEVEL: any case, empty as unset; anything else refuses to start, naming the variable, before anything listens", () => {
    expect([logLevel({}), logLevel({ TIERGATE_LOG_LEVEL: '' }), logLevel({ TIERGATE_LOG_LEVEL: 'DEBUG' }), logLevel({ TIERGATE_LOG_LEVEL: ' warn ' })]).toEqual([undefined, undefined, 'debug', 'warn']);
    let thrown: unknown;
    try {
      logLevel({ TIERGATE_LOG_LEVEL: 'verbose' });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).problems).toEqual([{ path: 'TIERGATE_LOG_LEVEL', message: 'expected one of "fatal"|"error"|"warn"|"info"|"debug"|"trace"|"silent", got "verbose"' }]);
  });

  it('a TIERGATE_LOG_LEVEL that is no level is a config error from serve, with no listener left open', async () => {
    await expect(serve({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', env: { TIERGATE_LOG_LEVEL: 'verbose' } })).rejects.toBeInstanceOf(ConfigError);
  });

  it('reloads a Kubernetes ConfigMap volume, which changes by swapping its ..data symlink, and nothing else', async () => {
    // The layout the kubelet keeps (its AtomicWriter): the data in a timestamped directory, `..data` pointing at
    // it, and the key a symlink through `..data`. An update writes a new directory, points `..data_tmp` at it
    // and renames that over `..data`: the file tiergate was given is never written, only its path re-resolved.
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-configmap-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const version = (n: number, weak: string) => {
      const data = `..2026_12_02_06_00_0${n}.00000000${n}`;
      mkdirSync(join(dir, data));
      writeFileSync(join(dir, data, 'tiergate.yaml'), `tiers: { weak: { model: ${weak} }, strong: { model: large } }\n`);
      return data;
    };
    const first = version(1, 'small-v1');
    symlinkSync(first, join(dir, '..data'));
    symlinkSync(join('..data', 'tiergate.yaml'), join(dir, 'tiergate.yaml'));
    const s = await start(join(dir, 'tiergate.yaml'));
    expect(await routeTier(s.pool)).toBe('small-v1');

    // Another file in the directory changing is not a reload.
    writeFileSync(join(dir, 'unrelated.txt'), 'x');
    await new Promise((r) => setTimeout(r, 400));
    expect(await metricValue(s.app, 'tiergate_config_reloads_total')).toBe(0);

    const second = version(2, 'small-v2');
    symlinkSync(second, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    rmSync(join(dir, first), { recursive: true });
    await expect.poll(() => routeTier(s.pool), { timeout: 5000, interval: 100 }).toBe('small-v2');
    expect(await metricValue(s.app, 'tiergate_config_reloads_total', { result: 'success' })).toBe(1);

    // The key removed from the ConfigMap (the symlink dangles): the last good config stays, and it is counted.
    const third = `..2026_12_02_06_00_03.000000003`;
    mkdirSync(join(dir, third));
    symlinkSync(third, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    await expect.poll(() => metricValue(s.app, 'tiergate_config_reloads_total', { result: 'failure' }), { timeout: 5000, interval: 100 }).toBe(1);
    expect(await routeTier(s.pool)).toBe('small-v2');
    expect(await metricValue(s.app, 'tiergate_config_last_reload_success')).toBe(0);
  });

  it('swaps the config atomically on change, keeps the last good one on a bad file, and counts both', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-reload-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'tiergate.yaml');
    writeFileSync(file, 'tiers: { weak: { model: small-v1 }, strong: { model: large-v1 } }\n');
    const s = await start(file);
    expect(await routeTier(s.pool)).toBe('small-v1');

    // An in-flight stream keeps the config it started with.
    const inflight = s.pool.open();
    await inflight.sendRequestHeaders(chatHeaders(), false);

    // Replace the file the way editors and Kubernetes do: write elsewhere, rename over.
    writeFileSync(join(dir, 'next.yaml'), 'tiers: { weak: { model: small-v2 }, strong: { model: large-v2 } }\n');
    renameSync(join(dir, 'next.yaml'), file);
    await expect.poll(() => routeTier(s.pool), { timeout: 5000, interval: 100 }).toBe('small-v2');
    await inflight.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }));
    expect(getHeader(inflight.requestHeaders, 'x-llm-model')).toBe('small-v1');
    inflight.close();
    expect(await metricValue(s.app, 'tiergate_config_reloads_total', { result: 'success' })).toBe(1);

    // A bad file is rejected: the last good config stays, and the failure is visible.
    writeFileSync(file, 'tiers: { weak: { model: small-v3 } }\nnot_a_key: true\n');
    await expect.poll(() => metricValue(s.app, 'tiergate_config_reloads_total', { result: 'failure' }), { timeout: 5000 }).toBe(1);
    expect(await metricValue(s.app, 'tiergate_config_last_reload_success')).toBe(0);
    expect(await routeTier(s.pool)).toBe('small-v2');

    // A file that contains itself (a YAML alias inside its own anchor) used to throw out of the reload, an
    // unhandled rejection that ends the process: one edit would have taken down every replica at once.
    writeFileSync(file, 'tiers: &t { weak: *t }\n');
    await expect.poll(() => metricValue(s.app, 'tiergate_config_reloads_total', { result: 'failure' }), { timeout: 5000 }).toBe(2);
    expect(await routeTier(s.pool)).toBe('small-v2');

    // The file emptied, as a rewrite in place does for a moment: not the embedded defaults (weak-model).
    writeFileSync(file, '');
    await expect.poll(() => metricValue(s.app, 'tiergate_config_reloads_total', { result: 'failure' }), { timeout: 5000 }).toBe(3);
    expect(await routeTier(s.pool)).toBe('small-v2');
  });

  it('a reload cannot turn authentication off: half a file that ends before auth: keeps keys required; a restart can', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-auth-off-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'tiergate.yaml');
    // In this order, as the shipped kgateway config has it: the tiers first, then auth.
    const tiers = (v: number) => `tiers: { weak: { model: small-v${v} }, strong: { model: large-v${v} } }\n`;
    const auth = `auth: { mode: api_key, keys: [{ id: app, sha256: ${'ab'.repeat(32)}, tenant: acme }] }\n`;
    writeFileSync(file, tiers(1) + auth);
    const s = await start(file);
    const withoutKey = async () => {
      const x = s.pool.open();
      const o = await x.sendRequestHeaders(chatHeaders(), false);
      x.close();
      return o.kind === 'immediate' ? o.status : o.kind;
    };
    expect(await withoutKey()).toBe(401);

    // What a writer that pauses past the debounce has written so far: a valid config on its own, with no auth.
    writeFileSync(file, tiers(2));
    await expect.poll(() => metricValue(s.app, 'tiergate_config_reloads_total', { result: 'failure' }), { timeout: 5000 }).toBe(1);
    expect(await metricValue(s.app, 'tiergate_config_last_reload_success')).toBe(0);
    expect(await withoutKey()).toBe(401);
    // The rest arrives: the whole file applies.
    writeFileSync(file, tiers(2) + auth);
    await expect.poll(() => metricValue(s.app, 'tiergate_config_reloads_total', { result: 'success' }), { timeout: 5000 }).toBe(1);
    expect(await withoutKey()).toBe(401);
    expect(s.app.config.current().tiers.get('weak')?.model).toBe('small-v2');

    // Meant or not, auth off by reload is refused (SIGHUP reads the file the same way); a restart takes it.
    writeFileSync(file, tiers(3) + 'auth: { mode: none }\n');
    await expect.poll(() => metricValue(s.app, 'tiergate_config_reloads_total', { result: 'failure' }), { timeout: 5000 }).toBe(2);
    expect(await s.app.config.reloadNow()).toBe('rejected');
    expect(await withoutKey()).toBe(401);
    const restarted = await start(file);
    expect(await routeTier(restarted.pool)).toBe('small-v3');
  });

  it('a classifier regex that can backtrack on client text refuses the config: at start, and on a reload (the last good one stays)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-redos-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'tiergate.yaml');
    const version = (when: string) =>
      `classifier:\n  active: v8\n  versions:\n    v8:\n      rules:\n        - { name: words, tier: strong, when: [${when}] }\n      default: weak\n`;
    // Exponential on a run of word characters that does not end the text.
    writeFileSync(file, version(`{ regex: '^(\\w+\\s?)+$' }`));
    await expect(start(file)).rejects.toThrow(/classifier\.versions\.v8\.rules\[0\]\.when\[0\]\.regex: .* can take exponential time/);

    writeFileSync(file, version(`{ regex: 'refactor|debug', flags: i }`));
    const s = await start(file);
    expect(await routeTier(s.pool, 'please debug this')).toBe('strong-model');
    // Quadratic: each start of a run of letters scans the run again.
    writeFileSync(file, version(`{ regex: '[a-z]+@[a-z]+\\.com' }`));
    await expect.poll(() => metricValue(s.app, 'tiergate_config_reloads_total', { result: 'failure' }), { timeout: 15_000 }).toBe(1);
    expect(await routeTier(s.pool, 'please debug this')).toBe('strong-model');
    // The operator's explicit acceptance is honoured.
    writeFileSync(file, version(`{ regex: '[a-z]+@[a-z]+\\.com', allowSlow: true }`));
    await expect.poll(() => metricValue(s.app, 'tiergate_config_reloads_total', { result: 'success' }), { timeout: 15_000 }).toBe(1);
    expect(await routeTier(s.pool, 'mail me at a@b.com')).toBe('strong-model');
  }, 60_000);
});
