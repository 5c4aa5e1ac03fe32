// Envoy's stream-close pattern at sustained load: 20,000 streams at 500/s, each a full four-phase exchange
// closed by half-close + immediate reset, against tiergate in its own process. Run twice in the same run:
// with Envoy's default (unlimited streams per connection) and with max_requests_per_connection: 500 as
// envoy/envoy.yaml sets it. Prints; never asserts on time.  npm run bench:close [-- STREAMS RATE]
import { runStreamCloseLoad } from '../src/dev/stream-close-load.js';
import { startChild } from './children.js';

const streams = Number(process.argv[2] ?? 20_000);
const rate = Number(process.argv[3] ?? 500);
console.log(`node ${process.version}; ${streams} streams at ${rate}/s per run`);
for (const perConnection of [0, 500]) {
  const server = await startChild('tiergate');
  const r = await runStreamCloseLoad({ target: server.target, streams, ratePerSecond: rate, maxStreamsPerConnection: perConnection });
  server.stop();
  const label = perConnection ? `${perConnection} streams per connection` : 'one connection (Envoy default)';
  console.log(`${label.padEnd(34)} ok=${r.ok} failed=${r.failed} achieved=${r.achievedRate.toFixed(0)}/s in ${r.seconds.toFixed(1)}s ${JSON.stringify(r.errors)}`);
}
