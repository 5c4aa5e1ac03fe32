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
  /** The clock calls are timed by, in ms (tests give a fake one). */
  now?: () => number;
}

/**
 * Answered calls whose pace soonestMs goes by: enough that one call slowed by the machine does not set it, few
 * enough that a machine grown slower is followed within a few seconds of load.
 */
export const PACE_CALLS = 32;

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
  private closedWith: Error | undefined;
  /** Calls under way (their number is what `concurrency` bounds): when each started and how many texts it carries. */
  private readonly underWay = new Set<{ readonly started: number; readonly texts: number }>();
  /** The last PACE_CALLS answered calls: how long each took and how many texts it carried. */
  private readonly paces: Array<{ readonly ms: number; readonly texts: number }> = [];
  private readonly now: () => number;

  constructor(
    private readonly opts: DispatchOptions,
    private readonly call: EmbedCall,
  ) {
    this.queue = new FairQueue<Question>(opts.capacity);
    this.now = opts.now ?? (() => performance.now());
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
    while (this.underWay.size < this.limit() && this.queue.length > 0 && !this.closedWith) {
      const batch = this.queue.take(this.opts.maxBatch, this.opts.plan);
      const texts = batch.flatMap((q) => q.texts);
      const timed = { started: this.now(), texts: texts.length };
      this.underWay.add(timed);
      let made: Promise<Float32Array[]>;
      try {
        made = this.call(texts, batch.length === 1 ? batch[0]?.trace : undefined);
      } catch (err) {
        made = Promise.reject(err as Error);
      }
      made
        .then(
          (vectors) => {
            // Only answers set the pace: a call that fails may fail at once (a stopped model thread).
            this.paces.push({ ms: this.now() - timed.started, texts: Math.max(1, timed.texts) });
            if (this.paces.length > PACE_CALLS) this.paces.shift();
            let at = 0;
            for (const q of batch) q.resolve(vectors.slice(at, (at += q.texts.length)));
          },
          (err: Error) => batch.forEach((q) => q.reject(err)),
        )
        .finally(() => {
          this.underWay.delete(timed);
          this.pump();
        });
    }
  }

  /**
   * How long, in ms, a question of one text that `owner` asked now would wait for its vector at the least: from
   * the calls under way and the questions waiting, at the pace of the fastest recent calls (the least a call
   * took, and the least per text). Questions asked after it can only delay it (they join its batch, or take their
   * turn before it), so a lookup that gives up on it gives up on a vector it would not have had in time, but for
   * one case: a batch larger than any recent one may cost less per text than they did, and come sooner than
   * foreseen (bench:semantic-burst counts it: none in most runs, 4 of 250 given up in one). 0 until a call has
   * answered.
   */
  soonestMs(owner: string, lengthClass: number): number {
    if (this.paces.length === 0) return 0;
    let perCall = Infinity;
    let perText = Infinity;
    for (const p of this.paces) {
      perCall = Math.min(perCall, p.ms);
      perText = Math.min(perText, p.ms / p.texts);
    }
    const cost = (texts: number) => Math.max(perCall, texts * perText);
    const limit = Math.max(1, this.limit());
    // With every call allowed under way, the first of them to end frees the place this question's call needs.
    let start = 0;
    if (this.underWay.size >= limit) {
      const now = this.now();
      start = Math.min(...[...this.underWay].map((c) => Math.max(0, cost(c.texts) - (now - c.started))));
    }
    // Its tenant's waiting questions of its length class go out in their order, before it or with it: that many
    // texts and its own at least, on at most `limit` calls at a time of at most maxBatch texts each.
    const texts = this.queue.waitingOf(owner, lengthClass) + 1;
    const rounds = Math.ceil(texts / (limit * this.opts.maxBatch));
    return start + Math.max(rounds * perCall, (texts * perText) / limit);
  }

  load(): EmbedderLoad {
    return { limit: this.limit(), inFlight: this.underWay.size, waiting: this.queue.length };
  }

  /** Refuses every waiting question and any later one with `err`; calls under way settle on their own. */
  close(err: Error): void {
    this.closedWith = err;
    for (const q of this.queue.drain()) q.reject(err);
  }
}
