// The dispatcher between waiting questions and an embedder that takes only so many calls at once
// (src/cache/embedders/fair-dispatcher.ts): how a call's vectors go back to its questions, what a call that
// fails or throws does, closing, a concurrency read before each call, and the least wait it foresees for a question
// (soonestMs, which the semantic cache gives up on at once when it is past the lookup's deadline). The tenant fairness of the queue it
// holds is in fair-queue.test.ts; its use by the endpoint embedder in openai-embedder.test.ts.
import { ROOT_CONTEXT, createContextKey } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { takeBatch } from '../../src/cache/embedders/batch-plan.js';
import { EmbedderBusyError } from '../../src/cache/embedders/embedder.js';
import { FairDispatcher, PACE_CALLS, type EmbedCall } from '../../src/cache/embedders/fair-dispatcher.js';

/** A call that waits until `release()`, recording what each call was given; text "n" embeds to [n]. */
function heldCalls() {
  const calls: Array<{ texts: string[]; trace: unknown; release(): void; fail(err: Error): void }> = [];
  const call: EmbedCall = (texts, trace) =>
    new Promise((resolve, reject) => {
      calls.push({ texts, trace, release: () => resolve(texts.map((t) => Float32Array.of(Number(t)))), fail: reject });
    });
  return { calls, call };
}
const values = (vs: Float32Array[]) => vs.map((v) => [...v]);
const flush = () => new Promise((r) => setImmediate(r));

describe('FairDispatcher', () => {
  it("splits a call's vectors among its questions in order; a batch of one question carries its trace, a batch of several none", async () => {
    const { calls, call } = heldCalls();
    const d = new FairDispatcher({ capacity: 8, concurrency: 1, maxBatch: 8, plan: takeBatch }, call);
    const trace = ROOT_CONTEXT.setValue(createContextKey('request'), 'r1');
    const first = d.ask(['1'], 'a', 0, trace);
    // While the first call runs, three questions of two tenants wait; they go out together in the next call.
    const rest = [d.ask(['2', '3'], 'a', 0, trace), d.ask(['4'], 'b', 0, trace), d.ask(['5', '6', '7'], 'a', 0)];
    expect(d.load()).toEqual({ limit: 1, inFlight: 1, waiting: 3 });
    calls[0]?.release();
    expect(values(await first)).toEqual([[1]]);
    await flush();
    expect(calls[0]?.trace).toBe(trace);
    // Fair order: a's oldest, then b's, then a's next.
    expect([calls[1]?.texts, calls[1]?.trace]).toEqual([['2', '3', '4', '5', '6', '7'], undefined]);
    calls[1]?.release();
    expect((await Promise.all(rest)).map(values)).toEqual([[[2], [3]], [[4]], [[5], [6], [7]]]);
  });

  it('a call that fails rejects only its own questions, and the next call goes out', async () => {
    let n = 0;
    const down = new Error('endpoint down');
    const d = new FairDispatcher({ capacity: 8, concurrency: 1, maxBatch: 1, plan: takeBatch }, async (texts) => {
      if (++n === 1) throw down;
      return texts.map(() => Float32Array.of(n));
    });
    const settled = await Promise.allSettled([d.ask(['x'], 'a', 0), d.ask(['y'], 'a', 0)]);
    expect(settled).toEqual([
      { status: 'rejected', reason: down },
      { status: 'fulfilled', value: [Float32Array.of(2)] },
    ]);
    expect(d.load()).toEqual({ limit: 1, inFlight: 0, waiting: 0 });
  });

  it('a call that throws synchronously is a rejection of its batch, not an error out of ask', async () => {
    const d = new FairDispatcher({ capacity: 8, concurrency: 1, maxBatch: 4, plan: takeBatch }, () => {
      throw new Error('not loaded');
    });
    await expect(d.ask(['x'], 'a', 0)).rejects.toThrow('not loaded');
    expect(d.load().inFlight).toBe(0);
  });

  it('a full queue refuses at once with EmbedderBusyError', async () => {
    const { call } = heldCalls();
    const d = new FairDispatcher({ capacity: 1, concurrency: 1, maxBatch: 1, plan: takeBatch }, call);
    void d.ask(['1'], 'a', 0); // in flight
    void d.ask(['2'], 'a', 0); // waits
    await expect(d.ask(['3'], 'a', 0)).rejects.toBeInstanceOf(EmbedderBusyError);
  });

  it('close refuses what waits and every later question at once; a call under way settles on its own', async () => {
    const { calls, call } = heldCalls();
    const d = new FairDispatcher({ capacity: 8, concurrency: 1, maxBatch: 1, plan: takeBatch }, call);
    const running = d.ask(['1'], 'a', 0);
    const waiting = d.ask(['2'], 'b', 0);
    const closed = new Error('embedder closed');
    d.close(closed);
    await expect(waiting).rejects.toBe(closed);
    // Queued instead, it would wait for ever: nothing takes from a closed queue.
    await expect(d.ask(['3'], 'a', 0)).rejects.toBe(closed);
    calls[0]?.release();
    expect(values(await running)).toEqual([[1]]);
    await flush();
    expect(calls).toHaveLength(1);
  });

  it('an adaptive concurrency is read before each call: a limit raised lets the next question go out beside the one running', async () => {
    const { calls, call } = heldCalls();
    const limit = { current: 1 };
    const d = new FairDispatcher({ capacity: 8, concurrency: limit, maxBatch: 1, plan: takeBatch }, call);
    void d.ask(['1'], 'a', 0);
    void d.ask(['2'], 'a', 0);
    expect(d.load()).toEqual({ limit: 1, inFlight: 1, waiting: 1 });
    limit.current = 3;
    void d.ask(['3'], 'a', 0);
    expect(d.load()).toEqual({ limit: 3, inFlight: 3, waiting: 0 });
    expect(calls.map((c) => c.texts)).toEqual([['1'], ['2'], ['3']]);
  });
});

describe('FairDispatcher.soonestMs: the least a question asked now would wait for its vector', () => {
  /** A dispatcher on a fake clock (`at`) whose calls wait until `end(i)` answers the i-th call. */
  function paced(concurrency: number | { current: number } = 1, maxBatch = 32) {
    let t = 0;
    const { calls, call } = heldCalls();
    const d = new FairDispatcher({ capacity: 64, concurrency, maxBatch, plan: takeBatch, now: () => t }, call);
    const end = async (i: number) => {
      calls[i]?.release();
      await flush();
    };
    return { d, calls, end, at: (ms: number) => void (t = ms) };
  }

  it('is 0 until a call has answered: nothing is known of the pace', () => {
    const { d } = paced();
    expect(d.soonestMs('a', 0)).toBe(0);
    void d.ask(['1'], 'a', 0);
    void d.ask(['2'], 'a', 0);
    expect(d.soonestMs('a', 0)).toBe(0);
  });

  it('goes by the least a call took and the least per text: the call under way first, then its tenant\'s waiting questions of its class', async () => {
    const { d, calls, end, at } = paced();
    void d.ask(['1'], 'a', 0);
    at(20);
    await end(0); // one text in 20 ms
    expect(d.soonestMs('a', 0)).toBe(20); // nothing under way: one call, at least 20 ms
    for (const t of ['2', '3', '4', '5']) void d.ask([t], 'b', 0); // 2 goes out alone, 3-5 wait
    at(30);
    await end(1); // one text in 10 ms: now at least 10 a call and 10 a text
    expect(calls[2]?.texts).toEqual(['3', '4', '5']); // under way since 30
    at(36);
    // The call of three texts takes 30 ms at least, 24 more; then this question's own call, 10 at least.
    expect(d.soonestMs('a', 0)).toBe(34);
    void d.ask(['6'], 'a', 0);
    void d.ask(['7'], 'a', 0);
    void d.ask(['8'], 'b', 0);
    void d.ask(['9'], 'a', 1);
    // a's two waiting questions of class 0 go out before it or with it: three texts, 30 ms at least.
    expect(d.soonestMs('a', 0)).toBe(24 + 30);
    // Another class, or another tenant, is not held up by them (its turn or its class may come first).
    expect(d.soonestMs('a', 1)).toBe(24 + 20);
    expect(d.soonestMs('c', 0)).toBe(24 + 10);
    // Past its least, the call under way may end at any moment.
    at(80);
    expect(d.soonestMs('c', 0)).toBe(10);
  });

  it('a batch costs less a text than a call of one: waiting questions that fit one call cost their texts at the batch pace', async () => {
    const { d, calls, end, at } = paced();
    void d.ask(['1'], 'a', 0);
    for (const t of ['2', '3', '4', '5']) void d.ask([t], 'b', 0);
    at(10);
    await end(0); // one text in 10 ms; the four waiting go out together
    expect(calls[1]?.texts).toEqual(['2', '3', '4', '5']);
    at(30);
    await end(1); // four texts in 20 ms: 5 a text
    for (const t of ['6', '7', '8']) void d.ask([t], 'a', 0); // 6 goes out, 7 and 8 wait
    at(50); // past the least of 6's call (10 ms): it may end at any moment
    // Three texts of a's in one call of up to 32: 15 ms at the batch pace, but no call takes less than 10.
    expect(d.soonestMs('a', 0)).toBe(15);
    void d.ask(['9'], 'a', 0);
    expect(d.soonestMs('a', 0)).toBe(20);
  });

  it('with places for several calls: a free place starts at once, and waiting questions spread over the places', async () => {
    const { d, end, at } = paced(2, 1);
    void d.ask(['1'], 'a', 0);
    at(10);
    await end(0); // at least 10 a call, 10 a text
    void d.ask(['2'], 'a', 0); // under way since 10; a place is free
    expect(d.soonestMs('a', 0)).toBe(10);
    void d.ask(['3'], 'b', 0); // both places taken
    at(14);
    expect(d.soonestMs('a', 0)).toBe(6 + 10);
    for (const t of ['4', '5', '6']) void d.ask([t], 'a', 0);
    // Four texts of a's (three waiting and its own), one a call, two calls at a time: two rounds of 10 at least.
    expect(d.soonestMs('a', 0)).toBe(6 + 20);
  });

  it('a call that fails sets no pace: it may fail at once (a model thread that stopped)', async () => {
    const { d, calls, end, at } = paced();
    const failed = d.ask(['1'], 'a', 0);
    calls[0]?.fail(new Error('stopped'));
    await expect(failed).rejects.toThrow('stopped');
    expect(d.soonestMs('a', 0)).toBe(0);
    void d.ask(['2'], 'a', 0);
    at(30);
    await end(1);
    expect(d.soonestMs('a', 0)).toBe(30);
  });

  it(`goes by the last ${PACE_CALLS} answered calls only, so a machine grown slower is followed`, async () => {
    const { d, end, at } = paced();
    let t = 0;
    const call = async (ms: number, i: number) => {
      void d.ask([String(i)], 'a', 0);
      at((t += ms));
      await end(i);
    };
    await call(5, 0);
    for (let i = 1; i < PACE_CALLS; i++) await call(50, i);
    expect(d.soonestMs('a', 0)).toBe(5);
    await call(50, PACE_CALLS);
    expect(d.soonestMs('a', 0)).toBe(50);
  });
});
