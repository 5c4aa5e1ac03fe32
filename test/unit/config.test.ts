import { describe, expect, it } from 'vitest';
import { interpolateEnv } from '../../src/config/interpolate.js';
import { defaultConfig, parseConfigText } from '../../src/config/load.js';
import { compileRuntime, readsResponses, type Runtime } from '../../src/config/runtime.js';

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

  // Each cross-field check alone: the one problem it makes, at its path, saying why. The CLI suite runs
  // `config check` on some of these in a child process; this is where each one is held.
  const band = (over: string) => `classifier: { versions: { v8: { default: weak, rules: [{ name: long, tier: strong, when: [{ moreThanChars: 500 }] }, { name: off, enabled: false, tier: strong, when: [{ moreThanChars: 100 }] }, { name: two, tier: strong, when: [{ moreThanChars: 1 }, { moreThanMessages: 2 }] }], nearThreshold: [${over}] } } }`;
  it.each([
    ['an alias that is also an auto model', 'aliases: { auto: strong }', 'aliases.auto', '"auto" is also in routing.autoModels, which are classified: this alias would never apply'],
    ['an alias of an unknown tier', 'aliases: { fast: medium }', 'aliases.fast', 'unknown tier "medium" (tiers: weak, strong)'],
    ['an unclassified path to an unknown tier', 'routing: { unclassifiedPaths: { /v1/embeddings: { tier: big } } }', 'routing.unclassifiedPaths./v1/embeddings.tier', 'unknown tier "big" (tiers: weak, strong)'],
    ['an unknown stateful tier', 'routing: { statefulTier: large }', 'routing.statefulTier', 'unknown tier "large" (tiers: weak, strong)'],
    ['an unknown shadow version', 'classifier: { shadow: v9 }', 'classifier.shadow', 'unknown classifier version "v9" (versions: v7)'],
    ['an unknown canary version', 'classifier: { canary: { version: v9, percent: 5 } }', 'classifier.canary.version', 'unknown classifier version "v9" (versions: v7)'],
    ['a canary of the active version', 'classifier: { canary: { version: v7, percent: 5 } }', 'classifier.canary.version', 'the canary version is the active version'],
    ['a canary sticky by a header it does not name', 'classifier: { versions: { v8: { default: weak, rules: [] } }, canary: { version: v8, percent: 5, stickyBy: header } }', 'classifier.canary.header', 'stickyBy "header" needs header'],
    ["a version's unknown default tier", 'classifier: { versions: { v8: { default: mid, rules: [] } } }', 'classifier.versions.v8.default', 'unknown tier "mid" (tiers: weak, strong)'],
    ['a band around no rule', band('{ rule: nope, from: 400, to: 600, tier: strong }'), 'classifier.versions.v8.nearThreshold[0].rule', 'no enabled rule named "nope"'],
    ['a band around a disabled rule', band('{ rule: off, from: 50, to: 150, tier: strong }'), 'classifier.versions.v8.nearThreshold[0].rule', 'no enabled rule named "off"'],
    ['a band around a rule of two numeric conditions', band('{ rule: two, from: 0, to: 5, tier: strong }'), 'classifier.versions.v8.nearThreshold[0].rule', 'rule "two" needs exactly one numeric condition (moreThanChars, moreThanBytes, moreThanMessages, moreThanTools) for a band'],
    ['a band to an unknown tier', band('{ rule: long, from: 400, to: 600, tier: huge }'), 'classifier.versions.v8.nearThreshold[0].tier', 'unknown tier "huge" (tiers: weak, strong)'],
    ["a regex's unknown flag", 'classifier: { versions: { v8: { default: weak, rules: [{ name: r, tier: strong, when: [{ regex: "a", flags: "q" }] }] } } }', 'classifier.versions.v8.rules[0].when[0].flags', 'expected some of i, m, s, u, each at most once'],
    ["a regex's flag twice", 'classifier: { versions: { v8: { default: weak, rules: [{ name: r, tier: strong, when: [{ regex: "a", flags: "ii" }] }] } } }', 'classifier.versions.v8.rules[0].when[0].flags', 'expected some of i, m, s, u, each at most once'],
    ['two sinks of one name', 'ledger: { sinks: [{ type: stdout }, { type: stdout }] }', 'ledger.sinks[1].name', 'duplicate sink name "stdout"'],
    ['a semantic threshold below the floor', 'cache: { semantic: { threshold: 0.8 } }', 'cache.semantic.threshold', 'below the floor cache.semantic.minThreshold (0.85)'],
    ["a plan's threshold below the floor", 'plans: { p: { cache: { threshold: 0.84 } } }', 'plans.p.cache.threshold', 'below the floor cache.semantic.minThreshold (0.85)'],
    ["a tenant's threshold below the floor", 'tenants: { acme: { cache: { threshold: 0.84 } } }', 'tenants.acme.cache.threshold', 'below the floor cache.semantic.minThreshold (0.85)'],
    ['a tenant id with a space', 'tenants: { "two words": {} }', 'tenants.two words', 'expected a tenant id (1–64 of A-Z a-z 0-9 . _ -) or "*"'],
    ['an unknown plan', 'tenants: { acme: { plan: gold } }', 'tenants.acme.plan', 'unknown plan "gold"'],
    ['a tier limit for an unknown tier', 'budgets: { tierTokensPerMinute: { huge: 1000 } }', 'budgets.tierTokensPerMinute.huge', 'unknown tier "huge" (tiers: weak, strong)'],
    ['a Redis cache without Redis', 'cache: { store: redis }', 'cache.redis', 'store "redis" needs cache.redis.url'],
    ['Redis affinity without Redis', 'routing: { affinity: { store: redis } }', 'routing.affinity.redis', 'store "redis" needs routing.affinity.redis.url'],
    ['Redis budgets without Redis', 'budgets: { store: redis }', 'budgets.redis', 'store "redis" needs budgets.redis.url'],
    ['API keys and not one key', 'auth: { mode: api_key }', 'auth.keys', 'mode "api_key" needs at least one key'],
  ])('refuses %s', (_what, text, path, message) => {
    const r = parseConfigText(text, {});
    expect(r.ok ? [] : r.problems).toEqual([{ path, message: typeof message === 'string' ? message : expect.stringMatching(message) }]);
  });

  it('a bad pattern with bad flags is two problems, each said once', () => {
    const r = parseConfigText('classifier: { versions: { v8: { default: weak, rules: [{ name: r, tier: strong, when: [{ regex: "(", flags: "qq" }] }] } } }', {});
    const at = 'classifier.versions.v8.rules[0].when[0]';
    expect(r.ok ? [] : r.problems).toEqual([
      { path: `${at}.flags`, message: 'expected some of i, m, s, u, each at most once' },
      { path: `${at}.regex`, message: 'Invalid regular expression: /(/: Unterminated group' },
    ]);
  });

  it('v7 in use while its tiers are renamed: each tier it routes to is named as missing, once', () => {
    const r = parseConfigText('tiers: { small: { model: a }, large: { model: b } }', {});
    const missing = (t: string) => ({ path: 'classifier.versions.v7', message: `unknown tier "${t}" (tiers: small, large), which the built-in v7 routes to: define it, or give v7 rules of your own here` });
    // Its four rules route to strong and its default to weak: two problems, where there were five alike.
    expect(r.ok ? [] : r.problems).toEqual([missing('weak'), missing('strong')]);
    const strongOnly = parseConfigText('tiers: { weak: { model: a }, large: { model: b } }', {});
    expect(strongOnly.ok ? [] : strongOnly.problems).toEqual([{ ...missing('strong'), message: missing('strong').message.replace('small, large', 'weak, large') }]);
    // In use as the shadow or the canary it is checked too; a version of the user's own active, it is not.
    const renamed = 'tiers: { small: { model: a }, large: { model: b } }\nclassifier: { active: v8, versions: { v8: { default: small, rules: [] } }';
    for (const more of [', shadow: v7 }', ', canary: { version: v7, percent: 10 } }']) {
      const used = parseConfigText(renamed + more, {});
      expect(used.ok ? [] : used.problems.map((p) => p.message.split('"')[1])).toEqual(['weak', 'strong']);
    }
    expect(parseConfigText(renamed + ' }', {}).ok).toBe(true);
    // Overriding v7 with rules for the new tiers is the way out.
    expect(parseConfigText('tiers: { small: { model: a }, large: { model: b } }\nclassifier: { versions: { v7: { default: small, rules: [] } } }', {}).ok).toBe(true);
  });

  it.each([
    ['a semantic threshold at the floor', 'cache: { semantic: { threshold: 0.85 } }'],
    ["a plan's and a tenant's threshold at the floor", 'plans: { p: { cache: { threshold: 0.85 } } }\ntenants: { acme: { plan: p, cache: { threshold: 0.85 } }, "*": {} }'],
    ['a band around an enabled rule of one numeric condition', band('{ rule: long, from: 400, to: 600, tier: strong }')],
    ['a band around a rule of one numeric condition and a keyword', 'classifier: { versions: { v8: { default: weak, rules: [{ name: kw, tier: strong, when: [{ anyKeyword: [debug] }, { moreThanChars: 200 }] }], nearThreshold: [{ rule: kw, from: 150, to: 250, tier: strong }] } } }'],
    ['a regex with valid flags', 'classifier: { versions: { v8: { default: weak, rules: [{ name: r, tier: strong, when: [{ regex: "a", flags: "iu" }] }] } } }'],
    ['a canary sticky by a header it names', 'classifier: { versions: { v8: { default: weak, rules: [] } }, canary: { version: v8, percent: 5, stickyBy: header, header: X-Cohort } }'],
    ["a tier's model id among the auto models (its requests classified)", 'routing: { autoModels: [auto, strong-model] }'],
    ['two sinks of one type under two names', 'ledger: { sinks: [{ type: stdout }, { type: stdout, name: audit }] }'],
  ])('accepts %s', (_what, text) => {
    const r = parseConfigText(text, {});
    expect(r.ok ? [] : r.problems).toEqual([]);
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
tiers: { weak: { model: qwen-7b }, strong: { model: gpt-x } }
plans: { paid: { dailyCostBudgetUsd: 5, monthlyCostBudgetUsd: 100 } }
tenants: { acme: { plan: paid }, initech: { dailyCostBudgetUsd: 0.5 }, other: { dailyTokenBudget: 100 } }
${prices}`;
    const r = parseConfigText(text(''), {});
    if (!r.ok) throw new Error('parse failed');
    const rt = compileRuntime(r.config, {});
    const message = "a cost budget needs a price for every tier's model; prices.models has none for 'qwen-7b' (tier weak), 'gpt-x' (tier strong)";
    expect(rt.ok ? [] : rt.problems).toEqual([
      { path: 'plans.paid.dailyCostBudgetUsd', message },
      { path: 'plans.paid.monthlyCostBudgetUsd', message },
      { path: 'tenants.initech.dailyCostBudgetUsd', message },
    ]);
    const priced = parseConfigText(text('prices: { version: p1, models: { qwen-7b: { perToken: 0.0000001 }, gpt-x: { input: 2.5, output: 10 } } }'), {});
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

describe('the compiled runtime', () => {
  const compile = (text: string): Runtime => {
    const r = parseConfigText(text, {});
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const rt = compileRuntime(r.config, {});
    if (!rt.ok) throw new Error(JSON.stringify(rt.problems));
    return rt.runtime;
  };

  it('reads each Responses API path and its compaction endpoint beside it; no other path gains one', () => {
    const d = compile('');
    expect([...d.llmPaths]).toEqual(['/v1/chat/completions', '/v1/completions', '/v1/responses', '/v1/responses/compact']);
    expect(readsResponses(d)).toBe(true);
    const prefixed = compile('routing: { classifyPaths: [/v1/chat/completions, /openai/v1/responses] }');
    expect([...prefixed.llmPaths]).toEqual(['/v1/chat/completions', '/openai/v1/responses', '/openai/v1/responses/compact']);
    expect(readsResponses(prefixed)).toBe(true);
    const chatOnly = compile('routing: { classifyPaths: [/v1/chat/completions, /v1/completions] }');
    expect([...chatOnly.llmPaths]).toEqual(['/v1/chat/completions', '/v1/completions']);
    expect(readsResponses(chatOnly)).toBe(false);
  });

  it('stateful Responses turns go to routing.statefulTier, else the first tier listed', () => {
    expect(compile('routing: { statefulTier: strong }').statefulTier.name).toBe('strong');
    expect(compile('').statefulTier.name).toBe('weak');
    expect(compile('tiers: { strong: { model: s }, weak: { model: w } }').statefulTier.name).toBe('strong');
  });

  it('model names: each tier model id, then the aliases over them', () => {
    const rt = compile('aliases: { fast: weak, strong-model: weak }');
    expect(Object.fromEntries(rt.modelToTier)).toEqual({ 'weak-model': 'weak', 'strong-model': 'weak', fast: 'weak' });
  });

  it('its version is a 12-hex-digit hash of the config: the same config, the same version; any change, another', () => {
    const a = compile('logging: { level: info }');
    expect(a.version).toMatch(/^[0-9a-f]{12}$/);
    expect(compile('').version).toBe(a.version); // info is the default: the same config
    expect(compile('logging: { level: warn }').version).not.toBe(a.version);
  });

  it('its config is frozen all the way down: a stream cannot change what another sees', () => {
    const rt = compile('tenants: { acme: { models: [weak] } }');
    expect(() => {
      (rt.config.tenants.acme?.models as string[]).push('strong');
    }).toThrow(TypeError);
    expect(Object.isFrozen(rt.config.tiers.weak)).toBe(true);
    expect(Object.isFrozen(rt)).toBe(true);
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
