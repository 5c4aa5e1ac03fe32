// The 'echo' server's handler, shared by the benches: tiergate's transport with no logic, sending answers of
// tiergate's size and shape (the request body sent back with the routing headers set; the two response
// headers), to separate the cost of answering from the cost of deciding.
import { CONTINUE, type StreamHandler, type StreamHandlerFactory } from '../src/extproc/types.js';

const pass = () => CONTINUE;

export const echoHandlers: StreamHandlerFactory = (): StreamHandler => ({
  requestHeaders: pass,
  requestBody: (chunk) => ({
    kind: 'continue',
    body: Buffer.from(chunk),
    clearRouteCache: true,
    headers: { set: [['x-llm-tier', 'weak'], ['x-llm-model', 'weak-model'], ['x-tenant-id', 'default'], ['x-llm-classifier', 'v7'], ['content-length', String(chunk.length)]] },
  }),
  requestTrailers: pass,
  responseHeaders: () => ({ kind: 'continue', headers: { set: [['x-llm-tier', 'weak'], ['x-gateway-model-resolved', 'weak-model']] } }),
  responseBody: pass,
  responseTrailers: pass,
  end() {},
});
