// The ReDoS check of classifier regex conditions (src/classify/regex-safety.ts): which patterns refuse a config,
// which are accepted, and a reload whose check is slow never swapping in over a newer edit.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { regexSafety } from '../../src/classify/regex-safety.js';
import { ConfigStore } from '../../src/config/config-store.js';
import { compileConfigText } from '../../src/config/runtime.js';
import { configSchema } from '../../src/config/schema.js';

const withRules = (...when: object[]) =>
  configSchema.parse({ classifier: { versions: { v8: { rules: when.map((w, i) => ({ name: `r${i}`, tier: 'strong', ...w })), default: 'weak' } } } });

describe('regexSafety', () => {
  it('refuses patterns that can take exponential or polynomial time, naming the rule and an attack', async () => {
    const config = withRules(
      { when: [{ regex: '^(\\w+\\s?)+$' }] },
      { when: [{ moreThanChars: 10 }, { regex: '[a-z]+@[a-z]+\\.com' }] },
      { when: [{ regex: '```' }] },
      { when: [{ regex: '\\b(?:refactor|debug)\\b', flags: 'i' }] },
    );
    const { problems, unchecked } = await regexSafety(config);
    expect(problems.map((p) => p.path)).toEqual(['classifier.versions.v8.rules[0].when[0].regex', 'classifier.versions.v8.rules[1].when[1].regex']);
    expect(problems[0]?.message).toMatch(/^\/\^\(\\w\+\\s\?\)\+\$\/ can take exponential time on text a client chooses \(for example .+\), .*allowSlow: true/);
    expect(problems[1]?.message).toMatch(/can take polynomial time/);
    expect(unchecked).toEqual([]);
  }, 60_000);

  it('skips a condition with allowSlow: true and a disabled rule; a config without regexes costs no check', async () => {
    const config = withRules({ when: [{ regex: '(a+)+$', allowSlow: true }] }, { enabled: false, when: [{ regex: '(b+)+$' }] });
    expect(await regexSafety(config)).toEqual({ problems: [], unchecked: [] });
    expect(await regexSafety(configSchema.parse({}))).toEqual({ problems: [], unchecked: [] });
  }, 60_000);

  it('checks every version, not only the active one: any can become active, or run as the shadow', async () => {
    const config = configSchema.parse({
      classifier: {
        active: 'v8',
        versions: {
          v8: { rules: [{ name: 'kw', tier: 'strong', when: [{ anyKeyword: ['x'] }] }], default: 'weak' },
          v9: { rules: [{ name: 'bad', tier: 'strong', when: [{ regex: '(x+x+)+y' }] }], default: 'weak' },
        },
      },
    });
    expect((await regexSafety(config)).problems.map((p) => p.path)).toEqual(['classifier.versions.v9.rules[0].when[0].regex']);
  }, 60_000);
});

describe('a reload whose checks are slow', () => {
  it('is not swapped in over a newer edit checked after it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-vet-'));
    try {
      const file = join(dir, 'tiergate.yaml');
      const initial = compileConfigText('tiers: { weak: { model: w0 }, strong: { model: s0 } }\n', {});
      if (!initial.ok) throw new Error('initial config');
      // The first edit's check takes 600 ms, the second's none.
      const store = new ConfigStore(initial.runtime, undefined, async (rt) => {
        if (rt.config.tiers.weak?.model === 'w1') await new Promise((r) => setTimeout(r, 600));
        return [];
      });
      const reloaded: string[] = [];
      store.watch(file, {}, { reloaded: (rt) => reloaded.push(rt.config.tiers.weak?.model ?? ''), rejected: () => undefined }, 20);
      writeFileSync(file, 'tiers: { weak: { model: w1 }, strong: { model: s0 } }\n');
      await new Promise((r) => setTimeout(r, 200));
      writeFileSync(file, 'tiers: { weak: { model: w2 }, strong: { model: s0 } }\n');
      await new Promise((r) => setTimeout(r, 1000));
      store.close();
      expect(reloaded).toEqual(['w2']);
      expect(store.current().config.tiers.weak?.model).toBe('w2');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
