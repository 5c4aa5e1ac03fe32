// An answer that waits on an asynchronous admission (a remote budget store) may be decided after its stream
// ended: Envoy gave up waiting (its message timeout) or the client left. Then nobody reads the answer, the
// request never reaches a backend, and its ledger row went out at the end without this admission, so whatever
// the admission reserved is released as soon as it lands, rather than held against the tenant until it expires
// (budgets.reservationTtlMs). The request itself still counts against requests per minute: it arrived.
import type { Admission } from '../budget/budgets.js';
import { CONTINUE, type Decision } from '../extproc/types.js';

export class AdmissionWait {
  private waiting = false;
  private ended = false;

  constructor(
    /** The admission the request holds now, if any. */
    private readonly admission: () => Admission | undefined,
    /** Frees an admission whose stream is gone. */
    private readonly release: (a: Admission) => void,
  ) {}

  /** An admission is still running: the row written at the stream's end must leave it to this wait. */
  get pending(): boolean {
    return this.waiting;
  }

  streamEnded(): void {
    this.ended = true;
  }

  /** `decide`'s answer once `pending` settles; CONTINUE, answering nobody, if the stream ended first. */
  decide<T>(pending: Promise<T>, decide: (o: T) => Decision | Promise<Decision>): Promise<Decision> {
    this.waiting = true;
    const settled = () => {
      this.waiting = false;
      const late = this.ended ? this.admission() : undefined;
      if (late) this.release(late);
    };
    return pending.then(
      (o) => {
        settled();
        return this.ended ? CONTINUE : decide(o);
      },
      (err: unknown) => {
        settled();
        throw err;
      },
    );
  }
}
