// Any OpenAI-compatible /v1/embeddings endpoint (vLLM, TEI, OpenAI): the production path, e.g. a multilingual
// model close to the gateway. One POST per batch, with a timeout; the key comes from an environment variable.
import { normalise, type Embedder } from './embedder.js';

export interface OpenAiEmbedderOptions {
  /** Base URL up to and including /v1, e.g. http://tei:8080/v1. */
  url: string;
  model: string;
  apiKey: string | undefined;
  timeoutMs: number;
}

export class OpenAiEmbedder implements Embedder {
  readonly id: string;

  constructor(private readonly opts: OpenAiEmbedderOptions) {
    this.id = `openai:${opts.model}`;
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    const res = await fetch(`${this.opts.url.replace(/\/$/, '')}/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {}) },
      body: JSON.stringify({ model: this.opts.model, input: texts, encoding_format: 'float' }),
      signal: AbortSignal.timeout(this.opts.timeoutMs),
    });
    if (!res.ok) throw new Error(`embeddings endpoint answered ${res.status}`);
    const body = (await res.json()) as { data?: Array<{ index?: number; embedding?: number[] }> };
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
