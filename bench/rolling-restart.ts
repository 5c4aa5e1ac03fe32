// A replica stopped under traffic, as Envoy sees it. Two tiergate replicas behind a client that spreads requests
// over the replicas its gRPC health checks find serving, the way envoy/envoy.yaml configures Envoy (a check every
// 2 s, unhealthy after 2 failures), and one replica stopped mid-run as SIGTERM stops it. Run with no drain delay
// (tiergate before server.drainDelayMs) and with the shipped 5 s, in the same run; prints how many requests
// failed in each (Envoy's 500 for an ext_proc stream it could not open). Counts, never asserts.
//   npm run bench:rolling-restart [-- RATE]
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { ExtProcPool, RECOMMENDED_FILTER, chatRequestHeaders } from '../src/dev/envoy-client.js';
import { serve, type Serving } from '../src/main.js';

const rate = Number(process.argv[2] ?? 200);
const HEALTH_INTERVAL_MS = 2000;
const UNHEALTHY_THRESHOLD = 2;
const STOP_AT_MS = 3000;
const AFTER_STOP_MS = 9000;

type HealthClient = grpc.Client & { check(r: { service: string }, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { status: string }) => void): void };
const HealthCtor = grpc.makeGenericClientConstructor(healthService, 'Health');

/** One replica as the data plane sees it: its stream pool, and what its health checks say. */
class Host {
  healthy = true;
  private failures = 0;
  private readonly health: HealthClient;
  private readonly timer: NodeJS.Timeout;
  readonly pool: ExtProcPool;

  constructor(readonly serving: Serving) {
    const target = `127.0.0.1:${serving.grpcPort}`;
    this.pool = new ExtProcPool(target, 500);
    this.health = new HealthCtor(target, grpc.credentials.createInsecure()) as unknown as HealthClient;
    this.timer = setInterval(() => this.check(), HEALTH_INTERVAL_MS);
  }

  private check(): void {
    this.health.check({ service: 'envoy.service.ext_proc.v3.ExternalProcessor' }, { deadline: Date.now() + 1000 }, (err, res) => {
      if (!err && res?.status === 'SERVING') {
        this.failures = 0;
        this.healthy = true;
      } else if (++this.failures >= UNHEALTHY_THRESHOLD) this.healthy = false;
    });
  }

  close(): void {
    clearInterval(this.timer);
    this.health.close();
    this.pool.close();
  }
}

async function replica(dir: string, name: string): Promise<Serving> {
  const config = join(dir, `${name}.yaml`);
  writeFileSync(config, `ledger: { sinks: [{ type: file, dir: ${join(dir, name)} }], spoolDir: ${join(dir, name, 'spool')} }\n`);
  return serve({ configFile: config, listen: '127.0.0.1:0', admin: '127.0.0.1:0', env: { TIERGATE_LOG_LEVEL: 'silent' } });
}

/** One four-phase request; true when it got through (no error from the data plane). */
async function request(pool: ExtProcPool, n: number): Promise<boolean> {
  const s = pool.open(RECOMMENDED_FILTER);
  try {
    const h = await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', `r${n}`]]), false);
    if (h.kind === 'error') return false;
    const b = await s.sendRequestBody(Buffer.from(JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] })));
    if (b.kind === 'error') return false;
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    const last = await s.sendResponseBody(Buffer.from(JSON.stringify({ object: 'chat.completion', model: 'weak-model', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } })), true);
    return last.kind !== 'error';
  } finally {
    s.close();
  }
}

async function run(drainMs: number): Promise<{ sent: number; failed: number; failedAfterStop: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'tiergate-rolling-'));
  const hosts = [new Host(await replica(dir, 'a')), new Host(await replica(dir, 'b'))];
  const started = Date.now();
  let sent = 0;
  let failed = 0;
  let failedAfterStop = 0;
  let next = 0;
  const inFlight = new Set<Promise<void>>();
  let stopping: Promise<void> | undefined;
  while (Date.now() - started < STOP_AT_MS + AFTER_STOP_MS) {
    if (!stopping && Date.now() - started >= STOP_AT_MS) stopping = hosts[0]?.serving.stop({ drainMs });
    // Round robin over the healthy hosts; all of them when none is (Envoy's panic routing).
    const healthy = hosts.filter((h) => h.healthy);
    const host = (healthy.length > 0 ? healthy : hosts)[next++ % (healthy.length || hosts.length)] as Host;
    const afterStop = stopping !== undefined;
    const p = request(host.pool, sent++).then(
      (ok) => {
        if (!ok) {
          failed++;
          if (afterStop) failedAfterStop++;
        }
      },
      () => void failed++,
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    await new Promise((r) => setTimeout(r, 1000 / rate));
  }
  await Promise.all([...inFlight]);
  await stopping;
  for (const h of hosts) h.close();
  await hosts[1]?.serving.stop();
  return { sent, failed, failedAfterStop };
}

console.log(`node ${process.version}; two replicas, ${rate} requests/s spread over the healthy ones (health checked every ${HEALTH_INTERVAL_MS} ms, unhealthy after ${UNHEALTHY_THRESHOLD} failures); replica a stopped at ${STOP_AT_MS / 1000} s, traffic for ${AFTER_STOP_MS / 1000} s more`);
for (const drainMs of [0, 5000]) {
  const r = await run(drainMs);
  console.log(`drain delay ${String(drainMs).padStart(4)} ms: ${r.sent} requests, ${r.failed} failed (${r.failedAfterStop} of them sent after the stop began)`);
}
process.exit(0);
