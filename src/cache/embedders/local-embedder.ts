// The local embedder: Universal Sentence Encoder lite (512 dimensions, English) in a worker thread. Requests that
// arrive while a batch is running are embedded together in a later one, questions of like length together
// (batch-plan.ts), so a burst costs a few model calls, not one per request. English only: for Korean or mixed
// traffic use an OpenAI-compatible multilingual endpoint.
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { takeBatch, lengthClass } from './batch-plan.js';
import type { BatchPlanner } from './fair-queue.js';
import { FairDispatcher } from './fair-dispatcher.js';
import { normalise, type Embedder, type EmbedderLoad } from './embedder.js';

const MAX_BATCH = 32;
/**
 * Questions that may wait for the model beside the batch it is running. The model embeds some 80 questions a
 * second on a 2-core machine even in batches (`npm run bench:embedder`), so more new questions than that each
 * second would queue without end: every lookup would miss by its deadline, and the queue would hold each
 * question's text until the pod ran out of memory. Past this bound a question is refused at once (a bypass),
 * unless its tenant holds fewer waiting questions than another (fair-queue.ts); those that wait
 * are still embedded after their lookup's deadline, and indexed for later hits.
 */
export const MAX_WAITING = 4 * MAX_BATCH;

/**
 * Built code runs the compiled worker. Under tsx (tests, benchmarks) the worker is TypeScript source: a worker
 * cannot take `--import tsx`, so a small bootstrap registers tsx's loader in the thread, then imports it.
 */
function workerFor(url: URL): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(fileURLToPath(url));
  const api = import.meta.resolve('tsx/esm/api');
  return new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`, { eval: true });
}

export class LocalEmbedder implements Embedder {
  readonly id = 'local:use-lite-en';
  /** The model's thread; undefined once it stopped, until the next batch starts another. */
  private worker: Worker | undefined;
  private ready!: Promise<void>;
  private nextId = 0;
  private readonly inFlight = new Map<number, { resolve: (v: Float32Array[]) => void; reject: (e: Error) => void }>();
  /** One batch at a time: the model's thread runs one. */
  private readonly dispatcher: FairDispatcher;
  private closed = false;
  /** Threads started, the first included (for tests and logs). */
  starts = 0;

  constructor(plan: BatchPlanner = takeBatch) {
    this.dispatcher = new FairDispatcher({ capacity: MAX_WAITING, concurrency: 1, maxBatch: MAX_BATCH, plan }, (texts) => this.run(texts));
    this.start();
  }

  /**
   * Starts the model's thread. Should it stop (out of memory, a fault in TensorFlow.js, terminated), the batch it
   * held fails, which the semantic cache counts toward its breaker, and the next batch starts a new thread.
   * Before, the batch waited for an answer that never came: every later question queued behind it until the
   * queue was full, and the semantic cache stayed off, reported as "busy", until the process restarted.
   */
  private start(): void {
    const worker = workerFor(new URL(`./local-embedder-worker.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url));
    this.worker = worker;
    this.starts++;
    worker.unref();
    this.ready = new Promise((resolve, reject) => {
      const stopped = (why: string) => {
        if (this.worker !== worker) return; // an 'error' is followed by an 'exit': handled once
        this.worker = undefined;
        const err = new Error(`local embedder stopped: ${why}`);
        reject(err); // if it never loaded
        for (const job of this.inFlight.values()) job.reject(err);
        this.inFlight.clear();
      };
      worker.on('error', (e) => stopped(e.message));
      worker.on('exit', (code) => stopped(`its thread exited (code ${code})`));
      worker.on('message', (m: { type: string; id?: number; dims?: number; flat?: Float32Array; error?: string }) => {
        if (m.type === 'ready') return resolve();
        if (m.type === 'failed') return reject(new Error(`local embedder failed to load: ${m.error}`));
        const job = this.inFlight.get(m.id as number);
        if (!job) return;
        this.inFlight.delete(m.id as number);
        if (m.type === 'error') return job.reject(new Error(m.error));
        const dims = m.dims as number;
        const flat = m.flat as Float32Array;
        const out: Float32Array[] = [];
        for (let i = 0; i < flat.length / dims; i++) out.push(normalise(flat.subarray(i * dims, (i + 1) * dims)));
        job.resolve(out);
      });
    });
    // Nobody may be waiting yet: a load failure surfaces on the first embed, not as an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  /** Resolves once the model is loaded (about a quarter of a second); lookups before then are bypassed. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  load(): EmbedderLoad {
    return this.dispatcher.load();
  }

  soonestMs(text: string, owner = ''): number {
    return this.dispatcher.soonestMs(owner, lengthClass(text));
  }

  /** Each question waits on its own, so that a batch holds questions of one length class (batch-plan.ts). */
  embed(texts: readonly string[], owner = ''): Promise<Float32Array[]> {
    if (this.closed) return Promise.reject(new Error('local embedder closed'));
    return Promise.all(texts.map((text) => this.dispatcher.ask([text], owner, lengthClass(text)).then((v) => v[0] as Float32Array)));
  }

  /** One batch on the model's thread, started again first if it stopped. */
  private run(texts: string[]): Promise<Float32Array[]> {
    if (this.worker === undefined) this.start();
    const worker = this.worker as Worker;
    return this.ready.then(
      () =>
        new Promise<Float32Array[]>((resolve, reject) => {
          // It may have stopped since it loaded: then 'exit' has cleared inFlight, and nothing would answer.
          if (this.worker !== worker) return reject(new Error(this.closed ? 'local embedder closed' : 'local embedder stopped'));
          const id = this.nextId++;
          this.inFlight.set(id, { resolve, reject });
          worker.postMessage({ id, texts });
        }),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    const closed = new Error('local embedder closed');
    for (const job of this.inFlight.values()) job.reject(closed);
    this.inFlight.clear();
    this.dispatcher.close(closed);
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}
