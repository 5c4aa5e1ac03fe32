// Prometheus metrics: `tiergate_` prefix, base units, low-cardinality labels (tier, rule, phase, outcome —
// never tenant ids or model strings from clients). One registry per app instance so tests stay isolated.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'tiergate_' });
  const m = {
    registry,
    requests: new Counter({
      name: 'tiergate_requests_total',
      help: 'LLM requests by tier and outcome (routed, local_reply, passthrough, error).',
      labelNames: ['tier', 'outcome'] as const,
      registers: [registry],
    }),
    localReplies: new Counter({
      name: 'tiergate_local_replies_total',
      help: 'Local replies sent instead of calling a backend, by HTTP status and error code.',
      labelNames: ['status', 'code'] as const,
      registers: [registry],
    }),
    decisions: new Counter({
      name: 'tiergate_classifier_decisions_total',
      help: 'Classifier decisions by version, rule that fired and tier.',
      labelNames: ['version', 'rule', 'tier'] as const,
      registers: [registry],
    }),
    phaseSeconds: new Histogram({
      name: 'tiergate_extproc_phase_seconds',
      help: 'Time from receiving an ext_proc message to writing its answer, by phase.',
      labelNames: ['phase'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    stageSeconds: new Histogram({
      name: 'tiergate_stage_seconds',
      help: 'Time spent in each request pipeline stage.',
      labelNames: ['stage'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    streams: new Counter({
      name: 'tiergate_extproc_streams_total',
      help: 'ext_proc streams by how they ended (half-closed, cancelled, error).',
      labelNames: ['end'] as const,
      registers: [registry],
    }),
    activeStreams: new Gauge({
      name: 'tiergate_extproc_active_streams',
      help: 'ext_proc streams currently open.',
      registers: [registry],
    }),
    processingErrors: new Counter({
      name: 'tiergate_extproc_processing_errors_total',
      help: 'Unexpected errors while processing a message, by phase and the failure rule applied.',
      labelNames: ['phase', 'rule'] as const,
      registers: [registry],
    }),
    configReloads: new Counter({
      name: 'tiergate_config_reloads_total',
      help: 'Config reload attempts by result (success, failure).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    configInfo: new Gauge({
      name: 'tiergate_config_info',
      help: 'The config in force: 1 for its version hash and active classifier version.',
      labelNames: ['version', 'classifier_version'] as const,
      registers: [registry],
    }),
    configLastReloadSuccess: new Gauge({
      name: 'tiergate_config_last_reload_success',
      help: '1 if the last config reload attempt succeeded, 0 if the last good config is being kept.',
      registers: [registry],
    }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

type Observer = { observe(value: number): void };

/**
 * A histogram's labelled child, bound once per label value: `observe({label}, v)` hashes the labels on every
 * call, which showed up as the largest cost tiergate adds per request (bench/extproc-bench.ts profile).
 */
export function boundObserver<L extends string>(h: Histogram<L>, label: L): (value: string) => Observer {
  const cache = new Map<string, Observer>();
  return (value) => {
    let o = cache.get(value);
    if (!o) {
      o = h.labels({ [label]: value } as Partial<Record<L, string>>);
      cache.set(value, o);
    }
    return o;
  };
}

export function setConfigInfo(m: Metrics, version: string, classifierVersion: string): void {
  m.configInfo.reset();
  m.configInfo.set({ version, classifier_version: classifierVersion }, 1);
}
