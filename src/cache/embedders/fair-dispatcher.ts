// Questions on their way to an embedder that takes only so many at once: the local model's one thread, or an
// embeddings endpoint's capacity. They wait in a bounded queue shared fairly between tenants (fair-queue.ts), and
// go out in batches (at most `maxBatch` questions, chosen by `plan`) on at most `concurrency` calls at a time.
// A question that finds the queue full, and no tenant holding more room than its own, is refused at once
// (EmbedderBusyError: a bypass, load rather than a fault). Those that wait are embedded even when their lookup has
// stopped waiting for them, and indexed for later hits.
import type { Context } from '@opentelemetry/api';
import { FairQueue, type BatchPlanner, type Owned } from './fair-queue.js';
import { EmbedderBusyError, type EmbedderLoad } from './embedder.js';

export interface DispatchOptions {
  /** Questions that may wait beside those being embedded. */
  capacity: number;
  /** Calls to the embedder at a time: fixed, or read before each call (adaptive-limit.ts). */
  concurrency: number | { readonly current: number };
  /** Questions per call, at most. */
  maxBatch: number;
  plan: BatchPlanner;
}

/** One waiting question: its texts go out together, in one call. */
export interface Question extends Owned {
  readonly texts: readonly string[];
  /** The asking request's span context, when traced. */
  readonly trace: Context | undefined;
  resolve(vectors: Float32Array[]): void;
  reject(err: Error): void;
}

/**
 * One call: every text of the batch's questions, in order; resolves to one vector per text, in that order.
 * `trace`: the span context of the request asking, for a batch of one question (a batch serves several requests).
 */
export type EmbedCall = (texts: string[], trace: Context | undefined) => Promise<Float32Array[]>;

export class FairDispatcher {
  private readonly queue: FairQueue<Question>;
  private running = 0;
  private closedWith: Error | undefined;

  constructor(
    private readonly opts: DispatchOptions,
    private readonly call: EmbedCall,
  ) {
    this.queue = new FairQueue<Question>(opts.capacity);
  }

  /** Queues `texts` as one question of `owner`'s; rejects at once when refused or closed. */
  ask(texts: readonly string[], owner: string, lengthClass: number, trace?: Context): Promise<Float32Array[]> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise<Float32Array[]>((resolve, reject) => {
      this.queue.offer({ texts, owner, lengthClass, trace, resolve, reject })?.reject(new EmbedderBusyError(this.opts.capacity));
      this.pump();
    });
  }

  private limit(): number {
    const c = this.opts.concurrency;
    return typeof c === 'number' ? c : c.current;
  }

  private pump(): void {
    while (this.running < this.limit() && this.queue.length > 0 && !this.closedWith) {
      const batch = this.queue.take(this.opts.maxBatch, this.opts.plan);
      this.running++;
      let made: Promise<Float32Array[]>;
      try {
        made = this.call(
          batch.flatMap((q) => q.texts),
          batch.length === 1 ? batch[0]?.trace : undefined,
        );
      } catch (err) {
        made = Promise.reject(err as Error);
      }
      made
        .then(
          (vectors) => {
            let at = 0;
            for (const q of batch) q.resolve(vectors.slice(at, (at += q.texts.length)));
          },
          (err: Error) => batch.forEach((q) => q.reject(err)),
        )
        .finally(() => {
          this.running--;
          this.pump();
        });
    }
  }

  load(): EmbedderLoad {
    return { limit: this.limit(), inFlight: this.running, waiting: this.queue.length };
  }

  /** Refuses every waiting question and any later one with `err`; calls under way settle on their own. */
  close(err: Error): void {
    this.closedWith = err;
    for (const q of this.queue.drain()) q.reject(err);
  }
}
