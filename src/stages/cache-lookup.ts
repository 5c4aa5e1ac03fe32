// Looks the request up in the response cache, after the ACL (so a hit never serves a tier the tenant may not
// use) and before admission (so a hit counts against requests per minute but reserves no tokens). A hit ends
// the pipeline with a local 200 built by the stream; a miss notes where the upstream's answer will be stored.
import type { LookupResult, ResponseCache } from '../cache/response-cache.js';
import { requestKeys, uncacheable } from '../cache/request-key.js';
import type { SemanticCache } from '../cache/semantic-cache.js';
import type { RequestCache, RequestState } from '../pipeline/request-state.js';
import type { Stage } from '../pipeline/stage.js';
import type { Metrics } from '../telemetry/metrics.js';

/** The semantic cache is built on first use (its embedder loads a model): absent until a tenant needs it. */
export type SemanticSource = () => SemanticCache;

export function createCacheLookupStage(cache: ResponseCache, semantic: SemanticSource, metrics: Metrics): Stage {
  const bypass = (state: RequestState, reason: string, save?: RequestCache['save']) => {
    metrics.cacheLookups.inc({ kind: 'exact', result: 'bypass', reason });
    state.cache = { status: 'bypass', reason, lookupMs: 0, ...(save ? { save } : {}) };
  };
  return {
    name: 'cache',
    // The cache is optional: an unexpected error here is logged and counted, and the request goes upstream.
    onError: 'skip',
    run(state) {
      const p = state.policy.cache;
      const { llm, route } = state;
      if (p.mode === 'off' || !llm || !route) return;
      const why = uncacheable(llm, p.toolRequests);
      if (why) return bypass(state, why);
      const cfg = state.runtime.config.cache;
      const scope = { tenant: state.tenant, namespace: p.namespace, tier: route.tier.name, model: route.tier.model };
      const keys = requestKeys(scope, llm);
      const storeKey = cache.storeKey(state.tenant, 'x', keys.exact);
      const directives = cacheControl(state.headers.get('cache-control'));
      const save = directives.noStore ? undefined : { storeKey, ttlMs: (p.ttlSeconds ?? cfg.defaultTtlSeconds) * 1000 };
      // no-cache: answer from upstream, but the fresh answer may be stored; no-store: neither.
      if (directives.noCache || directives.noStore) return bypass(state, 'client', save);
      const started = performance.now();
      const done = (r: LookupResult): void | Promise<void> => {
        if (r.result === 'hit') {
          state.cache = { status: 'hit-exact', reason: undefined, hit: r.entry, lookupMs: performance.now() - started };
          return;
        }
        let parts = p.mode === 'semantic' && r.result === 'miss' ? keys.semantic() : undefined;
        if (parts && parts.question.length > cfg.semantic.maxQuestionChars) {
          metrics.cacheLookups.inc({ kind: 'semantic', result: 'bypass', reason: 'too_long' });
          parts = undefined;
        }
        if (!parts) {
          state.cache = { status: r.result, reason: r.reason, lookupMs: performance.now() - started, ...(save ? { save } : {}) };
          return;
        }
        const threshold = p.threshold ?? cfg.semantic.threshold;
        return semantic()
          .lookup({ tenant: state.tenant, partition: parts.partition, question: parts.question, threshold, trace: state.traceContext }, cfg)
          .then((s) => {
            const lookupMs = performance.now() - started;
            if (s.result === 'hit') state.cache = { status: 'hit-semantic', reason: undefined, hit: s.entry, lookupMs };
            else {
              const seeded = save && s.result === 'miss' ? { ...save, semantic: s.seed } : save;
              state.cache = { status: s.result, reason: s.reason, lookupMs, ...(seeded ? { save: seeded } : {}) };
            }
          });
      };
      const r = cache.lookup(storeKey, cfg);
      return r instanceof Promise ? r.then(done) : done(r);
    },
  };
}

/** Request Cache-Control directives tiergate honours (RFC 9111 §5.2.1): no-cache and no-store. */
export function cacheControl(value: string | undefined): { noCache: boolean; noStore: boolean } {
  if (!value) return { noCache: false, noStore: false };
  const directives = value.toLowerCase().split(',').map((d) => d.trim().split('=')[0]);
  return { noCache: directives.includes('no-cache'), noStore: directives.includes('no-store') };
}
