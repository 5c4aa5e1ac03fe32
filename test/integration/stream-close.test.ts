// Envoy ends every side stream with a half-close followed at once by a reset (§2.6). Under that pattern at
// load no stream may fail. nghttp2's rapid-reset guard (burst 1000, refill 33/s per connection, which Node 20
// cannot configure) would GOAWAY a connection that carries more resets; Envoy's max_requests_per_connection
// on the ext_proc cluster (envoy/envoy.yaml) keeps every connection below it. The full 20,000-stream run at
// 500/s, with and without that setting, is bench/stream-close-load.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStreamCloseLoad } from '../../src/dev/stream-close-load.js';
import { metricValue, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

let tg: TestTiergate;
beforeAll(async () => {
  tg = await startTiergate();
});
afterAll(async () => tg.stop());

describe("Envoy's stream-close pattern", () => {
  it('3,000 full exchanges at 1,000/s, each closed by half-close + reset, with 500 streams per connection: none fails', async () => {
    const r = await runStreamCloseLoad({ target: tg.target, streams: 3000, ratePerSecond: 1000, maxStreamsPerConnection: 500 });
    expect({ failed: r.failed, errors: r.errors, ok: r.ok }).toEqual({ failed: 0, errors: {}, ok: 3000 });
    // Every one of them reached the server's pipeline and ended there.
    await expect.poll(() => metricValue(tg.app, 'tiergate_extproc_active_streams')).toBe(0);
    expect(await metricValue(tg.app, 'tiergate_requests_total', { outcome: 'routed' })).toBe(3000);
    expect(await metricValue(tg.app, 'tiergate_extproc_processing_errors_total')).toBe(0);
  });
});
