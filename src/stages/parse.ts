// Validates the body as an OpenAI request; bad input ends here with a 400 that names the field.
import { parseLlmRequest, type Endpoint } from '../llm/parse-request.js';
import type { Stage } from '../pipeline/stage.js';

/** By the path's last segment, so that an operator's own prefix (e.g. /openai/v1/responses) reads the same. */
export function endpointOf(path: string): Endpoint {
  if (path.endsWith('/responses')) return 'responses';
  return path.endsWith('/completions') && !path.endsWith('/chat/completions') ? 'completions' : 'chat';
}

export const parseStage: Stage = {
  name: 'parse',
  onError: 'fail',
  run(state) {
    state.llm = parseLlmRequest(endpointOf(state.path), state.body, state.runtime.config.limits.maxJsonDepth);
  },
};
