// The shipped alerts that fire on `increase(counter[…]) > 0`, evaluated by Prometheus' own engine (promtool, see
// test/helpers/promtool.ts) over the series tiergate really exports. Prometheus takes no increase from a series'
// first sample, and prom-client exports a labelled counter only once a label set is counted: without a start at
// 0 (startAtZero in src/telemetry/start-at-zero.ts) the series appeared at its first event already counted, and that
// event (rows logged instead of stored, an unpriced model, a processing error) never raised its alert.
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { kustomizeBuild, manifestsDir } from '../helpers/kustomize.js';
import { havePromtool, promtool, promtoolMissingProblem, type ExprCase } from '../helpers/promtool.js';
import { captureLogger, runtimeFor } from '../helpers/tiergate.js';

/** Each such alert and the counter it watches. */
const WATCHED = {
  TiergateUnpricedRequests: 'tiergate_unpriced_requests_total',
  TiergateLedgerRowsOnlyInLog: 'tiergate_ledger_rows_total',
  TiergateProcessingErrors: 'tiergate_extproc_processing_errors_total',
  TiergateStageSkipped: 'tiergate_stage_skipped_total',
  TiergateBodyNotSent: 'tiergate_body_not_sent_total',
  TiergateFilterModeRefused: 'tiergate_filter_mode_refused_total',
  TiergateResponseHeadersNotSent: 'tiergate_response_headers_not_sent_total',
} as const;

const rules = (kustomizeBuild(manifestsDir('base')).find((o) => o.kind === 'PrometheusRule') as unknown as { spec: { groups: Array<{ rules: Array<{ alert?: string; expr: string }> }> } }).spec.groups.flatMap((g) => g.rules);
const exprOf = (alert: string) => rules.find((r) => r.alert === alert)?.expr as string;

/** The series of `metric` in a scrape of a tiergate just started on embedded defaults: name{labels} and value. */
async function startupSeries(): Promise<Map<string, Array<[string, number]>>> {
  const { log } = captureLogger('silent');
  const app = createApp(runtimeFor({}), log, {});
  try {
    const text = await app.metrics.registry.metrics();
    const out = new Map<string, Array<[string, number]>>();
    for (const metric of Object.values(WATCHED)) {
      out.set(
        metric,
        text
          .split('\n')
          .filter((l) => l.startsWith(`${metric}{`) || l.startsWith(`${metric} `))
          .map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))] as [string, number]),
      );
    }
    return out;
  } finally {
    await app.shutdown(100);
  }
}

it('promtool is installed where it is required', () => {
  expect(promtoolMissingProblem()).toBeUndefined();
});

describe('the counters the increase() alerts watch', () => {
  it('are exported at 0 from startup, for every label set the alert can see', async () => {
    const series = await startupSeries();
    for (const [alert, metric] of Object.entries(WATCHED)) {
      expect(exprOf(alert), alert).toContain(metric);
      const found = series.get(metric) ?? [];
      expect(found.length, `${metric} at startup`).toBeGreaterThan(0);
      for (const [name, value] of found) expect(value, name).toBe(0);
    }
    expect((series.get('tiergate_ledger_rows_total') ?? []).map(([n]) => n)).toEqual(['tiergate_ledger_rows_total{sink="file",result="unsaved"}']);
    expect((series.get('tiergate_unpriced_requests_total') ?? []).map(([n]) => n).sort()).toEqual(['tiergate_unpriced_requests_total{reason="price"}', 'tiergate_unpriced_requests_total{reason="unmeasured"}']);
    expect((series.get('tiergate_stage_skipped_total') ?? []).map(([n]) => n)).toEqual(['tiergate_stage_skipped_total{stage="cache"}']);
    expect((series.get('tiergate_body_not_sent_total') ?? []).map(([n]) => n).sort()).toEqual([
      'tiergate_body_not_sent_total{body="request",answer="passed"}',
      'tiergate_body_not_sent_total{body="request",answer="refused"}',
      'tiergate_body_not_sent_total{body="response",answer="unmeasured"}',
    ]);
    expect((series.get('tiergate_filter_mode_refused_total') ?? []).map(([n]) => n).sort()).toEqual([
      'tiergate_filter_mode_refused_total{mode="request_body_streamed"}',
      'tiergate_filter_mode_refused_total{mode="request_headers_skipped"}',
    ]);
    // Without labels, the one series is there from the start.
    expect((series.get('tiergate_response_headers_not_sent_total') ?? []).map(([n]) => n)).toEqual(['tiergate_response_headers_not_sent_total']);
    // Every phase the transport reports, under either failure rule.
    expect(series.get('tiergate_extproc_processing_errors_total')).toHaveLength(7 * 2);
  });

  it.skipIf(!havePromtool)('make each alert fire on the first event after startup; a series that appears at its first event would not', async () => {
    const series = await startupSeries();
    const cases: ExprCase[] = [];
    for (const [alert, metric] of Object.entries(WATCHED)) {
      const [first, ...rest] = (series.get(metric) ?? []).map(([name]) => name);
      const quiet = rest.map((name) => ({ series: name, values: '0x20' }));
      // One event (a single count) at minute 6, judged at minute 10.
      const fires = { expr: `count(${exprOf(alert)})`, samples: [{ labels: '{}', value: 1 }] };
      cases.push({ name: `${alert}: exported from startup`, evalTime: '10m', series: [{ series: first as string, values: '0x5 1x14' }, ...quiet], exprs: [fires] });
      cases.push({ name: `${alert}: appearing at its first event`, evalTime: '10m', series: [{ series: first as string, values: '_x5 1x14' }, ...quiet], exprs: [{ ...fires, samples: [] }] });
    }
    const r = promtool(cases);
    expect(r.ok, r.output).toBe(true);
  });
});
