// Validates the body as an OpenAI request; bad input ends here with a 400 that names the field.
import { parseLlmRequest, type Endpoint } from '../llm/parse-request.js';
import type { Stage } from '../pipeline/stage.js';

export function endpointOf(path: string): Endpoint {
  return path.endsWith('/completions') && !path.endsWith('/chat/completions') ? 'completions' : 'chat';
}

export const parseStage: Stage = {
  name: 'parse',
  onError: 'fail',
  run(state) {
    state.llm = parseLlmRequest(endpointOf(state.path), state.body);
  },
};
