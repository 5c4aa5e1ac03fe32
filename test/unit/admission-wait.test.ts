// The wait on an asynchronous admission (src/pipeline/admission-wait.ts) on its own: what it answers, and what it
// releases, when the stream is still there as the admission lands and when it has already ended. The budgets
// suite holds it end to end with a Redis store (a late admission's reservation released at once); this holds each
// case of it, which that suite reaches only in part.
import { describe, expect, it } from 'vitest';
import type { Admission } from '../../src/budget/budgets.js';
import { CONTINUE, type Decision } from '../../src/extproc/types.js';
import { AdmissionWait } from '../../src/pipeline/admission-wait.js';

const REPLY: Decision = { kind: 'reply', status: 429, headers: [], body: Buffer.from('{}'), details: 'x' };
const admission = { id: 'a1' } as Admission;

/** A wait whose admission is `held` (settable), recording what it released. */
function waitWith(held: Admission | undefined) {
  const released: Admission[] = [];
  const state = { held };
  const wait = new AdmissionWait(
    () => state.held,
    (a) => released.push(a),
  );
  return { wait, released, state };
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

describe('AdmissionWait', () => {
  it('is pending while the admission runs, and not once it has landed', async () => {
    const { wait } = waitWith(admission);
    expect(wait.pending).toBe(false);
    const d = deferred<string>();
    const answer = wait.decide(d.promise, () => REPLY);
    expect(wait.pending).toBe(true);
    d.resolve('admitted');
    await answer;
    expect(wait.pending).toBe(false);
  });

  it('with the stream still there: decides on what the admission said, and releases nothing', async () => {
    const { wait, released } = waitWith(admission);
    const seen: string[] = [];
    const answer = await wait.decide(Promise.resolve('refused'), (o) => {
      seen.push(o);
      return REPLY;
    });
    expect([answer, seen, released]).toEqual([REPLY, ['refused'], []]);
    // An asynchronous decision is waited for.
    expect(await wait.decide(Promise.resolve('x'), async () => REPLY)).toBe(REPLY);
  });

  it('with the stream gone before it landed: answers CONTINUE, to nobody, without deciding, and frees what it holds', async () => {
    const { wait, released } = waitWith(admission);
    const d = deferred<string>();
    let decided = false;
    const answer = wait.decide(d.promise, () => {
      decided = true;
      return REPLY;
    });
    wait.streamEnded();
    d.resolve('admitted');
    expect(await answer).toBe(CONTINUE);
    expect([decided, released, wait.pending]).toEqual([false, [admission], false]);
  });

  it('with the stream gone and nothing admitted (refused, or no limit): nothing to free', async () => {
    const { wait, released } = waitWith(undefined);
    wait.streamEnded();
    expect(await wait.decide(Promise.resolve('refused'), () => REPLY)).toBe(CONTINUE);
    expect(released).toEqual([]);
  });

  it('with the stream ended after it landed: the stream\'s own end deals with the admission, not the wait', async () => {
    const { wait, released } = waitWith(admission);
    await wait.decide(Promise.resolve('admitted'), () => REPLY);
    wait.streamEnded();
    expect(released).toEqual([]);
  });

  it('an admission that fails: the error goes on, the wait is over, and a stream already gone frees what it holds', async () => {
    const live = waitWith(admission);
    await expect(live.wait.decide(Promise.reject(new Error('store down')), () => REPLY)).rejects.toThrow('store down');
    expect([live.wait.pending, live.released]).toEqual([false, []]);

    const gone = waitWith(admission);
    const d = deferred<string>();
    const answer = gone.wait.decide(d.promise, () => REPLY);
    gone.wait.streamEnded();
    d.reject(new Error('store down'));
    await expect(answer).rejects.toThrow('store down');
    expect([gone.wait.pending, gone.released]).toEqual([false, [admission]]);
  });
});
