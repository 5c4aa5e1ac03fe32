// Any OpenAI-compatible /v1/embeddings endpoint (vLLM, TEI, OpenAI): the production path, e.g. a multilingual
// model close to the gateway. One POST per batch, with a timeout; the key comes from an environment variable.
import { setDeadline } from '../../deadline-timer.js';
import { EmbedderRefusedError, normalise, type Embedder } from './embedder.js';

export interface OpenAiEmbedderOptions {
  /** Base URL up to and including /v1, e.g. http://tei:8080/v1. */
  url: string;
  model: string;
  apiKey: string | undefined;
  timeoutMs: number;
}

/** Statuses that refuse the input, not the request: see EmbedderRefusedError. */
const REFUSALS = new Set([400, 413, 422]);

export class OpenAiEmbedder implements Embedder {
  readonly id: string;

  constructor(private readonly opts: OpenAiEmbedderOptions) {
    this.id = `openai:${opts.model}`;
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    // The timeout covers the answer's body too; it lets a reply already waiting be read first
    // (src/deadline-timer.ts), where AbortSignal.timeout would abort it after a held-up event loop.
    const abort = new AbortController();
    const cancel = setDeadline(this.opts.timeoutMs, () => abort.abort(new DOMException('embeddings request timed out', 'TimeoutError')));
    let body: { data?: Array<{ index?: number; embedding?: number[] }> };
    try {
      const res = await fetch(`${this.opts.url.replace(/\/$/, '')}/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {}) },
        body: JSON.stringify({ model: this.opts.model, input: texts, encoding_format: 'float' }),
        signal: abort.signal,
      });
      // The body is not read into the error: an endpoint may quote the input, and errors reach the log.
      if (REFUSALS.has(res.status)) throw new EmbedderRefusedError(res.status);
      if (!res.ok) throw new Error(`embeddings endpoint answered ${res.status}`);
      body = (await res.json()) as typeof body;
    } finally {
      cancel();
    }
    return vectorsOf(body.data ?? [], texts.length);
  }

  async close(): Promise<void> {}
}

/**
 * The answer's vectors in input order, each checked: one per input (by `index`, else in order), numbers only, all
 * of one length. An answer that breaks any of these is the endpoint failing (the breaker counts it); before, a
 * stray index left a hole that failed later as a processing error, and a non-number made a vector of NaN that
 * silently matched nothing.
 */
function vectorsOf(data: ReadonlyArray<{ index?: number; embedding?: unknown }>, inputs: number): Float32Array[] {
  if (data.length !== inputs) throw new Error(`embeddings endpoint returned ${data.length} vectors for ${inputs} inputs`);
  const out: Array<Float32Array | undefined> = new Array(inputs).fill(undefined);
  data.forEach((d, i) => {
    const e = d.embedding;
    if (!Array.isArray(e) || e.length === 0 || !e.every((x) => typeof x === 'number' && Number.isFinite(x))) throw new Error('embeddings endpoint returned no embedding');
    const at = d.index ?? i;
    if (!Number.isInteger(at) || at < 0 || at >= inputs || out[at] !== undefined) throw new Error('embeddings endpoint returned vectors that are not one per input');
    out[at] = normalise(e as number[]);
  });
  const dims = out[0]?.length;
  if (out.some((v) => (v as Float32Array).length !== dims)) throw new Error('embeddings endpoint returned vectors of different lengths');
  return out as Float32Array[];
}
