// Assembles tiergate from a runtime: stores, pipeline, ext_proc server, admin server. No env reads and no
// listening here (main.ts does both), so tests build as many isolated instances as they like.
import { createAdminServer, type AdminServer } from './admin-server.js';
import { ConfigStore, type ReloadListener } from './config/config-store.js';
import { vetRegexes } from './classify/regex-safety.js';
import { restartOnlyChanges, type RestartOnlySetting } from './config/restart-only.js';
import type { Runtime } from './config/runtime.js';
import { TiergateError } from './errors.js';
import { createExtProcServer, type ExtProcServer } from './extproc/server.js';
import type { StreamHandlerFactory } from './extproc/types.js';
import { Ledger, type LedgerHooks } from './ledger/ledger.js';
import { createSettle } from './ledger/settle.js';
import type { LedgerSink } from './ledger/sink.js';
import { logLineRows } from './ledger/import.js';
import type { RequestRecord } from './ledger/build-row.js';
import { createSinks } from './ledger/sinks.js';
import { replyFor } from './pipeline/header-rules.js';
import { LlmStream, type StreamDeps } from './pipeline/llm-stream.js';
import { ResponseCache } from './cache/response-cache.js';
import { createCacheLookupStage, type SemanticSource } from './stages/cache-lookup.js';
import { createSemanticCache, usesSemantic } from './cache/create-semantic-cache.js';
import type { SemanticCache } from './cache/semantic-cache.js';
import { answerStore, type StoreAnswer } from './cache/store-answer.js';
import type { Embedder } from './cache/embedders/embedder.js';
import { createCacheStore } from './stores/create-cache-store.js';
import { whenReady } from './stores/redis/when-ready.js';
import { watchEviction, type EvictionRisk, type MustKeep } from './stores/redis/eviction-check.js';
import { cacheSharesRedis } from './config/redis-sharing.js';
import { loadNotes } from './config/notes.js';
import { RedisStreamSink } from './ledger/redis-stream-sink.js';
import type { Cluster, Redis } from 'ioredis';
import { redisOf } from './stores/store-guard.js';
import type { Stage } from './pipeline/stage.js';
import { createClassifyStage } from './stages/classify.js';
import { ResponseAffinity, createAffinityStore } from './affinity/response-affinity.js';
import { parseStage } from './stages/parse.js';
import { routeStage } from './stages/route.js';
import { createBudgetStage } from './stages/budget.js';
import { tenantReach } from './stages/authenticate.js';
import { createPolicyStage } from './stages/policy.js';
import { Budgets } from './budget/budgets.js';
import { createBudgetStore } from './stores/create-budget-store.js';
import type { Logger } from './telemetry/logger.js';
import { createMetrics, setConfigInfo, type Metrics } from './telemetry/metrics.js';
import { startAtZero } from './telemetry/start-at-zero.js';
import { FAILURE_LOG_INTERVAL_MS, ThrottledWarnings } from './telemetry/throttled-log.js';
import { REQUEST_KINDS } from './extproc/wire.js';
import { FAILURE_RULES } from './extproc/types.js';

/**
 * The one request pipeline (architecture.md §2). Authentication already ran on the request headers, so
 * the body is parsed, classified, checked against the tenant's ACL and limits, then routed.
 */
export function requestStages(metrics: Metrics, budgets: Budgets, cache: ResponseCache, semantic: SemanticSource, affinity: ResponseAffinity): Stage[] {
  return [parseStage, createClassifyStage(affinity), createPolicyStage(metrics), createCacheLookupStage(cache, semantic, metrics), createBudgetStage(budgets, affinity), routeStage];
}

export interface App {
  config: ConfigStore;
  metrics: Metrics;
  extproc: ExtProcServer;
  admin: AdminServer;
  ledger: Ledger;
  budgets: Budgets;
  cache: ResponseCache;
  affinity: ResponseAffinity;
  reloadListener: ReloadListener;
  /** Builds the handler of one ext_proc stream (what the gRPC server calls per stream; benchmarks drive it directly). */
  streamHandlers: StreamHandlerFactory;
  /** Health flips to NOT_SERVING, no new streams, in-flight ones get `graceMs`, then everything closes. */
  shutdown(graceMs: number): Promise<void>;
  /**
   * Waits, at most `waitMs`, for the Redis connections of the shared stores (budgets, cache, affinity), so that a
   * new replica's first requests find the limits and answers it shares with the others rather than its failure
   * rules. A Redis that is down does not hold the start up beyond that: the failure rules then apply.
   */
  storesConnected(waitMs: number): Promise<void>;
  /** Called once both listeners are bound: readiness and gRPC health turn to serving. */
  markServing(): void;
  /** Readiness and gRPC health turn to not serving, while streams, new ones included, are still served. */
  markDraining(): void;
  isServing(): boolean;
}

export interface AppOptions {
  configText?: string;
  defaultMetrics?: boolean;
  /** Run only the stages with these names (benchmarks measure what each costs). */
  onlyStages?: readonly string[];
  /** Clock for limit windows (tests move it). */
  now?: () => number;
  /** Ledger sinks instead of the configured ones (tests, benchmarks). */
  ledgerSinks?: readonly LedgerSink[];
  /** An embedder instead of the configured one (tests). */
  embedder?: Embedder;
  /** Restart-only settings the command line or the environment decides: a reload's change to them is moot. */
  overridden?: readonly RestartOnlySetting[];
}

export function createApp(runtime: Runtime, log: Logger, opts: AppOptions = {}): App {
  const metrics = createMetrics({ defaultMetrics: opts.defaultMetrics ?? false });
  // A classifier regex that can backtrack on client text refuses a reload (README "Classification").
  const config = new ConfigStore(runtime, opts.configText, (rt) => vetRegexes(rt.config, log));
  setConfigInfo(metrics, runtime.version, runtime.classifierVersion);
  metrics.configLastReloadSuccess.set(1);
  let serving = false;

  const reloadListener: ReloadListener = {
    reloaded(rt) {
      metrics.configReloads.inc({ result: 'success' });
      metrics.configLastReloadSuccess.set(1);
      setConfigInfo(metrics, rt.version, rt.classifierVersion);
      const pending = restartOnlyChanges(runtime.config, rt.config, opts.overridden);
      metrics.configRestartRequired.reset();
      for (const setting of pending) metrics.configRestartRequired.set({ setting }, 1);
      log.info({ event: 'config.reloaded', version: rt.version, classifier_version: rt.classifierVersion, restart_required: pending });
      if (pending.length > 0) log.warn({ event: 'config.restart_required', settings: pending });
      warnConfigNotes(rt, log);
    },
    rejected(problems) {
      metrics.configReloads.inc({ result: 'failure' });
      metrics.configLastReloadSuccess.set(0);
      log.error({ event: 'config.rejected', kept_version: config.current().version, problems });
    },
  };

  const ledgerConfig = runtime.config.ledger;
  const ledgerLog = log.child({ component: 'ledger' });
  const ledgerSinks = opts.ledgerSinks ?? createSinks(ledgerConfig.sinks, ledgerLog);
  const ledger = new Ledger(ledgerSinks, ledgerConfig, ledgerHooks(metrics, ledgerLog), (err) => {
    metrics.ledgerBuildErrors.inc();
    ledgerLog.error({ event: 'ledger.build_failed', error: err instanceof Error ? err.message : String(err) });
  });

  metrics.setBacklogSource(() => ledger.backlog());
  metrics.setKeyExpirySource(() => config.current().auth.principals);

  // The store is built once from the startup config: changing budgets.store or budgets.redis needs a restart.
  // Reconciles an outage kept back and a shutdown could not send wait in the ledger's spool directory.
  const budgets = new Budgets(createBudgetStore(runtime.config.budgets), metrics, log.child({ component: 'budget' }), opts.now, ledgerConfig.spoolDir);
  // Likewise the cache store (cache.store, cache.redis); policies, TTLs and the deadline reload live.
  const cache = new ResponseCache(createCacheStore(runtime.config.cache, opts.now), runtime.config.cache.redis?.keyPrefix ?? 'tiergate:cache:', metrics, log.child({ component: 'cache' }), opts.now);
  // Likewise the response affinity store (routing.affinity.store, .redis).
  const affinityConfig = runtime.config.routing.affinity;
  const affinity = new ResponseAffinity(createAffinityStore(affinityConfig, opts.now), affinityConfig.redis?.keyPrefix ?? 'tiergate:affinity:', metrics, log.child({ component: 'affinity' }), opts.now);
  // What must stay in Redis says so when its Redis may evict it: budget windows and remembered tiers have TTLs,
  // the ledger stream has none (eviction-check.ts). The cache's entries may go; that is what a cache is for.
  const evictionLog = log.child({ component: 'redis' });
  const watch = (store: string, keep: MustKeep, redis: Redis | Cluster | undefined) => {
    if (redis) watchEviction(redis, keep, evictionReport(store, keep, metrics, evictionLog));
  };
  watch('budgets', 'every key', redisOf(budgets.store));
  watch('affinity', 'every key', redisOf(affinity.store));
  for (const sink of ledgerSinks) if (sink instanceof RedisStreamSink) watch(`ledger:${sink.name}`, 'keys without a TTL', sink.redis);
  for (const n of cacheSharesRedis(runtime.config)) evictionLog.warn({ event: 'config.redis_shared', path: n.path, message: n.message });
  warnConfigNotes(runtime, log);
  // The embedder (a model in a worker thread, or an endpoint) and the vector index, built when a tenant first
  // needs them, or at once when the startup config already asks for semantic caching.
  let semanticCache: SemanticCache | undefined;
  const semantic: SemanticSource = () => (semanticCache ??= createSemanticCache(runtime.config, cache.store, metrics, log.child({ component: 'cache' }), opts.now, opts.embedder));
  metrics.setEmbedderSource(() => semanticCache?.embedder.load?.());
  if (usesSemantic(runtime.config)) semantic();
  const stages = requestStages(metrics, budgets, cache, semantic, affinity).filter((s) => !opts.onlyStages || opts.onlyStages.includes(s.name));
  startAtZero(metrics, {
    phases: [...REQUEST_KINDS, 'unknown'],
    failureRules: FAILURE_RULES,
    sinks: ledgerSinks.map((sink) => sink.name),
    skippableStages: stages.filter((stage) => stage.onError === 'skip').map((stage) => stage.name),
  });

  const streamLog = log.child({ component: 'extproc' });
  const storeAnswer = answerStore(cache, () => semanticCache, metrics, log.child({ component: 'cache' }), opts.now);
  const deps = {
    runtime: () => config.current(),
    metrics,
    log: streamLog,
    requestStages: stages,
    budgets,
    affinity,
    settle: deferred(ledger, withCacheStore(createSettle(ledger, metrics, ledgerLog, budgets), storeAnswer)),
    storeAnswer,
    filterWarnings: new ThrottledWarnings(streamLog, FAILURE_LOG_INTERVAL_MS, opts.now ?? Date.now),
  };
  const streamHandlers: StreamHandlerFactory = (info) => new LlmStream(deps, info);
  const extproc = createExtProcServer(streamHandlers, {
    allowModeOverride: () => config.current().config.envoy.allowModeOverride,
    failureRule: () => config.current().config.envoy.failureRule,
    internalErrorReply: () => replyFor(new TiergateError('internal_error', 'The gateway failed to process this request.')),
    streamResetBurst: runtime.config.server.http2StreamResetBurst,
    streamResetRate: runtime.config.server.http2StreamResetRate,
    hooks: {
      streamStarted: () => metrics.streamOpened(),
      streamEnded: (end) => {
        metrics.streamClosed();
        metrics.streams.inc({ end });
      },
      answered: (phase, seconds) => metrics.phaseSeconds.labels(phase).observe(seconds),
      processingError: (phase, err, rule) => {
        metrics.processingErrors.inc({ phase, rule });
        // The message only: error objects from stages could carry request data.
        streamLog.error({ event: 'extproc.processing_error', phase, rule, error: err instanceof Error ? err.message : String(err) });
      },
    },
  });
  /** Readiness and gRPC health say not serving: Envoy and Kubernetes stop sending streams here. */
  const markDraining = () => {
    serving = false;
    extproc.setServing(false);
  };
  const admin = createAdminServer(metrics, () => serving, async (tenant) => {
    const rt = config.current();
    const reach = tenantReach(rt.auth, tenant);
    if (reach === 'none') return undefined;
    // listed: false is a tenant only a key for every tenant reaches that `tenants:` does not name either, so an
    // operator who mistyped one sees that, not just a tenant with nothing used.
    const listed = reach === 'named' || Object.hasOwn(rt.config.tenants, tenant);
    return { tenant, listed, plan: rt.tenants.policyFor(tenant).plan, limits: await budgets.status(rt, tenant) };
  });

  return {
    config,
    metrics,
    extproc,
    admin,
    ledger,
    budgets,
    cache,
    affinity,
    reloadListener,
    streamHandlers,
    isServing: () => serving,
    async storesConnected(waitMs) {
      const clients = [budgets.store, cache.store, affinity.store].flatMap((st) => redisOf(st) ?? []);
      await Promise.allSettled(clients.map((c) => whenReady(c, waitMs, 'store')));
    },
    markServing() {
      serving = true;
      extproc.setServing(true);
    },
    markDraining,
    async shutdown(graceMs) {
      markDraining();
      config.close();
      const ended = await extproc.shutdown(graceMs);
      if (ended.detached + ended.cut > 0) {
        // Detached: the answer went on to its client unread, so its row has what had passed (an estimate). Cut:
        // the request was still being decided, and Envoy failed it.
        log.warn({ event: 'server.streams_ended_at_grace', detached: ended.detached, cut: ended.cut, grace_ms: graceMs });
      }
      // Every stream has ended, so every row is recorded: deliver them (or keep them in the spool) before exit.
      await ledger.close();
      await budgets.close();
      await cache.close();
      await affinity.close();
      await semanticCache?.close();
      await admin.close();
    },
  };
}

type Settle = (record: RequestRecord, runtime: Runtime) => void;

/**
 * The record is assembled and its row built and stored in the ledger's next batch (Ledger.later): per request
 * that code would run alone with cold caches, in a batch it runs warm.
 */
function deferred(ledger: Ledger, settle: Settle): StreamDeps['settle'] {
  return (record, runtime) => ledger.later(() => settle(record(), runtime));
}

/** After the ledger row: a miss whose answer was not stored at its end (not whole, or cut short) is counted. */
function withCacheStore(settle: Settle, storeAnswer: StoreAnswer): Settle {
  return (record, runtime) => {
    settle(record, runtime);
    if (record.cacheSave) storeAnswer(record.tenant, record.cacheSave, runtime.config.cache);
  };
}

/** What a store's eviction check found: the gauge, and a warning naming the policy and what it can take. */
function evictionReport(store: string, keep: MustKeep, metrics: Metrics, log: Logger): (result: EvictionRisk[] | Error) => void {
  return (result) => {
    if (result instanceof Error) {
      log.info({ event: 'redis.eviction_unchecked', store, error: result.message });
      return;
    }
    metrics.redisEvictionRisk.set({ store }, result.length > 0 ? 1 : 0);
    if (result.length === 0) return;
    const lost = keep === 'every key' ? 'any of its keys (they have TTLs)' : 'its keys';
    log.warn({ event: 'redis.eviction_risk', store, nodes: result, message: `this Redis may evict ${lost} when full: give ${store} a Redis with maxmemory-policy noeviction (or no maxmemory)` });
  };
}

function ledgerHooks(metrics: Metrics, log: Logger): LedgerHooks {
  const failing = new Set<string>();
  return {
    rows: (sink, result, n) => {
      metrics.ledgerRows.inc({ sink, result }, n);
      if (result !== 'spooled' && failing.delete(sink)) log.info({ event: 'ledger.sink_recovered', sink });
    },
    sinkError: (sink, err) => {
      metrics.ledgerSinkErrors.inc({ sink });
      // One log line per outage, not per retry.
      if (!failing.has(sink)) log.error({ event: 'ledger.sink_failed', sink, error: err instanceof Error ? err.message : String(err) });
      failing.add(sink);
    },
    unsaved: (sink, entries, reason) => {
      if (entries.length === 0) return;
      metrics.ledgerRows.inc({ sink, result: 'unsaved' }, entries.length);
      // The last place these rows can go: the log, in full, so they can be put back into the sink from it. A row
      // holds ids, counts and prices, never prompt text or keys.
      for (const rows of logLineRows(entries)) log.error({ event: 'ledger.rows_unsaved', sink, ...(reason ? { reason } : {}), count: rows.length, rows });
    },
    leftInSpool: (sink, entries) => {
      // Safe on disk while the directory lasts; logged as well because it may not (ledger.logSpoolAtExit).
      for (const rows of logLineRows(entries)) log.warn({ event: 'ledger.rows_left_in_spool', sink, count: rows.length, rows });
    },
  };
}

/** What a valid config does that its author may not mean, said once per config (config/notes.ts). */
function warnConfigNotes(rt: Runtime, log: Logger): void {
  for (const n of loadNotes(rt)) log.warn({ event: n.event, path: n.path, message: n.message });
}
