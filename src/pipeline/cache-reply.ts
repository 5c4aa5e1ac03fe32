// A cache hit as Envoy's local reply: the cached answer in the wire format this client asked for (JSON, or SSE
// with the usage chunk when it asked for include_usage), with the headers a routed response would carry.
import { replayJson, replaySse } from '../cache/answer.js';
import type { ReplyDecision } from '../extproc/types.js';
import { usageAsked, type LlmRequest } from '../llm/parse-request.js';
import type { CacheEntry } from '../stores/cache-store.js';
import { H } from './contract-headers.js';
import type { RequestState } from './request-state.js';

export function cacheHitReply(state: RequestState, entry: CacheEntry, now: number): ReplyDecision {
  const llm = state.llm as LlmRequest;
  const headers: Array<readonly [string, string]> = [
    [H.contentType, llm.stream ? 'text/event-stream' : 'application/json'],
    [H.cache, state.cache?.status ?? 'hit-exact'],
    [H.modelResolved, entry.answer.model],
  ];
  if (state.route) headers.push([H.tier, state.route.tier.name]);
  if (state.admission) headers.push(...state.admission.responseHeaders);
  const body = llm.stream ? replaySse(entry.answer, now, usageAsked(llm)) : replayJson(entry.answer, now);
  return { kind: 'reply', status: 200, headers, body, details: 'tiergate_cache_hit' };
}
