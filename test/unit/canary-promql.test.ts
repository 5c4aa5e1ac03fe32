// The canary's health queries (src/canary/prometheus.ts) evaluated by Prometheus' own engine: `promtool test
// rules` (Debian's prometheus package; .ci/run installs it, see havePromtool) over series shaped like the kgateway proxy's Envoy
// stats. The stand-in Prometheus of canary.test.ts answers by query text, so it cannot tell what PromQL does
// with a series that does not exist: Envoy creates a response-class counter on that class's first response,
// and a canary that never failed has no 5xx series.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { healthQueries } from '../../src/canary/prometheus.js';

const CANARY = 'kube_ai-inference_llm-strong-canary_8000';
const STABLE = 'kube_ai-inference_llm-strong_8000';
const q = healthQueries('llm-strong-canary', '5m');

/** A counter that grows by `perMinute` every minute for 20 minutes (promtool's expanding notation). */
const counter = (name: string, labels: Record<string, string>, perMinute: number) => ({
  series: `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`,
  values: `0+${perMinute}x20`,
});
const responses = (cluster: string, codeClass: string, perMinute: number) => counter('envoy_cluster_upstream_rq_xx', { envoy_cluster_name: cluster, envoy_response_code_class: codeClass }, perMinute);
/** Upstream times: half of the requests under 500 ms, all of them under 1 s. */
const times = (cluster: string, perMinute: number) =>
  [
    ['500', perMinute / 2],
    ['1000', perMinute],
    ['+Inf', perMinute],
  ].map(([le, n]) => counter('envoy_cluster_upstream_rq_time_bucket', { envoy_cluster_name: cluster, le: String(le) }, Number(n)));

interface Case {
  name: string;
  series: Array<{ series: string; values: string }>;
  errorRate: number | null;
  p99Ms: number | null;
}

const samples = (v: number | null) => (v === null ? [] : [{ labels: '{}', value: v }]);
/**
 * Only the finite samples of `expr`: what the client reads, as it takes a value that is not a finite number
 * (0/0 when the counters exist but did not move) for no data.
 */
const finite = (expr: string) => `((${expr}) > -Inf) < +Inf`;

/** Runs every case through promtool; what it printed when a case's result differs. */
function promtool(cases: Case[], queries = q): { ok: boolean; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tiergate-promtool-'));
  writeFileSync(join(dir, 'rules.json'), JSON.stringify({ groups: [] }));
  // YAML is a superset of JSON: promtool reads this as its test file.
  const tests = cases.map((c) => ({
    name: c.name,
    interval: '1m',
    input_series: c.series,
    promql_expr_test: [
      { expr: finite(queries.errorRate), eval_time: '10m', exp_samples: samples(c.errorRate) },
      { expr: finite(queries.p99Ms), eval_time: '10m', exp_samples: samples(c.p99Ms) },
    ],
  }));
  writeFileSync(join(dir, 'test.json'), JSON.stringify({ rule_files: ['rules.json'], evaluation_interval: '1m', tests }));
  try {
    return { ok: true, output: execFileSync('promtool', ['test', 'rules', join(dir, 'test.json')], { encoding: 'utf8' }) };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message };
  }
}

/**
 * promtool is a Debian package, not an npm one: on a machine without it these tests are skipped, so that `npm ci &&
 * npm test` holds anywhere; .ci/run installs it and sets TIERGATE_TEST_PROMTOOL=required, so in CI they never are.
 */
const havePromtool = (() => {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const required = process.env.TIERGATE_TEST_PROMTOOL === 'required';

it('promtool is installed where it is required', () => {
  expect(havePromtool || !required, 'TIERGATE_TEST_PROMTOOL=required and no promtool on PATH').toBe(true);
  if (!havePromtool) console.warn('promtool not found: the canary PromQL tests are skipped (apt-get install --no-install-recommends prometheus)');
});

describe.skipIf(!havePromtool)('the canary health queries, in Prometheus', () => {
  // The stable backend fails in every case: none of it may count against the canary (the selector's anchor).
  const stableFailing = [responses(STABLE, '5', 30), ...times(STABLE, 30)];

  it('a canary that never answered a 5xx has a 5xx share of 0, not "no data"; one that fails 10% has 0.1; p99 from its buckets', () => {
    const r = promtool([
      { name: 'only 2xx', series: [responses(CANARY, '2', 60), ...times(CANARY, 60), ...stableFailing], errorRate: 0, p99Ms: 990 },
      { name: '10% 5xx', series: [responses(CANARY, '2', 54), responses(CANARY, '5', 6), ...times(CANARY, 60), ...stableFailing], errorRate: 0.1, p99Ms: 990 },
    ]);
    expect(r.output).toContain('SUCCESS');
    expect(r.ok, r.output).toBe(true);
  });

  it('no traffic gives no sample, so promote and check see no data: no series at all, or counters that did not move', () => {
    const r = promtool([
      { name: 'never served', series: stableFailing, errorRate: null, p99Ms: null },
      { name: 'idle in the window', series: [{ series: `envoy_cluster_upstream_rq_xx{envoy_cluster_name="${CANARY}",envoy_response_code_class="2"}`, values: '5x20' }, ...stableFailing], errorRate: null, p99Ms: null },
    ]);
    expect(r.ok, r.output).toBe(true);
  });

  it('the backend is matched whole: judging a backend named llm-strong counts nothing of llm-strong-canary', () => {
    const canaryFailing = [responses(CANARY, '5', 60), ...times(CANARY, 60)];
    const r = promtool([{ name: 'llm-strong', series: [responses(STABLE, '2', 60), ...times(STABLE, 60), ...canaryFailing], errorRate: 0, p99Ms: 990 }], healthQueries('llm-strong', '5m'));
    expect(r.ok, r.output).toBe(true);
  });

  it('the check itself can fail: a wrong expectation is reported by promtool', () => {
    const r = promtool([{ name: 'wrong on purpose', series: [responses(CANARY, '2', 60), ...times(CANARY, 60)], errorRate: 0.5, p99Ms: 990 }]);
    expect(r.ok).toBe(false);
    expect(r.output).toContain('FAILED');
  });
});
