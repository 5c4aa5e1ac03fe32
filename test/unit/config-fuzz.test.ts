// Generated config damage: every shipped config (the examples, envoy/tiergate.yaml, the kgateway ConfigMap's)
// with one part of it replaced by any JSON value, deleted, or joined by an unknown key, and some of them as
// broken YAML. `tiergate config check` and hot reload compile such files; a bad one must come back as a list of
// problems, each with a path and a message, never as an exception (which would crash the check, or end a reload
// without the config.rejected event and metric). fast-check shrinks a failure to the smallest such change.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { compileConfigText } from '../../src/config/runtime.js';
import { kustomizeBuild, manifestsDir } from '../helpers/kustomize.js';
import { fuzzRuns } from '../helpers/generated.js';

const file = (path: string) => readFileSync(fileURLToPath(new URL(`../../${path}`, import.meta.url)), 'utf8');
const configMap = kustomizeBuild(manifestsDir('overlays/production')).find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'tiergate-config') as unknown as { data: Record<string, string> };
const SHIPPED: Record<string, string> = {
  'examples/tiergate.yaml': file('examples/tiergate.yaml'),
  'examples/tenants.yaml': file('examples/tenants.yaml'),
  'examples/classifier-tuning.yaml': file('examples/classifier-tuning.yaml'),
  'envoy/tiergate.yaml': file('envoy/tiergate.yaml'),
  // Its platform key's digest is a mounted Secret file; inline here, the rest as shipped.
  'kgateway ConfigMap': (Object.values(configMap.data)[0] as string).replace(/sha256File: \S+,/, `sha256: ${'c'.repeat(64)},`),
};
// What the shipped configs read from the environment, so that they compile as they are.
const ENV = { OPENAI_API_KEY: 'sk-test', REDIS_URL: 'redis://127.0.0.1:6379', LEDGER_USER_HASH_KEY: 'a-key-of-16-chars-or-more' };

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path to a value in the tree (object keys and array indexes), the root excluded. */
function paths(v: Json, at: Array<string | number> = []): Array<Array<string | number>> {
  if (v === null || typeof v !== 'object') return [];
  const entries: Array<[string | number, Json]> = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
  return entries.flatMap(([k, x]) => [[...at, k], ...paths(x, [...at, k])]);
}

type Damage = { kind: 'replace'; value: Json } | { kind: 'delete' } | { kind: 'add'; key: string; value: Json };

function damage(tree: Json, path: Array<string | number>, d: Damage): Json {
  const copy = structuredClone(tree) as Record<string | number, Json>;
  let parent = copy as Record<string | number, Json>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, Json>;
  const last = path.at(-1) as string | number;
  if (d.kind === 'replace') parent[last] = d.value;
  else if (d.kind === 'delete') {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  } else {
    const target = parent[last];
    if (target !== null && typeof target === 'object' && !Array.isArray(target)) target[d.key] = d.value;
    else parent[last] = { [d.key]: d.value };
  }
  return copy;
}

const value: fc.Arbitrary<Json> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
  fc.constantFrom<Json>(-1, 0, 1.5, 1e308, '', 'x', '${UNSET_VAR}', '${OPENAI_API_KEY}', [], {}, null, true, 'weak', 'strong', '*', 'v7', '/v1/chat/completions'),
);
const damageArb: fc.Arbitrary<Damage> = fc.oneof(
  value.map((v): Damage => ({ kind: 'replace', value: v })),
  fc.constant<Damage>({ kind: 'delete' }),
  fc.tuple(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'weak', 'strong', 'redis')), value).map(([key, v]): Damage => ({ kind: 'add', key, value: v })),
);

describe('generated config damage (fast-check)', () => {
  it.each(Object.keys(SHIPPED))('%s compiles as shipped', (name) => {
    expect(compileConfigText(SHIPPED[name] as string, ENV, name)).toMatchObject({ ok: true });
  });

  it('any one change to any shipped config: compiled, or a list of problems each with a path and a message; never an exception', () => {
    const trees = Object.fromEntries(Object.entries(SHIPPED).map(([k, text]) => [k, parseYaml(text) as Json]));
    const arb = fc.constantFrom(...Object.keys(trees)).chain((name) =>
      fc.record({ name: fc.constant(name), path: fc.constantFrom(...paths(trees[name] as Json)), damage: damageArb, asJson: fc.boolean() }),
    );
    let rejected = 0;
    fc.assert(
      fc.property(arb, ({ name, path, damage: d, asJson }) => {
        const tree = damage(trees[name] as Json, path, d);
        const text = asJson ? JSON.stringify(tree) : toYaml(tree);
        const r = compileConfigText(text, ENV, name);
        if (r.ok) return;
        rejected++;
        expect(r.problems.length).toBeGreaterThan(0);
        for (const p of r.problems) {
          expect(typeof p.path).toBe('string');
          expect(typeof p.message).toBe('string');
          expect(p.message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: fuzzRuns(1000) },
    );
    // Most single changes break something: the property is about how, so it must see many of them.
    expect(rejected).toBeGreaterThan(100);
  }, 300_000);

  it('broken YAML and text that is not a config at all: problems, never an exception', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.constantFrom(...Object.values(SHIPPED)).chain((t) => fc.nat({ max: t.length }).map((n) => t.slice(0, n))),
          fc.string(),
          // A YAML alias inside its own anchor was a stack overflow out of the check; now a problem.
          fc.constantFrom('', '---', '[]', '42', 'null', 'tiers: [', 'a: &x [*x]', 'tiers: &t { weak: *t }', 'x: !!binary ZZZ', '{"tiers": 1}', `a: ${'['.repeat(100)}${']'.repeat(100)}`),
        ),
        (text) => {
          const r = compileConfigText(text, ENV, 'generated.yaml');
          if (!r.ok) expect(r.problems.every((p) => typeof p.path === 'string' && typeof p.message === 'string')).toBe(true);
        },
      ),
      { numRuns: fuzzRuns(500) },
    );
  });
});

describe('configs that contain themselves', () => {
  it.each(['a: &x [*x]', 'tiers: &t { weak: *t }'])('%s: one problem naming it, not a stack overflow', (text) => {
    expect(compileConfigText(text, ENV, 'self.yaml')).toEqual({ ok: false, problems: [{ path: 'self.yaml', message: 'nested more than 64 levels deep, or a YAML alias used inside its own anchor' }] });
  });
});

describe('a YAML syntax error', () => {
  it('is one problem, the first the parser found, with how many followed from it; an unquoted ${VAR} in { } says to quote it', () => {
    const r = compileConfigText('tiers: { weak: { model: ${WEAK} }, strong: { model: s } }\n', ENV, 'flow.yaml');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]?.path).toBe('flow.yaml');
    expect(r.problems[0]?.message).toMatch(/^Unexpected flow-map-start at node end at line 1, column 26:\n[\s\S]*\n\(an \$\{VAR\} inside \{ \} or \[ \] must be quoted: "\$\{VAR\}"\)\n\(\d+ more syntax errors after it, most often caused by this one\)$/);
    // Quoted, it is a config; in block style it needs no quotes.
    expect(compileConfigText('tiers: { weak: { model: "${WEAK}" }, strong: { model: s } }\n', { ...ENV, WEAK: 'w' }, 'flow.yaml').ok).toBe(true);
    expect(compileConfigText('tiers:\n  weak: { model: "${WEAK}" }\n  strong:\n    model: ${WEAK}\n', { ...ENV, WEAK: 'w' }, 'block.yaml').ok).toBe(true);
    // A lone error carries neither note.
    const lone = compileConfigText('tiers: [\n', ENV, 'open.yaml');
    expect(lone.ok ? [] : lone.problems.map((p) => /more syntax error|must be quoted/.test(p.message))).toEqual([false]);
  });
});

describe('what the YAML parser only warns about', () => {
  it('an unknown tag is a problem, not a Node warning on stderr and a config that means something else', () => {
    const r = compileConfigText('logging: { level: !debug info }\n', ENV, 'tagged.yaml');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems[0]?.message).toMatch(/^Unresolved tag: !debug/);
  });
});
