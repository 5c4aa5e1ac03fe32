// `tiergate serve` with tracing turned on the way an operator does it: OTEL_* variables only, spans exported
// over OTLP/HTTP (JSON) to a stand-in collector. The other tracing tests register their own tracer provider in
// process; this one runs the SDK start-up itself (main.ts → startTracing) and reads what reaches a collector: the
// resource that names the service and its version, and a request's spans in the trace its caller started.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { ExtProcPool, chatRequestHeaders } from '../../src/dev/envoy-client.js';
import { jsonBody } from '../helpers/tiergate.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'src/cli.ts');
const { version: PACKAGE_VERSION } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

type AnyValue = { stringValue?: string; intValue?: string | number };
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: AnyValue }>;
}
interface OtlpExport {
  resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: AnyValue }> }; scopeSpans: Array<{ spans: OtlpSpan[] }> }>;
}

/** A collector that takes every OTLP/HTTP JSON export and keeps the trace ones. */
async function collector(): Promise<{ url: string; exports: OtlpExport[]; close(): Promise<void> }> {
  const exports: OtlpExport[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') exports.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpExport);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, exports, close: () => new Promise((r) => server.close(() => r())) };
}

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';

/**
 * Starts `tiergate serve` with `otelEnv` exporting to `endpoint`, sends one chat request whose headers carry a W3C
 * traceparent, stops the server with SIGTERM (which flushes the spans), and returns its exit code and output.
 */
async function serveOneRequest(endpoint: string, otelEnv: Record<string, string>, beforeStop?: (out: () => string) => Promise<void>): Promise<{ code: number | null; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tiergate-otel-'));
  const config = join(dir, 'tiergate.yaml');
  writeFileSync(config, ['server: { drainDelayMs: 0 }', 'ledger:', '  sinks:', `    - { type: file, dir: ${join(dir, 'ledger')} }`].join('\n'));
  const env: NodeJS.ProcessEnv = { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', ...otelEnv };
  for (const name of ['OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES', 'OTEL_TRACES_EXPORTER', 'OTEL_SDK_DISABLED', 'OTEL_LOG_LEVEL', 'OTEL_BSP_SCHEDULE_DELAY']) {
    if (!(name in otelEnv)) delete env[name];
  }
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', config, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  // An assertion that fails before the SIGTERM below must not leave the server running, nor its directory behind.
  onTestFinished(() => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await expect.poll(() => out, { timeout: 20_000 }).toContain('"event":"server.started"');
  const { grpc_port } = JSON.parse(out.split('\n').find((l) => l.includes('server.started')) ?? '{}') as { grpc_port: number };
  const pool = new ExtProcPool(`127.0.0.1:${grpc_port}`, 500);
  try {
    const s = pool.open();
    await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'otel-e2e'], ['traceparent', `00-${TRACE}-${CALLER_SPAN}-01`]]), false);
    await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'Say hi' }] }));
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'weak-model', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }), true);
    s.close();
  } finally {
    pool.close();
  }
  await beforeStop?.(() => out);
  child.kill('SIGTERM');
  return { code: await exited, out };
}

/** serveOneRequest against a stand-in collector: the resource and spans it got. */
async function traceOneRequest(otelEnv: Record<string, string>): Promise<{ resource: Record<string, string>; spans: OtlpSpan[] }> {
  const col = await collector();
  stop = col.close;
  const { code, out } = await serveOneRequest(col.url, otelEnv);
  expect(code, out).toBe(0);
  const batches = col.exports.flatMap((e) => e.resourceSpans);
  expect(batches.length, out).toBeGreaterThan(0);
  const resource = Object.fromEntries((batches[0]?.resource.attributes ?? []).map((a) => [a.key, String(a.value.stringValue ?? a.value.intValue)]));
  return { resource, spans: batches.flatMap((b) => b.scopeSpans.flatMap((s) => s.spans)) };
}

describe('tracing started from OTEL_* variables (tiergate serve, OTLP/HTTP to a collector)', () => {
  it("names the service tiergate at its package version, keeps the SDK's own attributes, and exports the request's spans in its caller's trace", async () => {
    const { resource, spans } = await traceOneRequest({});
    expect(resource).toMatchObject({ 'service.name': 'tiergate', 'service.version': PACKAGE_VERSION, 'telemetry.sdk.language': 'nodejs' });
    // The process detector ran too: the resource is the SDK's default plus what it detects, not only ours.
    expect(resource['process.runtime.name']).toBe('nodejs');
    const stream = spans.find((s) => s.name === 'ext_proc stream');
    expect(stream).toMatchObject({ traceId: TRACE, parentSpanId: CALLER_SPAN, kind: 2 }); // SPAN_KIND_SERVER
    const attrs = Object.fromEntries((stream?.attributes ?? []).map((a) => [a.key, a.value.stringValue ?? a.value.intValue]));
    expect(attrs).toMatchObject({ 'tiergate.request_id': 'otel-e2e', 'tiergate.tier': 'weak', 'gen_ai.usage.input_tokens': 3 });
    const stages = spans.filter((s) => s.name.startsWith('stage '));
    expect(stages.map((s) => s.name)).toEqual(expect.arrayContaining(['stage parse', 'stage classify', 'stage route']));
    for (const s of stages) expect([s.traceId, s.parentSpanId]).toEqual([TRACE, stream?.spanId]);
  });

  it("lets the operator's OTEL_RESOURCE_ATTRIBUTES name the service and its version", async () => {
    const { resource } = await traceOneRequest({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=llm-gateway,service.version=2026.12-rc1,deployment.environment.name=prod' });
    expect(resource).toMatchObject({ 'service.name': 'llm-gateway', 'service.version': '2026.12-rc1', 'deployment.environment.name': 'prod' });
  });

  it('ranks OTEL_SERVICE_NAME over OTEL_RESOURCE_ATTRIBUTES, also with the resource detectors off', async () => {
    const both = { OTEL_SERVICE_NAME: 'gw-east', OTEL_RESOURCE_ATTRIBUTES: 'service.name=llm-gateway' };
    expect((await traceOneRequest(both)).resource['service.name']).toBe('gw-east');
    const { resource } = await traceOneRequest({ ...both, OTEL_NODE_RESOURCE_DETECTORS: 'none' });
    expect(resource).toMatchObject({ 'service.name': 'gw-east', 'service.version': PACKAGE_VERSION });
  });
});

describe('tracing with the collector down', () => {
  it('a SIGTERM still stops tiergate cleanly (exit 0, server.stopped): it died of the failed flush with exit 1 and a stack trace; the failure is logged', async () => {
    // A port nothing listens on: every export is refused.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const { port } = probe.address() as { port: number };
    await new Promise((r) => probe.close(r));
    // An export every 100 ms instead of 5 s: the first fails while tiergate runs, and says so in one clean line
    // (OTel hands its error handler's message over as JSON of the error's fields, stack included).
    const { code, out } = await serveOneRequest(`http://127.0.0.1:${port}`, { OTEL_BSP_SCHEDULE_DELAY: '100' }, async (log) => {
      await expect.poll(log, { timeout: 15_000 }).toContain('"event":"tracing.otel_warning"');
    });
    expect(code, out).toBe(0);
    const running = out.split('\n').find((l) => l.includes('"event":"tracing.otel_warning"')) ?? '';
    expect(JSON.parse(running)).toMatchObject({ level: 'warn', detail: expect.stringMatching(/ECONNREFUSED 127\.0\.0\.1/) });
    expect(running).not.toContain('stack');
    expect(out).not.toContain('triggerUncaughtException');
    const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.at(-1)).toMatchObject({ event: 'server.stopped' });
    // Refused, or still retrying when the flush's time is up: either way the spans are lost, and said so.
    const failed = lines.find((l) => l.event === 'tracing.flush_failed');
    expect(failed?.level).toBe('warn');
    expect(failed?.err).toMatch(/ECONNREFUSED|^spans not exported within 3000 ms$/);
  });
});

describe("the SDK's own warnings", () => {
  it('reach the log (they went nowhere without OTEL_LOG_LEVEL), with a URL\'s credentials taken out', async () => {
    // Not a URL (the space): OTel falls back to localhost:4318 and says so, quoting it.
    const { code, out } = await serveOneRequest('http://tiergate:hunter2@collector .internal:4318', {});
    expect(code, out).toBe(0);
    const warnings = out.split('\n').filter((l) => l.includes('"event":"tracing.otel_warning"')).map((l) => JSON.parse(l) as { level: string; detail: string });
    expect(warnings[0]).toEqual(expect.objectContaining({ level: 'warn', detail: expect.stringContaining('Could not parse environment-provided export URL') }));
    expect(warnings[0]?.detail).toContain('http://[redacted]@collector .internal:4318');
    expect(out).not.toContain('hunter2');
  });
});
