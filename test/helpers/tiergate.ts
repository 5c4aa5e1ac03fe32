// Boots a real tiergate (gRPC on 127.0.0.1:0) from a config object, with an Envoy-faithful client pool.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { expect } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import type { Embedder } from '../../src/cache/embedders/embedder.js';
import { compileRuntime } from '../../src/config/runtime.js';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { ExtProcPool, chatRequestHeaders } from '../../src/dev/envoy-client.js';
import { MemorySink } from '../../src/ledger/memory-sink.js';
import { loadTokenizer } from '../../src/llm/tokenizer.js';
import type { LedgerRow } from '../../src/ledger/row.js';
import { createLogger } from '../../src/telemetry/logger.js';

export interface TestTiergate {
  app: App;
  port: number;
  target: string;
  pool: ExtProcPool;
  logs: string[];
  /** Where this instance's ledger rows go (unless the config names its own sinks and `ownSinks` is set). */
  ledger: MemorySink;
  /** Every row recorded so far, once the ledger has delivered them. */
  rows(): Promise<LedgerRow[]>;
  stop(): Promise<void>;
}

export function runtimeFor(input: ConfigInput = {}, env: NodeJS.ProcessEnv = {}) {
  const compiled = compileRuntime(configSchema.parse(input), env);
  if (!compiled.ok) throw new Error(JSON.stringify(compiled.problems));
  return compiled.runtime;
}

/** Captures log lines so tests can assert on what was (and was not) logged. */
export function captureLogger(level = 'debug') {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { log: createLogger(level, sink), logs };
}

/** The JSON log lines of one event, parsed. */
export function logEvents(logs: readonly string[], event: string): Array<Record<string, unknown>> {
  return logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === event);
}

/** A spool directory of its own, so nothing is written into the working tree. */
export function withTempSpool(input: ConfigInput): ConfigInput {
  return { ...input, ledger: { spoolDir: mkdtempSync(join(tmpdir(), 'tiergate-spool-')), ...input.ledger } };
}

export async function startTiergate(
  input: ConfigInput = {},
  env: NodeJS.ProcessEnv = {},
  opts: { ownSinks?: boolean; now?: () => number; embedder?: Embedder } = {},
): Promise<TestTiergate> {
  const { log, logs } = captureLogger();
  await loadTokenizer(); // as serve() does before listening
  const ledger = new MemorySink();
  const app = createApp(runtimeFor(withTempSpool(input), env), log, { ...(opts.ownSinks ? {} : { ledgerSinks: [ledger] }), ...(opts.now ? { now: opts.now } : {}), ...(opts.embedder ? { embedder: opts.embedder } : {}) });
  const port = await app.extproc.listen('127.0.0.1:0');
  await app.storesConnected(2000); // as serve() does
  app.markServing();
  const target = `127.0.0.1:${port}`;
  const pool = new ExtProcPool(target, 500);
  return {
    app,
    port,
    target,
    pool,
    logs,
    ledger,
    async rows() {
      await app.ledger.flush();
      return ledger.rows<LedgerRow>();
    },
    async stop() {
      pool.close();
      await app.shutdown(1000);
    },
  };
}

/**
 * A clock that runs in real time from one second past a UTC minute. Rate limits count in fixed UTC minutes, so a
 * test that counts requests against the wall clock fails whenever it happens to cross a minute boundary; on this
 * clock it has 59 s before the window turns, while timers, breakers and TTLs still see time pass.
 */
export function minuteAlignedClock(): () => number {
  const started = Date.now();
  // Near the real time, so absolute expiries a store computes from it stay sensible.
  const at = Math.floor(started / 60_000) * 60_000 + 1000;
  return () => at + (Date.now() - started);
}

export const chatHeaders = (extra: Array<[string, string]> = []): Array<[string, string]> => chatRequestHeaders([['x-request-id', 'req-1'], ...extra]);

export function jsonBody(o: unknown): Buffer {
  return Buffer.from(JSON.stringify(o));
}

export async function metricValue(app: Pick<App, 'metrics'>, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = app.metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const data = await metric.get();
  let sum = 0;
  for (const v of data.values) {
    if (Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want)) sum += v.value;
  }
  return sum;
}

/** The admin listener each app's budget views share, started by the first of them. */
const adminPorts = new WeakMap<App, Promise<number>>();

/**
 * A tenant's count for one limit as the admin listener's budget view shows it (used plus reserved), or -1 while
 * the view answers 503 (the budget store cannot be read). Starts the admin listener on first use.
 */
export function budgetView(t: TestTiergate, code: string, tenant = 'default'): () => Promise<number | undefined> {
  return async () => {
    let port = adminPorts.get(t.app);
    if (!port) adminPorts.set(t.app, (port = t.app.admin.listen('127.0.0.1:0')));
    const r = await fetch(`http://127.0.0.1:${await port}/budgets/${tenant}`);
    if (r.status !== 200) return -1;
    const view = (await r.json()) as { limits: Array<{ code: string; used: number }> };
    return view.limits.find((l) => l.code === code)?.used;
  };
}

/** The ledger row of one request, once the stream's end has settled it (rows are built in batches). */
export async function rowFor(t: TestTiergate, requestId: string): Promise<LedgerRow> {
  let row: LedgerRow | undefined;
  await expect.poll(async () => (row = (await t.rows()).find((r) => r.request_id === requestId))).toBeDefined();
  return row as LedgerRow;
}
