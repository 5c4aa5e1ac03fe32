// Prometheus metrics: `tiergate_` prefix, base units, low-cardinality labels (tier, rule, phase, outcome —
// never tenant ids or model strings from clients). One registry per app instance so tests stay isolated.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { FastHistogram } from './fast-histogram.js';
import { TalliedCounter } from './tallied-counter.js';
import type { EmbedderLoad } from '../cache/embedders/embedder.js';
import { BUILD } from '../version.js';

// From 10 µs: most answers take tens of microseconds, and Envoy's default message timeout is 200 ms.
export const LATENCY_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  let backlogSource: () => ReadonlyArray<{ sink: string; queued: number; spooled: number }> = () => [];
  let embedderSource: () => EmbedderLoad | undefined = () => undefined;
  let openStreams = 0;
  let keyExpirySource: () => ReadonlyArray<{ id: string; expiresAt: number | undefined }> = () => [];
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'tiergate_' });
  const m = {
    registry,
    requests: new TalliedCounter({
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
    decisions: new TalliedCounter({
      name: 'tiergate_classifier_decisions_total',
      help: 'Classifier decisions by version, rule that fired and tier.',
      labelNames: ['version', 'rule', 'tier'] as const,
      registers: [registry],
    }),
    shadowDecisions: new Counter({
      name: 'tiergate_classifier_shadow_decisions_total',
      help: 'Shadow classifier decisions beside the deciding version: agree or disagree, with both tiers (each direction of disagreement).',
      labelNames: ['version', 'shadow_version', 'tier', 'shadow_tier', 'agreement'] as const,
      registers: [registry],
    }),
    // Observed several times per request: see fast-histogram.ts for why these are not prom-client Histograms.
    phaseSeconds: new FastHistogram(
      'tiergate_extproc_phase_seconds',
      'Time from receiving an ext_proc message to writing its answer, by phase.',
      'phase',
      LATENCY_BUCKETS,
      registry,
    ),
    stageSeconds: new FastHistogram('tiergate_stage_seconds', 'Time spent in each request pipeline stage.', 'stage', LATENCY_BUCKETS, registry),
    streams: new TalliedCounter({
      name: 'tiergate_extproc_streams_total',
      help: 'ext_proc streams by how they ended (half-closed, cancelled, error, detached: handed back to Envoy at a shutdown).',
      labelNames: ['end'] as const,
      registers: [registry],
    }),
    activeStreams: new Gauge({
      name: 'tiergate_extproc_active_streams',
      help: 'ext_proc streams currently open.',
      registers: [registry],
      // Counted in a plain number (streamOpened/streamClosed) and read at scrape time, not set per stream.
      collect() {
        this.set(openStreams);
      },
    }),
    streamOpened() {
      openStreams++;
    },
    streamClosed() {
      openStreams--;
    },
    bodyNotSent: new Counter({
      name: 'tiergate_body_not_sent_total',
      help: 'LLM requests whose request or response body Envoy never sent tiergate (ext_proc body mode NONE): a request refused (Envoy said so in protocol_config) or passed (an Envoy before 1.34, seen only at the answer); a response whose usage went unmeasured.',
      labelNames: ['body', 'answer'] as const,
      registers: [registry],
    }),
    filterModeRefused: new Counter({
      name: 'tiergate_filter_mode_refused_total',
      help: 'Requests refused with a 500 because of how the Envoy ext_proc filter sends them: request_headers_skipped (request_header_mode SKIP: the body came without its headers), request_body_streamed (an LLM request with request_body_mode STREAMED: its route is chosen before its body comes).',
      labelNames: ['mode'] as const,
      registers: [registry],
    }),
    responseHeadersNotSent: new Counter({
      name: 'tiergate_response_headers_not_sent_total',
      help: "LLM answers whose body Envoy sent tiergate without their headers (ext_proc response_header_mode SKIP): usage is read from the body, but the answer's status is unknown and the client gets none of tiergate's response headers.",
      registers: [registry],
    }),
    processingErrors: new Counter({
      name: 'tiergate_extproc_processing_errors_total',
      help: 'Unexpected errors while processing a message, by phase and the failure rule applied.',
      labelNames: ['phase', 'rule'] as const,
      registers: [registry],
    }),
    tokens: new TalliedCounter({
      name: 'tiergate_tokens_total',
      help: 'Tokens by tier and kind (input, output, cached_input, reasoning, audio_input, audio_output, image_input, image_output), reported or estimated.',
      labelNames: ['tier', 'kind'] as const,
      registers: [registry],
    }),
    costUsd: new TalliedCounter({
      name: 'tiergate_cost_usd_total',
      help: 'Cost in USD by tier, from the price table.',
      labelNames: ['tier'] as const,
      registers: [registry],
    }),
    usageRows: new TalliedCounter({
      name: 'tiergate_usage_total',
      help: 'Requests by where their usage came from (reported, estimated, none).',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    unpriced: new Counter({
      name: 'tiergate_unpriced_requests_total',
      help: 'Requests recorded without a price (cost_usd null), by reason: price (a model the price table lacks, or cannot price for what it used) or unmeasured (usage nobody measured).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    ledgerRows: new Counter({
      name: 'tiergate_ledger_rows_total',
      help: 'Ledger rows per sink: written live, spooled to disk while the sink was failing, replayed from the spool, or unsaved (logged for `tiergate ledger import`: at shutdown with the sink and the spool disk both failing, or past ledger.spoolMaxBytes).',
      labelNames: ['sink', 'result'] as const,
      registers: [registry],
    }),
    ledgerSinkErrors: new Counter({
      name: 'tiergate_ledger_sink_errors_total',
      help: 'Failed ledger writes per sink (a "-spool" suffix: the local spool file failed).',
      labelNames: ['sink'] as const,
      registers: [registry],
    }),
    ledgerBacklog: new Gauge({
      name: 'tiergate_ledger_backlog_rows',
      help: 'Ledger rows not yet stored by a sink, in memory (queue) or on disk (spool).',
      labelNames: ['sink', 'where'] as const,
      registers: [registry],
      // Read at scrape time, not set per row.
      collect() {
        for (const b of backlogSource()) {
          this.set({ sink: b.sink, where: 'queue' }, b.queued);
          this.set({ sink: b.sink, where: 'spool' }, b.spooled);
        }
      },
    }),
    ledgerBuildErrors: new Counter({
      name: 'tiergate_ledger_build_errors_total',
      help: 'Ledger rows that could not be built (a bug: the request is logged instead).',
      registers: [registry],
    }),
    fallbacks: new Counter({
      name: 'tiergate_fallback_total',
      help: 'Requests answered by another tier than the one tiergate routed them to (Envoy fallback), by routed tier.',
      labelNames: ['tier'] as const,
      registers: [registry],
    }),
    budgetDecisions: new Counter({
      name: 'tiergate_budget_decisions_total',
      help: 'Admission decisions by result (admitted, denied) and, when denied, the limit that tripped.',
      labelNames: ['result', 'code'] as const,
      registers: [registry],
    }),
    budgetWarnings: new Counter({
      name: 'tiergate_budget_warnings_total',
      help: 'Tenants that crossed the daily-budget warning share (once per tenant per day).',
      registers: [registry],
    }),
    budgetLateAdmissions: new Counter({
      name: 'tiergate_budget_late_admissions_total',
      help: 'Admissions that completed after their stream had ended (Envoy stopped waiting, or the client left); their reservations were released at once.',
      registers: [registry],
    }),
    budgetStoreFailures: new Counter({
      name: 'tiergate_budget_store_failures_total',
      help: 'Budget store operations that failed or timed out, by operation (admit, reconcile).',
      labelNames: ['op'] as const,
      registers: [registry],
    }),
    budgetStoreDegraded: new Gauge({
      name: 'tiergate_budget_store_degraded',
      help: '1 while the budget store is unreachable and the failure rule (open or closed) applies.',
      registers: [registry],
    }),
    stageSkipped: new Counter({
      name: 'tiergate_stage_skipped_total',
      help: 'Unexpected errors in an optional request stage (the cache lookup), which the request went on without.',
      labelNames: ['stage'] as const,
      registers: [registry],
    }),
    cacheLookups: new Counter({
      name: 'tiergate_cache_lookups_total',
      help: 'Response cache lookups by kind (exact, semantic), result (hit, miss, bypass) and reason.',
      labelNames: ['kind', 'result', 'reason'] as const,
      registers: [registry],
    }),
    cacheWrites: new Counter({
      name: 'tiergate_cache_writes_total',
      help: 'Answers offered to the response cache, by result (stored, failed, not_storable).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    cacheEvictions: new Counter({
      name: 'tiergate_cache_evictions_total',
      help: "Entries removed from the response cache to make room for another, by kind: exact (answers: the memory store's bounds, the Redis store's cache.redis.maxEntriesPerTenant) and semantic (the vector index's: maxEntriesPerPartition, and the total or per-tenant bound). A steady rate means the cache holds less than its TTLs would keep.",
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    cacheStoreDegraded: new Gauge({
      name: 'tiergate_cache_store_degraded',
      help: '1 while the cache store (part="exact") or the embedder and vector index (part="semantic") fail: lookups are bypassed and requests go upstream.',
      labelNames: ['part'] as const,
      registers: [registry],
    }),
    responseAffinity: new Counter({
      name: 'tiergate_response_affinity_total',
      help: 'Response affinity: lookups (hit, miss, failed, deadline) and writes (stored, failed, deadline) of the tier a stored Responses API response is on, who stored it, and what its conversation came to.',
      labelNames: ['op', 'result'] as const,
      registers: [registry],
    }),
    affinityStoreDegraded: new Gauge({
      name: 'tiergate_affinity_store_degraded',
      help: '1 while the response affinity store fails: stateful Responses API turns go to routing.statefulTier.',
      registers: [registry],
    }),
    redisEvictionRisk: new Gauge({
      name: 'tiergate_redis_eviction_risk',
      help: "1 while a store's Redis has a maxmemory-policy that can evict what the store must keep (budget windows, affinity, the ledger stream); checked at each connect.",
      labelNames: ['store'] as const,
      registers: [registry],
    }),
    aclDecisions: new Counter({
      name: 'tiergate_acl_decisions_total',
      help: 'Model ACL outcomes other than allowed: downgraded or refused.',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    configReloads: new Counter({
      name: 'tiergate_config_reloads_total',
      help: 'Config reload attempts by result (success, failure).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    buildInfo: new Gauge({
      name: 'tiergate_build_info',
      help: 'The build this process runs: 1 for its tiergate version and Node version.',
      labelNames: ['version', 'node_version'] as const,
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
    configRestartRequired: new Gauge({
      name: 'tiergate_config_restart_required',
      help: '1 for each restart-only setting the config in force changed from the value this process started with (it applies at the next restart).',
      labelNames: ['setting'] as const,
      registers: [registry],
    }),
    embedderLoad: new Gauge({
      name: 'tiergate_embedder_calls',
      help: "The semantic cache's embedder: calls allowed at a time now (limit; the openai embedder's adapts to its endpoint), under way (in_flight), and questions waiting (waiting).",
      labelNames: ['what'] as const,
      registers: [registry],
      // Read at scrape time; absent until the semantic cache is first used.
      collect() {
        const l = embedderSource();
        if (l === undefined) return;
        this.set({ what: 'limit' }, l.limit);
        this.set({ what: 'in_flight' }, l.inFlight);
        this.set({ what: 'waiting' }, l.waiting);
      },
    }),
    apiKeyExpiry: new Gauge({
      name: 'tiergate_api_key_expiry_timestamp_seconds',
      help: 'When each gateway key with an expiry (auth.keys[].expiresAt) stops working, in Unix seconds, by key id (the earliest of keys sharing one): alert on it minus time().',
      labelNames: ['key'] as const,
      registers: [registry],
      // Read from the config in force at scrape time: a reload that adds, rotates or removes a key shows at once.
      collect() {
        this.reset();
        const earliest = new Map<string, number>();
        for (const k of keyExpirySource()) if (k.expiresAt !== undefined) earliest.set(k.id, Math.min(k.expiresAt, earliest.get(k.id) ?? Infinity));
        for (const [key, at] of earliest) this.set({ key }, at / 1000);
      },
    }),
    /** Where tiergate_api_key_expiry_timestamp_seconds reads from at scrape time. */
    setKeyExpirySource(source: typeof keyExpirySource) {
      keyExpirySource = source;
    },
    /** Where tiergate_embedder_calls reads from at scrape time. */
    setEmbedderSource(source: typeof embedderSource) {
      embedderSource = source;
    },
    /** Where tiergate_ledger_backlog_rows reads from at scrape time. */
    setBacklogSource(source: typeof backlogSource) {
      backlogSource = source;
    },
  };
  // Which pods run which build, during a rollout of tiergate itself (the dashboard's "Config in force").
  m.buildInfo.set(BUILD, 1);
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

export function setConfigInfo(m: Metrics, version: string, classifierVersion: string): void {
  m.configInfo.reset();
  m.configInfo.set({ version, classifier_version: classifierVersion }, 1);
}
