import { describe, expect, it } from 'vitest';
import { interpolateEnv } from '../../src/config/interpolate.js';
import { defaultConfig, parseConfigText } from '../../src/config/load.js';
import { compileRuntime } from '../../src/config/runtime.js';

describe('embedded defaults', () => {
  it('run with no file: v7, weak/strong tiers, default ports', () => {
    const c = defaultConfig();
    expect(c.classifier.active).toBe('v7');
    expect(Object.keys(c.tiers)).toEqual(['weak', 'strong']);
    expect([c.server.listen, c.server.admin]).toEqual(['0.0.0.0:9002', '0.0.0.0:9090']);
    const rt = compileRuntime(c, {});
    expect(rt.ok).toBe(true);
  });

  it('an empty file is the defaults', () => {
    const r = parseConfigText('', {});
    expect(r.ok && r.config).toEqual(defaultConfig());
  });
});

describe('validation', () => {
  it('reports every problem with its path', () => {
    const r = parseConfigText(
      `
server: { listen: "nope" }
tiers: { weak: { model: w }, strong: { model: s } }
aliases: { gpt-4o: medium }
routing: { statefulTier: large, affinity: { store: redis } }
classifier:
  active: v9
  versions:
    v8:
      rules: [{ name: kw, tier: huge, when: [{ anyKeyword: [x] }] }]
      default: weak
unknownKey: 1
`,
      {},
    );
    expect(r.ok).toBe(false);
    const paths = r.ok ? [] : r.problems.map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['server.listen', '(root)']));
    if (!r.ok) expect(r.problems.some((p) => p.message.includes('unknownKey'))).toBe(true);
  });

  it('reports cross-field problems once the shape is right', () => {
    const r = parseConfigText(
      `
aliases: { gpt-4o: medium }
routing: { statefulTier: large, affinity: { store: redis } }
classifier:
  active: v9
  versions:
    v8:
      rules: [{ name: kw, tier: huge, when: [{ regex: "(" }] }]
      default: weak
`,
      {},
    );
    const problems = r.ok ? [] : r.problems;
    expect(problems.map((p) => p.path).sort()).toEqual(
      [
        'aliases.gpt-4o',
        'routing.statefulTier',
        'routing.affinity.redis',
        'classifier.active',
        'classifier.versions.v8.rules[0].tier',
        'classifier.versions.v8.rules[0].when[0].regex',
      ].sort(),
    );
  });

  // One check (runtime.ts hmacKey) for both per-tenant HMAC secrets.
  it.each([
    ['a prefix-cache salt', 'cacheSaltSecretEnv', 'SALT_KEY'],
    ['a safety identifier', 'safetyIdentifierSecretEnv', 'SAFETY_KEY'],
  ])('refuses %s secret that is missing or short enough to guess, naming the setting', (_what, setting, name) => {
    const r = parseConfigText(`tiers: { weak: { model: w }, strong: { model: s, ${setting}: ${name} } }`, {});
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const problems = (env: Record<string, string>) => {
      const rt = compileRuntime(r.config, env);
      return rt.ok ? [] : rt.problems;
    };
    expect(problems({})).toEqual([{ path: `tiers.strong.${setting}`, message: `environment variable ${name} is not set` }]);
    expect(problems({ [name]: 'x'.repeat(31) })).toEqual([{ path: `tiers.strong.${setting}`, message: `${name} must hold at least 32 characters (e.g. openssl rand -base64 32)` }]);
    expect(problems({ [name]: 'x'.repeat(32) })).toEqual([]);
  });

  it('rejects a tier credential whose env var is missing, at compile time', () => {
    const r = parseConfigText('tiers: { weak: { model: w, credentialsEnv: WEAK_KEY }, strong: { model: s } }', {});
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const rt = compileRuntime(r.config, {});
    expect(rt.ok ? [] : rt.problems).toEqual([{ path: 'tiers.weak.credentialsEnv', message: 'environment variable WEAK_KEY is not set' }]);
    const ok = compileRuntime(r.config, { WEAK_KEY: 'sk-1' });
    expect(ok.ok && ok.runtime.tiers.get('weak')?.authorization).toBe('Bearer sk-1');
  });

  it('refuses a cost budget while a tier model has no price, naming every budget and every unpriced model', () => {
    const text = (prices: string) => `
tiers: { weak: { model: qwen-7b }, strong: { model: strong-model } }
plans: { paid: { dailyCostBudgetUsd: 5, monthlyCostBudgetUsd: 100 } }
tenants: { acme: { plan: paid }, initech: { dailyCostBudgetUsd: 0.5 }, other: { dailyTokenBudget: 100 } }
${prices}`;
    const r = parseConfigText(text(''), {});
    if (!r.ok) throw new Error('parse failed');
    const rt = compileRuntime(r.config, {});
    const message = "a cost budget needs a price for every tier's model; prices.models has none for 'qwen-7b' (tier weak)";
    expect(rt.ok ? [] : rt.problems).toEqual([
      { path: 'plans.paid.dailyCostBudgetUsd', message },
      { path: 'plans.paid.monthlyCostBudgetUsd', message },
      { path: 'tenants.initech.dailyCostBudgetUsd', message },
    ]);
    const priced = parseConfigText(text('prices: { version: p1, models: { qwen-7b: { perToken: 0.0000001 }, strong-model: { input: 2.5, output: 10 } } }'), {});
    expect(priced.ok && compileRuntime(priced.config, {}).ok).toBe(true);
  });

  it('compiles a custom classifier version and makes it active', () => {
    const r = parseConfigText(
      `
classifier:
  active: v8
  versions:
    v8:
      rules: [{ name: code, tier: strong, when: [{ regex: "\`\`\`" }] }]
      default: weak
`,
      {},
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const rt = compileRuntime(r.config, {});
    if (!rt.ok) throw new Error('compile failed');
    expect(rt.runtime.classifierVersion).toBe('v8');
    expect(rt.runtime.classifiers.classify({ tenant: 't', headers: new Map(), messages: [{ role: 'user', content: '```js\n1```' }] }).decision).toMatchObject({ tier: 'strong', version: 'v8', rule: 'code' });
  });

  it('reads JSON too', () => {
    const r = parseConfigText('{"logging": {"level": "warn"}}', {});
    expect(r.ok && r.config.logging.level).toBe('warn');
  });
});

describe('${ENV} interpolation', () => {
  it.each([
    ['replaces a variable', 'key-${A}', { A: '1' }, 'key-1', 0],
    ['escapes $${A}', '$${A}', {}, '${A}', 0],
    ['reports a missing variable', '${MISSING}', {}, '', 1],
  ])('%s', (_n, input, env, want, nProblems) => {
    const problems: { path: string; message: string }[] = [];
    expect(interpolateEnv({ a: [input] }, env, problems)).toEqual({ a: [want] });
    expect(problems).toHaveLength(nProblems);
    if (nProblems) expect(problems[0]).toEqual({ path: 'a[0]', message: 'environment variable MISSING is not set' });
  });

  it('applies inside config files', () => {
    const r = parseConfigText('tiers: { weak: { model: "${WEAK_MODEL}" }, strong: { model: s } }', { WEAK_MODEL: 'qwen-7b' });
    expect(r.ok && r.config.tiers.weak?.model).toBe('qwen-7b');
  });
});
