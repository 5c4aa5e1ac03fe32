// TalliedCounter sums increments locally and folds them into its prom-client counter when read: /metrics must
// show exactly what a plain prom-client counter given the same increments shows, scrape after scrape.
import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { TalliedCounter } from '../../src/telemetry/tallied-counter.js';

function pair() {
  const tallied = new Registry();
  const plain = new Registry();
  const config = { name: 'x_total', help: 'x', labelNames: ['tier', 'kind'] as const };
  return {
    t: new TalliedCounter({ ...config, registers: [tallied] }),
    p: new Counter({ ...config, registers: [plain] }),
    expose: async () => [await tallied.metrics(), await plain.metrics()],
  };
}

describe('TalliedCounter', () => {
  it('exposes the same text as a prom-client counter given the same increments, across scrapes', async () => {
    const { t, p, expose } = pair();
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let scrape = 0; scrape < 5; scrape++) {
      for (let i = 0; i < 200; i++) {
        const labels = { tier: ['weak', 'strong', 'none', `t${scrape}`][Math.floor(rand() * 4)] as string, kind: ['input', 'output'][Math.floor(rand() * 2)] as string };
        // Some zeros: an increment of 0 still creates its series.
        const n = rand() < 0.1 ? 0 : rand() < 0.3 ? 1 : Math.floor(rand() * 5000);
        t.inc(labels, n);
        p.inc(labels, n);
      }
      const [a, b] = await expose();
      expect(a).toBe(b);
      expect(a).toContain('x_total{tier="weak",kind="input"}');
    }
  });

  it('a second read folds nothing twice; labels print in their declared order, whatever the order in the object', async () => {
    const { t, p, expose } = pair();
    t.inc({ kind: 'input', tier: 'weak' }, 3);
    t.inc({ tier: 'weak', kind: 'input' }, 4);
    p.inc({ tier: 'weak', kind: 'input' }, 7);
    t.inc({ tier: 'zero', kind: 'output' }, 0);
    p.inc({ tier: 'zero', kind: 'output' }, 0);
    await expose();
    const [a, b] = await expose();
    expect(a).toBe(b);
    expect(a).toContain('x_total{tier="weak",kind="input"} 7');
    expect(a).toContain('x_total{tier="zero",kind="output"} 0');
  });

  it('refuses a negative or non-finite increment when it is made, and /metrics still works', async () => {
    const { t, expose } = pair();
    expect(() => t.inc({ tier: 'weak', kind: 'input' }, -1)).toThrow(/not a valid increment/);
    expect(() => t.inc({ tier: 'weak', kind: 'input' }, Number.NaN)).toThrow(/not a valid increment/);
    expect(() => t.inc({ tier: 'weak', kind: 'input' }, Infinity)).toThrow(/not a valid increment/);
    t.inc({ tier: 'weak', kind: 'input' });
    const [a] = await expose();
    expect(a).toContain('x_total{tier="weak",kind="input"} 1');
  });
});
