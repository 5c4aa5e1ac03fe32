// Envoy's stream-close pattern at sustained load: 20,000 streams at 500/s, each a full four-phase exchange
// closed by half-close + immediate reset, against tiergate in its own process. Run in the same run: with Envoy's
// default (unlimited streams per connection) and with max_requests_per_connection: 500 as envoy/envoy.yaml sets
// it; and, on a Node that can raise HTTP/2's rapid-reset limit (22.10 and later), once more on one connection
// with Node's own limit put back through the config, to show what raising it does. Prints; never asserts on
// time.  npm run bench:close [-- STREAMS RATE]
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runStreamCloseLoad } from '../src/dev/stream-close-load.js';
import { startChild } from './children.js';

const streams = Number(process.argv[2] ?? 20_000);
const rate = Number(process.argv[3] ?? 500);
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const canRaise = major > 22 || (major === 22 && minor >= 10);

/** A config with nghttp2's own rapid-reset limit (burst 1,000, refill 33/s), as if tiergate did not raise it. */
function nodeLimitsConfig(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tiergate-close-'));
  const file = join(dir, 'config.json');
  const ledger = { sinks: [{ type: 'file', dir: join(dir, 'ledger') }], spoolDir: join(dir, 'spool') };
  writeFileSync(file, JSON.stringify({ server: { http2StreamResetBurst: 1000, http2StreamResetRate: 33 }, ledger }));
  return file;
}

const runs: Array<{ label: string; perConnection: number; env?: NodeJS.ProcessEnv }> = [
  { label: 'one connection (Envoy default)', perConnection: 0 },
  { label: '500 streams per connection', perConnection: 500 },
  ...(canRaise ? [{ label: "one connection, Node's own limits", perConnection: 0, env: { TIERGATE_BENCH_CONFIG: nodeLimitsConfig() } }] : []),
];
console.log(`node ${process.version}; ${streams} streams at ${rate}/s per run${canRaise ? '' : " (this Node cannot raise HTTP/2's reset limit)"}`);
for (const run of runs) {
  const server = await startChild('tiergate', [], run.env ?? {});
  const r = await runStreamCloseLoad({ target: server.target, streams, ratePerSecond: rate, maxStreamsPerConnection: run.perConnection });
  await server.stop();
  console.log(`${run.label.padEnd(34)} ok=${r.ok} failed=${r.failed} achieved=${r.achievedRate.toFixed(0)}/s in ${r.seconds.toFixed(1)}s ${JSON.stringify(r.errors)}`);
}
