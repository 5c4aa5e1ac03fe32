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
    const data = body.data ?? [];
    if (data.length !== texts.length) throw new Error(`embeddings endpoint returned ${data.length} vectors for ${texts.length} inputs`);
    const out: Float32Array[] = new Array(texts.length);
    data.forEach((d, i) => {
      if (!Array.isArray(d.embedding)) throw new Error('embeddings endpoint returned no embedding');
      out[d.index ?? i] = normalise(d.embedding);
    });
    return out;
  }

  async close(): Promise<void> {}
}
