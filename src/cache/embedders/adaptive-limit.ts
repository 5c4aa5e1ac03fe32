// How many POSTs the embeddings endpoint is sent at a time: found by watching its answers, additive increase and
// multiplicative decrease as TCP finds a link's rate. The endpoint's own capacity is not known here (a GPU server
// embeds thousands of questions a second, a CPU one a few hundred), and a fixed bound above it helps nothing: the
// endpoint queues what it cannot start, every question waits there past the timeout, and the timeouts turn the
// semantic cache off for every tenant (`npm run bench:endpoint-embedder`). So:
// - an answer raises the limit by one per limit's worth of answers, up to the configured most;
// - a timeout, or an endpoint saying it is overloaded (429, 503), halves it, at most once per timeout: the calls
//   already under way when it was cut were sent under the old limit, and their timeouts say nothing new.
// Raising only on answers well inside the timeout was tried: the bench measured no difference, and an endpoint
// that always answers in more than that share of its timeout (a hosted API) would never win back a cut.

export class AdaptiveLimit {
  private value: number;
  private cutAt = -Infinity;

  constructor(
    private readonly max: number,
    private readonly timeoutMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.value = max;
  }

  /** Calls allowed at a time now: at least one. */
  get current(): number {
    return Math.floor(this.value);
  }

  /** A call was answered (in time: a late one is a timeout). */
  answered(): void {
    if (this.value < this.max) this.value = Math.min(this.max, this.value + 1 / this.value);
  }

  /** A call timed out, or the endpoint said it is overloaded. */
  overloaded(): void {
    const t = this.now();
    if (t - this.cutAt < this.timeoutMs) return;
    this.cutAt = t;
    this.value = Math.max(1, this.value / 2);
  }
}
