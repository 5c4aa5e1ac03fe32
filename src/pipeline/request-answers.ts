// What tiergate answers on the request side once a request is routed: the contract headers set (and the
// client's own copies removed), the rewritten body, and the route cache cleared so Envoy routes on them.
import type { ContinueDecision } from '../extproc/types.js';
import { clientRoutingHeaders } from './header-rules.js';
import type { RequestState } from './request-state.js';

/** `replaceBody`: the answer carries the body (rewritten, or whole after held chunks). */
export function routedAnswer(state: RequestState, replaceBody: boolean): ContinueDecision {
  const remove = clientRoutingHeaders(state.headers, state.setHeaders);
  const decision: ContinueDecision = {
    kind: 'continue',
    headers: { set: state.setHeaders, remove: [...remove, ...state.removeHeaders] },
    // Header changes in a BUFFERED body answer still affect routing only with clear_route_cache (§6).
    clearRouteCache: true,
  };
  if (replaceBody) decision.body = state.newBody ?? state.body;
  return decision;
}

/** The routing decision at debug level; the prompt only with logging.logPrompts. */
export function logRouted(state: RequestState, logPrompts: boolean): void {
  const route = state.route;
  state.log.debug({
    event: 'request.routed',
    tier: route?.tier.name,
    source: route?.source,
    rule: route?.classification?.rule,
    reason: route?.classification?.reason,
    ...(logPrompts ? { prompt_text: state.llm?.messages } : {}),
  });
}
