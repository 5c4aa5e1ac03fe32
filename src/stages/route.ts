// Writes the routing decision into the request: contract headers (overwriting the client's), the upstream
// model id in the body, usage forced on for streams, upstream credentials, and a true content-length.
import { exactOr } from '../llm/exact-numbers.js';
import { usageForced } from '../llm/parse-request.js';
import { H } from '../pipeline/contract-headers.js';
import { upstreamRequestId } from '../pipeline/request-state.js';
import type { Stage } from '../pipeline/stage.js';

export const routeStage: Stage = {
  name: 'route',
  onError: 'fail',
  run(state) {
    const { llm, route } = state;
    if (!llm || !route) throw new Error('route before classify');
    if (state.cache?.hit) return; // answered from the cache: nothing goes upstream
    const forceUsage = usageForced(llm);
    // A backend that schedules by priority runs the lowest first: the client's own value would let it jump the queue.
    const priority = route.tier.priorityScheduling ? (state.policy.priority ?? 0) : undefined;
    let text = JSON.stringify(routed(llm.json, route.tier.model, forceUsage, priority));
    // Integers beyond 2^53 go on digit for digit (a 64-bit seed would otherwise reach the backend changed).
    if (llm.exact) {
      const kept = exactOr(text, routed(llm.exact, route.tier.model, forceUsage, priority));
      // Only a client string or key spelled like a mark gets here (exact-numbers.ts): the rounded body goes.
      if (!kept.exact) state.log.info({ event: 'route.integers_rounded' });
      text = kept.text;
    }
    const body = Buffer.from(text, 'utf8');
    state.newBody = body;
    state.setHeaders.push(
      [H.tenant, state.tenant],
      [H.tier, route.tier.name],
      [H.model, route.tier.model],
      [H.classifier, route.classification ? route.classification.version : route.source],
      // Envoy keeps content-length in BUFFERED mode and 500s on a mismatch with the new body (§5).
      [H.contentLength, String(body.length)],
    );
    // Vendor keys never leave the gateway: the tier's credential replaces whatever the client sent.
    if (route.tier.authorization) state.setHeaders.push([H.authorization, route.tier.authorization]);
    const id = upstreamRequestId(state);
    if (id) state.setHeaders.push(id);
  },
};

/**
 * The body as it goes upstream: the resolved model id, for chat and completions streams usage asked for, and the
 * tenant's priority where the tier's backend schedules by it.
 */
function routed(json: Record<string, unknown>, model: string, forceUsage: boolean, priority: number | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = { ...json, model };
  if (priority !== undefined) out.priority = priority;
  if (forceUsage) {
    // Without include_usage, vLLM and OpenAI send no usage in streams and spend is recorded as $0
    // (landscape.md "Streamed spend"); keep whatever else the client put in stream_options.
    const prev = json.stream_options;
    const base = prev && typeof prev === 'object' ? (prev as Record<string, unknown>) : {};
    out.stream_options = { ...base, include_usage: true };
  }
  return out;
}
