// Any OpenAI-compatible /v1/embeddings endpoint (vLLM, TEI, OpenAI): the production path, e.g. a multilingual
// model close to the gateway. One POST per question, with a timeout; the key comes from an environment variable.
//
// As many POSTs at a time as the endpoint answers in good time (adaptive-limit.ts; at most `maxConcurrency`),
// the questions beyond them waiting in a bounded queue shared fairly between tenants (fair-dispatcher.ts). Sent
// all at once, as before, a tenant asking faster than the endpoint embeds filled the endpoint's own queue: every
// tenant's questions waited behind its backlog past the timeout, and the timeouts, counted as the embedder
// failing, turned the semantic cache off for everyone.
import type { Context } from '@opentelemetry/api';
import { setDeadline } from '../../deadline-timer.js';
import { startClientSpan } from '../../telemetry/tracing.js';
import { takeBatch } from './batch-plan.js';
import { EmbedderRefusedError, normalise, type Embedder, type EmbedderLoad } from './embedder.js';
import { AdaptiveLimit } from './adaptive-limit.js';
import { FairDispatcher } from './fair-dispatcher.js';

export interface OpenAiEmbedderOptions {
  /** Base URL up to and including /v1, e.g. http://tei:8080/v1. */
  url: string;
  model: string;
  apiKey: string | undefined;
  timeoutMs: number;
  /** POSTs under way at a time, at most. */
  maxConcurrency: number;
}

/** Questions that may wait for a POST, per POST allowed at a time. */
export const WAITING_PER_SLOT = 4;

/** Statuses that refuse the input, not the request: see EmbedderRefusedError. */
const REFUSALS = new Set([400, 413, 422]);
/** Statuses with which an endpoint says it has more than it can take (TEI's 429 "model is overloaded"). */
const OVERLOADED = new Set([429, 503]);

export class OpenAiEmbedder implements Embedder {
  readonly id: string;
  /** POSTs allowed at a time now (read by tests and the bench). */
  readonly limit: AdaptiveLimit;
  private readonly dispatcher: FairDispatcher;

  constructor(private readonly opts: OpenAiEmbedderOptions) {
    this.id = `openai:${opts.model}`;
    this.limit = new AdaptiveLimit(opts.maxConcurrency, opts.timeoutMs);
    // One question per POST, as before: a batch would make the timeout a question's share of a slower call.
    const capacity = WAITING_PER_SLOT * opts.maxConcurrency;
    this.dispatcher = new FairDispatcher({ capacity, concurrency: this.limit, maxBatch: 1, plan: takeBatch }, (texts, trace) => this.post(texts, trace));
  }

  load(): EmbedderLoad {
    return this.dispatcher.load();
  }

  soonestMs(_text: string, owner = ''): number {
    return this.dispatcher.soonestMs(owner, 0);
  }

  /** The texts of one call go in one POST. `owner`: the tenant asking, for its share of the queue. */
  embed(texts: readonly string[], owner = '', trace?: Context): Promise<Float32Array[]> {
    return this.dispatcher.ask(texts, owner, 0, trace);
  }

  /** `trace`: with tracing on, the POST is a client span under it, and the endpoint gets its context. */
  private async post(texts: readonly string[], trace: Context | undefined): Promise<Float32Array[]> {
    const call = startClientSpan('embeddings POST', trace);
    // The timeout covers the answer's body too; it lets a reply already waiting be read first
    // (src/deadline-timer.ts), where AbortSignal.timeout would abort it after a held-up event loop.
    const abort = new AbortController();
    let timedOut = false;
    const cancel = setDeadline(this.opts.timeoutMs, () => {
      timedOut = true;
      abort.abort(new DOMException('embeddings request timed out', 'TimeoutError'));
    });
    let body: { data?: Array<{ index?: number; embedding?: number[] }> };
    try {
      const res = await fetch(`${this.opts.url.replace(/\/$/, '')}/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {}), ...call.headers },
        body: JSON.stringify({ model: this.opts.model, input: texts, encoding_format: 'float' }),
        signal: abort.signal,
      });
      // The body is not read into the error: an endpoint may quote the input, and errors reach the log.
      if (REFUSALS.has(res.status)) throw new EmbedderRefusedError(res.status);
      if (OVERLOADED.has(res.status)) this.limit.overloaded();
      if (!res.ok) throw new Error(`embeddings endpoint answered ${res.status}`);
      body = (await res.json()) as typeof body;
    } catch (err) {
      if (timedOut) this.limit.overloaded();
      call.end(err);
      throw err;
    } finally {
      cancel();
    }
    call.end(undefined);
    this.limit.answered();
    return vectorsOf(body.data ?? [], texts.length);
  }

  async close(): Promise<void> {
    this.dispatcher.close(new Error('embeddings endpoint closed'));
  }
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
