// Turns questions into unit-length vectors for the semantic cache. One interface: a local in-process model (the
// embedded default and the tests) and any OpenAI-compatible /v1/embeddings endpoint (production: a multilingual
// model on vLLM or TEI).
import type { Context } from '@opentelemetry/api';

export interface Embedder {
  /** Names the model: part of every partition, so vectors of two models never meet. */
  readonly id: string;
  /**
   * `owner` is the tenant asking: an embedder that queues shares its queue fairly between tenants. `trace`: the
   * request's span context, under which an embedder that calls out (the endpoint) traces its call.
   */
  embed(texts: readonly string[], owner?: string, trace?: Context): Promise<Float32Array[]>;
  close(): Promise<void>;
  /** What it is doing now (the tiergate_embedder_calls gauge); optional. */
  load?(): EmbedderLoad;
  /**
   * How long, in ms, `text` asked now by `owner` would wait for its vector at the least, from what the embedder
   * has under way and waiting (FairDispatcher.soonestMs); optional, and 0 when it cannot tell. The semantic cache
   * gives up at once on a lookup this puts past its deadline.
   */
  soonestMs?(text: string, owner: string): number;
}

/** Calls allowed at a time now, calls under way, and questions waiting for one. */
export interface EmbedderLoad {
  limit: number;
  inFlight: number;
  waiting: number;
}

/**
 * The embedder has more questions waiting than it can embed in time: this one was refused at once. Not a failure
 * of the embedder (the breaker does not count it); the lookup is bypassed and the request goes upstream.
 */
export class EmbedderBusyError extends Error {
  constructor(waiting: number) {
    super(`embedder busy: ${waiting} questions waiting`);
    this.name = 'EmbedderBusyError';
  }
}

/**
 * The embeddings endpoint refused this question (400, 413 or 422): longer than the model reads (TEI answers 413
 * "inputs must have less than 512 tokens", vLLM and OpenAI 400), or otherwise not one it takes. A fault of the
 * question, not of the embedder: counted toward the breaker, one client's long questions would turn the
 * semantic cache off for every tenant. The lookup is bypassed.
 */
export class EmbedderRefusedError extends Error {
  constructor(status: number) {
    super(`embeddings endpoint refused the question (${status})`);
    this.name = 'EmbedderRefusedError';
  }
}

/** Scales to unit length, so cosine similarity is a dot product. */
export function normalise(v: ArrayLike<number>): Float32Array {
  const out = new Float32Array(v.length);
  let n = 0;
  for (let i = 0; i < v.length; i++) n += (v[i] as number) * (v[i] as number);
  const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
  for (let i = 0; i < v.length; i++) out[i] = (v[i] as number) * inv;
  return out;
}

export function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}
