// Prometheus' own PromQL engine for tests: `promtool test rules` (Debian's prometheus package, installed by
// .ci/run without its recommends) evaluates expressions over series written in its expanding notation. The
// stand-ins answer by query text, so only this can tell what PromQL does with a series that does not exist yet.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * promtool is a Debian package, not an npm one: on a machine without it the tests that need it are skipped, so
 * that `npm ci && npm test` holds anywhere; .ci/run installs it and sets TIERGATE_TEST_PROMTOOL=required, under
 * which a missing promtool fails the run (promtoolMissingProblem).
 */
export const havePromtool = (() => {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Why the run must fail for want of promtool, or undefined (it is there, or not required). */
export function promtoolMissingProblem(): string | undefined {
  if (havePromtool) return undefined;
  if (process.env.TIERGATE_TEST_PROMTOOL === 'required') return 'TIERGATE_TEST_PROMTOOL=required and no promtool on PATH';
  console.warn('promtool not found: the PromQL tests are skipped (apt-get install --no-install-recommends prometheus)');
  return undefined;
}

export interface Series {
  series: string;
  values: string;
}

/** A series named with its labels, as promtool's input_series take it. */
export function series(name: string, labels: Record<string, string>, values: string): Series {
  return { series: `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')}}`, values };
}

export interface ExprCase {
  name: string;
  series: Series[];
  /** Each expression with the samples it must give at eval_time (an empty list: none). */
  exprs: Array<{ expr: string; samples: Array<{ labels: string; value: number }> }>;
  evalTime: string;
}

/** Runs the cases through `promtool test rules` (one-minute steps); ok, and what promtool printed. */
export function promtool(cases: ExprCase[]): { ok: boolean; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tiergate-promtool-'));
  writeFileSync(join(dir, 'rules.json'), JSON.stringify({ groups: [] }));
  // YAML is a superset of JSON: promtool reads this as its test file.
  const tests = cases.map((c) => ({
    name: c.name,
    interval: '1m',
    input_series: c.series,
    promql_expr_test: c.exprs.map((e) => ({ expr: e.expr, eval_time: c.evalTime, exp_samples: e.samples })),
  }));
  writeFileSync(join(dir, 'test.json'), JSON.stringify({ rule_files: ['rules.json'], evaluation_interval: '1m', tests }));
  try {
    // stderr piped, not passed through: a failing case's report belongs in the assertion, not in the run's log.
    return { ok: true, output: execFileSync('promtool', ['test', 'rules', join(dir, 'test.json')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message };
  }
}
