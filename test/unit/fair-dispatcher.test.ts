// The dispatcher between waiting questions and an embedder that takes only so many calls at once
// (src/cache/embedders/fair-dispatcher.ts): how a call's vectors go back to its questions, what a call that
// fails or throws does, closing, and a concurrency read before each call. The tenant fairness of the queue it
// holds is in fair-queue.test.ts; its use by the endpoint embedder in openai-embedder.test.ts.
import { ROOT_CONTEXT, createContextKey } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { takeBatch } from '../../src/cache/embedders/batch-plan.js';
import { EmbedderBusyError } from '../../src/cache/embedders/embedder.js';
import { FairDispatcher, type EmbedCall } from '../../src/cache/embedders/fair-dispatcher.js';

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
