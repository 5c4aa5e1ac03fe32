// Queries shipped beside tiergate (the kgateway PrometheusRule's alerts, the Grafana dashboard's panels) checked
// against Prometheus' own PromQL grammar and against the metrics tiergate really exports: a query on a metric or
// label that does not exist is valid PromQL that silently shows nothing, or an alert that never fires.
import { parser as promql } from '@prometheus-io/lezer-promql';
import { createApp } from '../../src/app.js';
import { captureLogger, runtimeFor } from './tiergate.js';

/** Every tiergate metric's label names. The names do not depend on the config: an app on embedded defaults exports them all. */
export async function tiergateMetricLabels(): Promise<Map<string, Set<string>>> {
  const { log } = captureLogger('silent');
  const app = createApp(runtimeFor({}), log, { ledgerSinks: [] });
  try {
    const metrics = await app.metrics.registry.getMetricsAsJSON();
    return new Map(metrics.map((m) => [m.name, new Set((app.metrics.registry.getSingleMetric(m.name) as unknown as { labelNames: readonly string[] }).labelNames)]));
  } finally {
    await app.shutdown(100);
  }
}

/** The exported metric a series belongs to: a histogram's `_bucket`, `_sum` and `_count` series are its own. */
export function metricOfSeries(name: string, labelsOf: ReadonlyMap<string, ReadonlySet<string>>): string | undefined {
  const part = /_(bucket|sum|count)$/.exec(name);
  const base = part ? name.slice(0, part.index) : undefined;
  return base !== undefined && labelsOf.has(base) ? base : labelsOf.has(name) ? name : undefined;
}

function labelsFor(name: string, labelsOf: ReadonlyMap<string, ReadonlySet<string>>): ReadonlySet<string> | undefined {
  const metric = metricOfSeries(name, labelsOf);
  return metric === undefined ? undefined : labelsOf.get(metric);
}

/** Grafana's built-in range variables, given a duration so that the grammar can read the query. */
const GRAFANA_RANGES = /\$__(rate_interval|interval|range)\b/g;

/** What is wrong with `expr`, each problem naming `where`; empty when it parses and uses only real metrics and labels. */
export function promqlProblems(where: string, expr: string, labelsOf: ReadonlyMap<string, ReadonlySet<string>>): string[] {
  const problems: string[] = [];
  const text = expr.replace(GRAFANA_RANGES, '5m');
  promql.parse(text).iterate({ enter: (n) => void (n.type.isError && problems.push(`${where}: PromQL does not parse at ${n.from}`)) });
  for (const [, name, selector] of text.matchAll(/\b(tiergate_[a-z_]+)(?:\{([^}]*)\})?/g)) {
    const labels = labelsFor(name as string, labelsOf);
    if (!labels) {
      problems.push(`${where}: no metric ${name}`);
      continue;
    }
    for (const [, label] of (selector ?? '').matchAll(/([a-z_]+)\s*[=!~]/g)) if (!labels.has(label as string)) problems.push(`${where}: ${name} has no label ${label}`);
  }
  return problems;
}

/**
 * The labels each aggregation over tiergate's metrics groups by (`sum by (a, b) (...)`), which must exist on those
 * metrics: grouping by a missing one merges every series into one. Aggregations over other metrics (Envoy's) are
 * not judged here.
 */
export function groupingProblems(where: string, expr: string, labelsOf: ReadonlyMap<string, ReadonlySet<string>>): string[] {
  const problems: string[] = [];
  const text = expr.replace(GRAFANA_RANGES, '5m');
  const tree = promql.parse(text);
  tree.iterate({
    enter: (n) => {
      if (n.type.name !== 'AggregateExpr') return;
      const modifier = n.node.getChild('AggregateModifier');
      if (!modifier?.getChild('By')) return;
      const grouped = (modifier.getChild('GroupingLabels')?.getChildren('LabelName') ?? []).map((l) => text.slice(l.from, l.to));
      const metrics: string[] = [];
      const body = n.node.getChild('FunctionCallBody');
      body?.toTree().iterate({ enter: (m) => void (m.type.name === 'Identifier' && metrics.push(text.slice(body.from + m.from, body.from + m.to))) });
      if (metrics.length === 0 || metrics.some((m) => !m.startsWith('tiergate_'))) return;
      const known = new Set(metrics.flatMap((m) => [...(labelsFor(m, labelsOf) ?? [])]));
      if (metrics.some((m) => m.endsWith('_bucket'))) known.add('le');
      for (const label of grouped) if (!known.has(label)) problems.push(`${where}: groups by ${label}, which ${metrics.join(', ')} lack${metrics.length === 1 ? 's' : ''}`);
    },
  });
  return problems;
}
