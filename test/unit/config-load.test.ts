// Reading a config's text (src/config/load.ts): what the YAML parser's errors and the environment's gaps become,
// one problem each, named by the file. config.test.ts checks what a config means; config-fuzz.test.ts that no
// text makes the check throw.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfigText } from '../../src/config/load.js';
import { compileConfigText } from '../../src/config/runtime.js';

const problems = (text: string, env: NodeJS.ProcessEnv = {}) => {
  const r = parseConfigText(text, env);
  return r.ok ? [] : r.problems;
};
/** A syntax error's first line, and the notes after the parser's code frame. */
const syntax = (text: string) =>
  problems(text).map((p) => [p.path, p.message.split('\n')[0], p.message.split('\n').filter((l) => l.startsWith('(')).join(' ')]);

describe('a YAML syntax error', () => {
  it("is named by the file, 'config' when the text has no file", () => {
    expect(parseConfigText('tiers: [\n', {}, 'mine.yaml')).toMatchObject({ ok: false, problems: [{ path: 'mine.yaml' }] });
    // The parser's message and code frame, and nothing after a lone error.
    expect(problems('tiers: [\n')).toEqual([{ path: 'config', message: 'Flow sequence in block collection must be sufficiently indented and end with a ] at line 2, column 1:\n\ntiers: [\n\n^\n' }]);
  });

  it('says how many errors followed from it, one or more', () => {
    expect(syntax('a: [1, {b: 2]\n')[0]?.[2]).toBe('(1 more syntax error after it, most often caused by this one)');
    expect(syntax('- a\nb: 1\n')[0]?.[2]).toBe('(2 more syntax errors after it, most often caused by this one)');
  });

  it('says to quote a ${VAR} only when one is what opened the flow mapping', () => {
    expect(problems('a: [1] {b: 1}\n')).toEqual([
      { path: 'config', message: 'Unexpected flow-map-start at node end at line 1, column 8:\n\na: [1] {b: 1}\n       ^\n\n(2 more syntax errors after it, most often caused by this one)' },
    ]);
    expect(syntax('tiers: { weak: { model: ${W}} }\n')[0]?.[2]).toBe('(an ${VAR} inside { } or [ ] must be quoted: "${VAR}") (2 more syntax errors after it, most often caused by this one)');
  });
});

describe('what is not a syntax error but still refused', () => {
  it('a YAML alias bomb: a problem, not the memory it would expand to', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]', ...'bcdef'.split('').map((n, i) => `${n}: &${n} [${Array(9).fill(`*${'abcde'[i]}`).join(', ')}]`)].join('\n');
    expect(problems(bomb)).toEqual([{ path: 'config', message: 'Excessive alias count indicates a resource exhaustion attack' }]);
  });

  it('an environment variable that is not set, even where the empty text it leaves would pass the schema', () => {
    const text = 'budgets:\n  redis:\n    url: redis://127.0.0.1:6379\n    keyPrefix: "tg${TG_PREFIX}:"\n';
    expect(problems(text)).toEqual([{ path: 'budgets.redis.keyPrefix', message: 'environment variable TG_PREFIX is not set' }]);
    expect(parseConfigText(text, { TG_PREFIX: '-a' })).toMatchObject({ ok: true, config: { budgets: { redis: { keyPrefix: 'tg-a:' } } } });
  });

  it('an unset variable is one problem: not also what the schema says of the empty text it leaves', () => {
    // examples/tiergate.yaml checked without its variables said "Too small: expected string to have >=16
    // characters" under each missing one; other problems of the file are still reported.
    const text = 'ledger:\n  userHashKey: ${HASH_KEY}\nbudgets:\n  redis: { url: "${REDIS_URL}" }\nserver: { drainDelayMs: -1 }\n';
    expect(problems(text)).toEqual([
      { path: 'ledger.userHashKey', message: 'environment variable HASH_KEY is not set' },
      { path: 'budgets.redis.url', message: 'environment variable REDIS_URL is not set' },
      { path: 'server.drainDelayMs', message: 'Too small: expected number to be >=0' },
    ]);
    // Set but too short, the schema's problem is the one reported.
    expect(problems(text, { HASH_KEY: 'short', REDIS_URL: 'redis://127.0.0.1:6379' })).toEqual([
      { path: 'server.drainDelayMs', message: 'Too small: expected number to be >=0' },
      { path: 'ledger.userHashKey', message: 'Too small: expected string to have >=16 characters' },
    ]);
  });

  it("unset variables alone: the checks that need a whole config report theirs in the same pass, the file's other problems stop them", () => {
    const compiled = (text: string, env: NodeJS.ProcessEnv = {}) => {
      const r = compileConfigText(text, env);
      return r.ok ? [] : r.problems;
    };
    const creds = 'tiers:\n  weak: { model: w }\n  strong: { model: s, credentialsEnv: STRONG_KEY }\n';
    // examples/tiergate.yaml checked without its variables named the hash key first, and the strong tier's key
    // only once that was set.
    expect(compiled(`${creds}ledger:\n  userHashKey: \${HASH_KEY}\n`)).toEqual([
      { path: 'ledger.userHashKey', message: 'environment variable HASH_KEY is not set' },
      { path: 'tiers.strong.credentialsEnv', message: 'environment variable STRONG_KEY is not set' },
    ]);
    // Two unset variables in one value: the same.
    expect(compiled(`${creds}budgets:\n  redis: { url: redis://127.0.0.1:6379, keyPrefix: "\${A}-\${B}:" }\n`).map((p) => p.path)).toEqual([
      'budgets.redis.keyPrefix',
      'budgets.redis.keyPrefix',
      'tiers.strong.credentialsEnv',
    ]);
    // A value the config cannot do without (a Redis block's url): nothing more is read without it.
    expect(compiled(`${creds}budgets:\n  redis: { url: "\${REDIS_URL}" }\n`).map((p) => p.path)).toEqual(['budgets.redis.url']);
    // An unset variable whose '' the schema took (the key's text is only part of the value): the same.
    expect(compiled(`${creds}budgets:\n  redis: { url: redis://127.0.0.1:6379, keyPrefix: "tg\${P}:" }\n`).map((p) => p.path)).toEqual(['budgets.redis.keyPrefix', 'tiers.strong.credentialsEnv']);
    // What the file gets wrong besides is fixed first: the config then means something else.
    expect(compiled(`${creds}ledger:\n  userHashKey: \${HASH_KEY}\nserver: { drainDelayMs: -1 }\n`).map((p) => p.path)).toEqual(['ledger.userHashKey', 'server.drainDelayMs']);
    // A list's element cannot be left out without changing the list: nothing more is read.
    expect(compiled(`${creds}routing:\n  classifyPaths: ["\${EXTRA_PATH}"]\n`).map((p) => p.path)).toEqual(['routing.classifyPaths[0]']);
    // With the variables set, a problem is named once.
    expect(compiled(`${creds}ledger:\n  userHashKey: \${HASH_KEY}\n`, { HASH_KEY: 'k'.repeat(16) })).toEqual([{ path: 'tiers.strong.credentialsEnv', message: 'environment variable STRONG_KEY is not set' }]);
  });

  it('nesting: 64 levels is the limit, counted from the top', () => {
    // The deepest object at depth 63 is past no limit (the schema then has its say); at depth 64 it is refused.
    const nested = (depth: number) => `x: ${'{a: '.repeat(depth - 1)}{}${'}'.repeat(depth - 1)}\n`;
    const deep = 'nested more than 64 levels deep, or a YAML alias used inside its own anchor';
    expect(problems(nested(63)).map((p) => p.message)).not.toContain(deep);
    expect(problems(nested(64))).toEqual([{ path: 'config', message: deep }]);
  });
});

describe('a ${VAR} where the config wants a number or a boolean', () => {
  const config = (text: string, env: NodeJS.ProcessEnv) => {
    const r = parseConfigText(text, env);
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    return r.config;
  };

  it('is read as one: a plain setting, a plan, a sink and a cache policy, and a condition among several shapes', () => {
    const c = config(
      [
        'server: { drainDelayMs: "${DRAIN}" }',
        'logging: { logPrompts: "${LOG_PROMPTS}" }',
        'routing: { models: { serve: "${SERVE_MODELS}" } }',
        'plans:',
        '  p: { models: ["*"], requestsPerMinute: "${RPM}", tokensPerMinute: "${TPM}" }',
        'tenants:',
        '  "*": { plan: p, cache: { mode: exact, ttlSeconds: "${TTL}" } }',
        'ledger:',
        '  sinks: [{ type: redis, url: "redis://r:6379", stream: s, maxLen: "${MAXLEN}" }]',
        'classifier:',
        '  versions:',
        '    v8: { rules: [{ name: long, tier: strong, when: [{ moreThanChars: "${CHARS}" }] }], default: weak }',
      ].join('\n'),
      { DRAIN: '0', LOG_PROMPTS: 'TRUE', SERVE_MODELS: ' false ', RPM: ' 600 ', TPM: '200000', TTL: '3600', MAXLEN: '1000000', CHARS: '480' },
    );
    expect(c.server.drainDelayMs).toBe(0);
    expect(c.logging.logPrompts).toBe(true);
    expect(c.routing.models.serve).toBe(false);
    expect(c.plans.p).toMatchObject({ requestsPerMinute: 600, tokensPerMinute: 200000 });
    expect(c.tenants['*']?.cache).toMatchObject({ ttlSeconds: 3600 });
    expect(c.ledger.sinks[0]).toMatchObject({ maxLen: 1000000 });
    expect(c.classifier.versions.v8?.rules[0]?.when[0]).toEqual({ moreThanChars: 480 });
  });

  it('text meant as text stays text, digits or not', () => {
    const c = config('tiers:\n  weak: { model: "${WEAK}" }\n  strong: { model: s }\n', { WEAK: '2024' });
    expect(c.tiers.weak?.model).toBe('2024');
  });

  it.each([
    ['not a number', 'server: { drainDelayMs: "${X}" }', 'abc', 'server.drainDelayMs', 'number'],
    ['empty', 'server: { drainDelayMs: "${X}" }', '', 'server.drainDelayMs', 'number'],
    ['hexadecimal', 'server: { drainDelayMs: "${X}" }', '0x10', 'server.drainDelayMs', 'number'],
    ['an exponent', 'server: { drainDelayMs: "${X}" }', '1e3', 'server.drainDelayMs', 'number'],
    ['not a boolean', 'logging: { logPrompts: "${X}" }', 'yes', 'logging.logPrompts', 'boolean'],
    ["an object's own property name", 'logging: { logPrompts: "${X}" }', 'constructor', 'logging.logPrompts', 'boolean'],
    ['a variable inside other text', 'server: { drainDelayMs: "${X}0" }', '5', 'server.drainDelayMs', 'number'],
  ])('is still refused when %s, as the text it is', (_what, text, value, path, type) => {
    expect(problems(text, { X: value }).map((p) => [p.path, p.message])).toEqual([[path, `Invalid input: expected ${type}, received string`]]);
  });

  it('is left as text where the config wants neither (a list, a section): the problem says what came', () => {
    expect(problems('routing: { autoModels: "${X}" }', { X: 'true' }).map((p) => [p.path, p.message])).toEqual([['routing.autoModels', 'Invalid input: expected array, received string']]);
    expect(problems('server: "${X}"', { X: '1' }).map((p) => [p.path, p.message])).toEqual([['server', 'Invalid input: expected object, received string']]);
  });

  it('a number written as text in the file itself is still refused: only a variable is read', () => {
    expect(problems('server: { drainDelayMs: "5000" }').map((p) => [p.path, p.message])).toEqual([['server.drainDelayMs', 'Invalid input: expected number, received string']]);
  });
});

describe('no config, or nothing in it', () => {
  it.each(['', '   \n', '---\n', '# only a comment\n', 'null\n'])('%j is the embedded defaults', (text) => {
    expect(parseConfigText(text, {})).toMatchObject({ ok: true, source: text, config: { tiers: { weak: {}, strong: {} } } });
  });
});

describe('loadConfigFile', () => {
  it('reads a file and names it in its problems; a missing file is a problem naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-load-'));
    try {
      const file = join(dir, 'tiergate.yaml');
      writeFileSync(file, 'tiers: [\n');
      expect(await loadConfigFile(file, {})).toMatchObject({ ok: false, problems: [{ path: file }] });
      writeFileSync(file, 'tiers: { weak: { model: small }, strong: { model: large } }\n');
      expect(await loadConfigFile(file, {})).toMatchObject({ ok: true, config: { tiers: { weak: { model: 'small' } } } });
      const missing = join(dir, 'none.yaml');
      expect(await loadConfigFile(missing, {})).toEqual({ ok: false, problems: [{ path: missing, message: `ENOENT: no such file or directory, open '${missing}'` }] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
