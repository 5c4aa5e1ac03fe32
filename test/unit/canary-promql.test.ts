// The canary's health queries (src/canary/prometheus.ts) evaluated by Prometheus' own engine (promtool, see
// test/helpers/promtool.ts) over series shaped like the kgateway proxy's Envoy stats. The stand-in Prometheus of
// canary.test.ts answers by query text, so it cannot tell what PromQL does with a series that does not exist:
// Envoy creates a response-class counter on that class's first response, and a canary that never failed has no
// 5xx series.
import { describe, expect, it } from 'vitest';
import { healthQueries } from '../../src/canary/prometheus.js';
import { havePromtool, promtool, promtoolMissingProblem, series, type Series } from '../helpers/promtool.js';

const NS = 'llm-models';
const CANARY = `kube_${NS}_llm-strong-canary_8000`;
const STABLE = `kube_${NS}_llm-strong_8000`;
/** The same Service name in another namespace: a staging copy of the stack, scraped by the same Prometheus. */
const STAGING_CANARY = 'kube_llm-models-staging_llm-strong-canary_8000';

/** A counter growing by `perMinute` every minute for 20 minutes. */
const responses = (cluster: string, codeClass: string, perMinute: number) => series('envoy_cluster_upstream_rq_xx', { envoy_cluster_name: cluster, envoy_response_code_class: codeClass }, `0+${perMinute}x20`);
/** Upstream times: half of the requests under 500 ms, all of them under 1 s. */
const times = (cluster: string, perMinute: number) =>
  (
    [
      ['500', perMinute / 2],
      ['1000', perMinute],
      ['+Inf', perMinute],
    ] as const
  ).map(([le, n]) => series('envoy_cluster_upstream_rq_time_bucket', { envoy_cluster_name: cluster, le }, `0+${n}x20`));

/**
 * Only the finite samples of `expr`: what the client reads, as it takes a value that is not a finite number
 * (0/0 when the counters exist but did not move) for no data.
 */
const finite = (expr: string) => `((${expr}) > -Inf) < +Inf`;
const samples = (v: number | null) => (v === null ? [] : [{ labels: '{}', value: v }]);

/**
 * The queries for `backend` over the series, at minute 10: the 5xx share and the p99 the client would read, and
 * the 4xx share when one is expected (undefined: not checked).
 */
const judged = (name: string, input: Series[], errorRate: number | null, p99Ms: number | null, backend = 'llm-strong-canary', clientErrorRate?: number | null) => {
  const q = healthQueries({ namespace: NS, name: backend }, '5m');
  const exprs = [{ expr: finite(q.errorRate), samples: samples(errorRate) }, { expr: finite(q.p99Ms), samples: samples(p99Ms) }];
  if (clientErrorRate !== undefined) exprs.push({ expr: finite(q.clientErrorRate), samples: samples(clientErrorRate) });
  return { name, series: input, evalTime: '10m', exprs };
};

it('promtool is installed where it is required', () => {
  expect(promtoolMissingProblem()).toBeUndefined();
});

it('refuses a namespace or Service name that is not a DNS label, rather than put it into a regex', () => {
  expect(() => healthQueries({ namespace: 'a"b', name: 'c' }, '5m')).toThrow(/not a Kubernetes namespace or Service name: "a\"b"/);
  expect(() => healthQueries({ namespace: 'ns', name: 'llm.*' }, '5m')).toThrow(/"llm\.\*"/);
});

describe.skipIf(!havePromtool)('the canary health queries, in Prometheus', () => {
  // The stable backend fails in every case: none of it may count against the canary (the selector's anchor).
  const stableFailing = [responses(STABLE, '5', 30), ...times(STABLE, 30)];

  it('a canary that never answered a 5xx has a 5xx share of 0, not "no data"; one that fails 10% has 0.1; p99 from its buckets', () => {
    const r = promtool([
      judged('only 2xx', [responses(CANARY, '2', 60), ...times(CANARY, 60), ...stableFailing], 0, 990),
      judged('10% 5xx', [responses(CANARY, '2', 54), responses(CANARY, '5', 6), ...times(CANARY, 60), ...stableFailing], 0.1, 990),
    ]);
    expect(r.output).toContain('SUCCESS');
    expect(r.ok, r.output).toBe(true);
  });

  it('no traffic gives no sample, so promote and check see no data: no series at all, or counters that did not move', () => {
    const idle = series('envoy_cluster_upstream_rq_xx', { envoy_cluster_name: CANARY, envoy_response_code_class: '2' }, '5x20');
    const r = promtool([judged('never served', stableFailing, null, null), judged('idle in the window', [idle, ...stableFailing], null, null)]);
    expect(r.ok, r.output).toBe(true);
  });

  // Envoy charges a reset, refused or timed-out request to the cluster as a 5xx, but records its upstream time
  // only for a response that completed: a canary that answers nothing has a share of 1 and no p99. The client
  // judges each on its own, so the share alone rolls it back (canary.test.ts).
  it('a canary that answers nothing: a 5xx share of 1 and no p99, whether its time histogram never existed or stopped moving', () => {
    const stalled = times(CANARY, 0);
    const r = promtool([
      judged('every request reset, never a response', [responses(CANARY, '5', 60), ...stableFailing], 1, null),
      judged('time buckets present, none moving', [responses(CANARY, '5', 60), ...stalled, ...stableFailing], 1, null),
    ]);
    expect(r.ok, r.output).toBe(true);
  });

  it('the 4xx share: 0 with no 4xx series (a class Envoy has not seen), 0.1 for 404s on a tenth, none without traffic', () => {
    const r = promtool([
      judged('only 2xx', [responses(CANARY, '2', 60), ...times(CANARY, 60), ...stableFailing], 0, 990, 'llm-strong-canary', 0),
      judged('10% 404', [responses(CANARY, '2', 54), responses(CANARY, '4', 6), ...times(CANARY, 60), ...stableFailing], 0, 990, 'llm-strong-canary', 0.1),
      // The stable's, as the canary's is held to it: its 5xx do not count as 4xx.
      judged('the stable, 2xx and 5xx', [responses(STABLE, '2', 30), ...stableFailing], 0.5, 990, 'llm-strong', 0),
      judged('never served', stableFailing, null, null, 'llm-strong-canary', null),
    ]);
    expect(r.ok, r.output).toBe(true);
  });

  it('the backend is matched whole: judging a backend named llm-strong counts nothing of llm-strong-canary', () => {
    const canaryFailing = [responses(CANARY, '5', 60), ...times(CANARY, 60)];
    const r = promtool([judged('llm-strong', [responses(STABLE, '2', 60), ...times(STABLE, 60), ...canaryFailing], 0, 990, 'llm-strong')]);
    expect(r.ok, r.output).toBe(true);
  });

  it('the namespace is matched whole too: the same canary name in another namespace counts for nothing', () => {
    const stagingFailing = [responses(STAGING_CANARY, '5', 600), ...times(STAGING_CANARY, 600)];
    const r = promtool([
      judged('staging failing beside a healthy canary', [responses(CANARY, '2', 60), ...times(CANARY, 60), ...stagingFailing], 0, 990),
      judged('only staging has traffic', stagingFailing, null, null),
    ]);
    expect(r.ok, r.output).toBe(true);
  });

  it('the check itself can fail: a wrong expectation is reported by promtool', () => {
    const r = promtool([judged('wrong on purpose', [responses(CANARY, '2', 60), ...times(CANARY, 60)], 0.5, 990)]);
    expect(r.ok).toBe(false);
    expect(r.output).toContain('FAILED');
  });
});
