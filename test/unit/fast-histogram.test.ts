import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FastHistogram } from '../../src/telemetry/fast-histogram.js';

describe('FastHistogram', () => {
  it("exposes exactly what prom-client's Histogram would for the same observations", async () => {
    const buckets = [0.001, 0.01, 0.1];
    const values = { a: [0.0005, 0.001, 0.02, 5], b: [0.05] };

    const fastRegistry = new Registry();
    const fast = new FastHistogram('x_seconds', 'help text', 'phase', buckets, fastRegistry);
    const refRegistry = new Registry();
    const ref = new Histogram({ name: 'x_seconds', help: 'help text', labelNames: ['phase'], buckets, registers: [refRegistry] });
    for (const [phase, vs] of Object.entries(values)) {
      for (const v of vs) {
        fast.labels(phase).observe(v);
        ref.observe({ phase }, v);
      }
    }
    const text = await fastRegistry.metrics();
    expect(text).toBe(await refRegistry.metrics());
    expect(text).toContain('x_seconds_bucket{le="0.001",phase="a"} 2');
    expect(text).toContain('x_seconds_bucket{le="+Inf",phase="a"} 4');
    expect(text).toContain('x_seconds_count{phase="b"} 1');
  });

  it("is emptied by the registry's resetMetrics as prom-client's is, and counts from zero after", async () => {
    const fastRegistry = new Registry();
    const fast = new FastHistogram('z_seconds', 'h', 'phase', [0.1, 1], fastRegistry);
    const refRegistry = new Registry();
    const ref = new Histogram({ name: 'z_seconds', help: 'h', labelNames: ['phase'], buckets: [0.1, 1], registers: [refRegistry] });
    fast.labels('a').observe(0.5);
    ref.observe({ phase: 'a' }, 0.5);
    fastRegistry.resetMetrics();
    refRegistry.resetMetrics();
    expect(await fastRegistry.metrics()).toBe(await refRegistry.metrics());
    expect(await fastRegistry.metrics()).not.toContain('phase="a"');
    fast.labels('a').observe(0.05);
    ref.observe({ phase: 'a' }, 0.05);
    expect(await fastRegistry.metrics()).toBe(await refRegistry.metrics());
    expect(await fastRegistry.metrics()).toContain('z_seconds_count{phase="a"} 1');
  });

  it('returns the same observer for a label value', () => {
    const h = new FastHistogram('y', 'h', 'l', [1], new Registry());
    expect(h.labels('v')).toBe(h.labels('v'));
  });
});
