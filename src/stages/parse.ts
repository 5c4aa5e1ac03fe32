// Validates the body as an OpenAI request; bad input ends here with a 400 that names the field.
import { parseLlmRequest, type Endpoint } from '../llm/parse-request.js';
import type { Stage } from '../pipeline/stage.js';

/**
 * By the path's last segment, so that an operator's own prefix (e.g. /openai/v1/responses) reads the same. A
 * Responses API compaction (`…/responses/compact`) takes a turn's fields (model, input, instructions,
 * previous_response_id) and answers with a turn's usage, so it is read as one.
 */
export function endpointOf(path: string): Endpoint {
  if (path.endsWith('/responses') || path.endsWith(COMPACT_SUFFIX)) return 'responses';
  return path.endsWith('/completions') && !path.endsWith('/chat/completions') ? 'completions' : 'chat';
}

/** Beside each Responses API path, its compaction endpoint (POST /v1/responses/compact). */
export const COMPACT_SUFFIX = '/responses/compact';

export const parseStage: Stage = {
  name: 'parse',
  onError: 'fail',
  run(state) {
    state.llm = parseLlmRequest(endpointOf(state.path), state.body, state.runtime.config.limits.maxJsonDepth);
  },
};
