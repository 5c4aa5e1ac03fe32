// The transport loop with an in-memory call: answers in order whether a handler answers at once or later, a
// failure in writing never escapes into grpc-js' emitter, and a finished stream lets go of its handler.
import { EventEmitter } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { createProcessHandler, type TransportOptions } from '../../src/extproc/process-stream.js';
import { CONTINUE, type Decision, type StreamHandler } from '../../src/extproc/types.js';
import { extProcServiceDefinition } from '../../src/extproc/protos.js';
import type { Answer, WireProcessingRequest, WireProcessingResponse } from '../../src/extproc/wire.js';

// Most answers reach the call already serialised (answer-writer.ts): read them back as Envoy would.
const deserialize = (extProcServiceDefinition().Process as unknown as { responseDeserialize: (b: Buffer) => WireProcessingResponse }).responseDeserialize;

class FakeCall extends EventEmitter {
  cancelled = false;
  destroyed = false;
  ended = false;
  written: WireProcessingResponse[] = [];
  failWrites = false;
  write(answer: Answer): boolean {
    if (this.failWrites) throw new Error('write after destroy');
    this.written.push(Buffer.isBuffer(answer) ? deserialize(answer) : answer);
    return true;
  }
  end(): void {
    this.ended = true;
  }
}

function harness(handler: Partial<StreamHandler>, track?: (h: StreamHandler) => void, options: Partial<TransportOptions> = {}) {
  const events: string[] = [];
  /** Each answered message's phase and the seconds its answer took, as the hook reported them. */
  const timings: Array<[string, number]> = [];
  const opts: TransportOptions = {
    allowModeOverride: () => false,
    failureRule: () => 'reply',
    internalErrorReply: () => CONTINUE,
    hooks: {
      streamStarted: () => events.push('started'),
      streamEnded: (r) => events.push(`ended:${r}`),
      answered: (k, seconds) => {
        events.push(`answered:${k}`);
        timings.push([k, seconds]);
      },
      processingError: (k, err) => events.push(`error:${k}:${(err as Error).message}`),
    },
    ...options,
  };
  const pass = () => CONTINUE;
  // A new handler per stream, as the app's factory makes, so that only the stream loop refers to it.
  const factory = (): StreamHandler => {
    const h: StreamHandler = { requestHeaders: pass, requestBody: pass, requestTrailers: pass, responseHeaders: pass, responseBody: pass, responseTrailers: pass, end() {}, ...handler };
    track?.(h);
    return h;
  };
  const call = new FakeCall();
  createProcessHandler(factory, opts)(call as never);
  return { call, events, timings };
}

const headers = (kind: 'request_headers' | 'response_headers', last = false): WireProcessingRequest => ({ request: kind, [kind]: { headers: { headers: [] }, end_of_stream: last } }) as WireProcessingRequest;
const body = (n: number, last = false): WireProcessingRequest => ({ request: 'response_body', response_body: { body: Buffer.from(String(n)), end_of_stream: last } });

describe('stream loop', () => {
  it('answers pipelined messages first in, first out when some answers come later than others', async () => {
    let i = 0;
    const { call } = harness({
      responseBody: (chunk): Decision | Promise<Decision> => {
        const d: Decision = { kind: 'continue', headers: { set: [['x-n', chunk.toString()]] } };
        // Every other chunk is answered after a delay: a later, synchronous answer must not overtake it.
        return i++ % 2 === 0 ? new Promise((r) => setTimeout(() => r(d), 5)) : d;
      },
    });
    for (let n = 0; n < 6; n++) call.emit('data', body(n, n === 5));
    expect(call.written).toHaveLength(0); // the first answer is pending, so nothing may be written yet
    await expect.poll(() => call.written.length).toBe(6);
    expect(call.written.map((w) => w.response_body?.response?.header_mutation?.set_headers?.[0]?.header.raw_value?.toString())).toEqual(['0', '1', '2', '3', '4', '5']);
  });

  it('writes a synchronous answer inside the data callback', () => {
    const { call } = harness({});
    call.emit('data', body(1));
    expect(call.written).toHaveLength(1);
  });

  it('a write that throws ends the call with an error status instead of escaping into grpc-js', async () => {
    const { call, events } = harness({});
    const statuses: unknown[] = [];
    call.on('error', (s) => statuses.push(s));
    call.failWrites = true;
    expect(() => call.emit('data', body(1))).not.toThrow();
    expect(statuses).toEqual([{ code: 13, details: 'ext_proc stream failed' }]);
    expect(events).toContain('error:unknown:write after destroy');
    expect(events.at(-1)).toBe('ended:error');
    // Nothing more is answered on the broken stream.
    call.failWrites = false;
    call.emit('data', body(2));
    expect(call.written).toHaveLength(0);
  });

  it('the same for an answer that came later', async () => {
    const { call, events } = harness({ responseBody: () => new Promise<Decision>((r) => setTimeout(() => r(CONTINUE), 5)) });
    call.on('error', () => undefined);
    call.failWrites = true;
    call.emit('data', body(1));
    await expect.poll(() => events.at(-1)).toBe('ended:error');
  });

  it('a handler whose end throws: counted as a processing error, and the stream still ends', () => {
    const { call, events } = harness({
      end: () => {
        throw new Error('end failed');
      },
    });
    call.emit('data', body(1));
    expect(() => call.emit('cancelled')).not.toThrow();
    expect(events.slice(-2)).toEqual(['error:unknown:end failed', 'ended:cancelled']);
  });

  it('observability mode: a failing handler is counted, and still nothing is answered (Envoy ignores answers, §9)', async () => {
    const { call, events } = harness({
      responseBody: () => {
        throw new Error('boom');
      },
      responseHeaders: () => Promise.reject(new Error('later boom')),
    });
    const observed = (m: WireProcessingRequest): WireProcessingRequest => ({ ...m, observability_mode: true });
    call.emit('data', observed(headers('response_headers')));
    call.emit('data', observed(body(1)));
    await expect.poll(() => events.filter((e) => e.startsWith('error:')).length).toBe(2);
    expect(events.filter((e) => e.startsWith('error:'))).toEqual(['error:response_headers:later boom', 'error:response_body:boom']);
    expect(call.written).toEqual([]);
  });

  it('an answer that comes after Envoy reset the stream is not written, and nothing throws', async () => {
    let answer: (d: Decision) => void = () => undefined;
    const { call, events } = harness({ responseBody: () => new Promise<Decision>((r) => (answer = r)) });
    call.emit('data', body(1));
    call.cancelled = true;
    call.emit('cancelled');
    answer(CONTINUE);
    await new Promise((r) => setImmediate(r));
    expect(call.written).toEqual([]);
    expect(events.filter((e) => e.startsWith('answered') || e.startsWith('error'))).toEqual([]);
    expect(events.at(-1)).toBe('ended:cancelled');
  });

  it('a finished stream lets go of its handler, though the call and its listeners may live on', async () => {
    // grpc-js calls (with their listeners, and so the stream loop) can outlive the stream until a full GC
    // (docs/performance.md "Reading the numbers"): whatever the loop still refers to is copied by every young
    // collection.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const handlers: Array<WeakRef<StreamHandler>> = [];
    const track = (h: StreamHandler) => handlers.push(new WeakRef(h));
    const done = harness({}, track);
    const open = harness({}, track);
    done.call.emit('data', body(1));
    open.call.emit('data', body(1));
    done.call.emit('cancelled');
    expect(done.events.at(-1)).toBe('ended:cancelled');
    // A WeakRef keeps its target until the current job ends; collect in a later one.
    await new Promise((r) => setImmediate(r));
    gc();
    expect(done.call.listenerCount('data')).toBe(1); // the finished stream's call still holds the loop...
    expect(handlers[0]?.deref()).toBeUndefined(); // ...but no longer its handler
    expect(handlers[1]?.deref()).toBeDefined(); // the control: a stream still open keeps its handler
  });

  it("after the failure rule's 500, nothing more on the stream is processed or answered (Envoy sends nothing after an immediate response, §7)", () => {
    const calls: string[] = [];
    const internalError: Decision = { kind: 'reply', status: 500, body: Buffer.from('{"error":{}}'), headers: [], details: 'tiergate_internal_error' };
    const { call, events } = harness(
      {
        requestHeaders: () => {
          throw new Error('headers broke');
        },
        requestBody: () => {
          calls.push('body');
          return CONTINUE;
        },
      },
      undefined,
      { internalErrorReply: () => internalError },
    );
    call.emit('data', headers('request_headers'));
    // A body chunk already on its way (pipelined before the headers answer arrived).
    call.emit('data', { request: 'request_body', request_body: { body: Buffer.from('{}'), end_of_stream: true } });
    expect(call.written).toHaveLength(1);
    expect(call.written[0]?.immediate_response?.status?.code).toBeDefined();
    expect(calls).toEqual([]);
    expect(events.filter((e) => e.startsWith('error:'))).toEqual(['error:request_headers:headers broke']);
  });

  it('a half-close while an answer is pending: the answer is written first, then the call ends with OK (§2.6)', async () => {
    let answer: (d: Decision) => void = () => undefined;
    const { call, events } = harness({ responseBody: () => new Promise<Decision>((r) => (answer = r)) });
    call.emit('data', body(1, true));
    call.emit('end');
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(call.ended).toBe(false); // the answer is still owed
    answer(CONTINUE);
    await expect.poll(() => call.ended).toBe(true);
    expect(call.written).toHaveLength(1);
    expect(events.at(-1)).toBe('ended:half-closed');
  });

  it('reports the time to each answer in seconds, per phase', async () => {
    const { call, timings } = harness({ responseBody: () => new Promise<Decision>((r) => setTimeout(() => r(CONTINUE), 20)) });
    call.emit('data', headers('response_headers'));
    call.emit('data', body(1, true));
    await expect.poll(() => timings.length).toBe(2);
    expect(timings.map(([k]) => k)).toEqual(['response_headers', 'response_body']);
    const bodySeconds = timings[1]?.[1] as number;
    // Units, not speed: an answer held 20 ms is some hundredths of a second (in milliseconds it would be ≥ 20).
    expect(bodySeconds).toBeGreaterThanOrEqual(0.01);
    expect(bodySeconds).toBeLessThan(10);
  });

  it('no mode_override is sent on a stream with a duplex body direction, even where Envoy allows them (§10)', () => {
    const override: Decision = { kind: 'continue', modeOverride: { responseBodyMode: 'BUFFERED' } };
    const headersOf = (protocol?: WireProcessingRequest['protocol_config']) => {
      const { call } = harness({ responseHeaders: () => override }, undefined, { allowModeOverride: () => true });
      call.emit('data', { ...headers('response_headers'), ...(protocol ? { protocol_config: protocol } : {}) });
      return call.written[0]?.mode_override;
    };
    // The control: the same stream without duplex gets its override.
    expect(headersOf()).toMatchObject({ response_body_mode: 'BUFFERED' });
    expect(headersOf({ request_body_mode: 'FULL_DUPLEX_STREAMED', response_body_mode: 'NONE' })).toBeUndefined();
  });

  it('a handler without replyHeaders: its own reply goes out as it made it', () => {
    const refusal: Decision = { kind: 'reply', status: 401, body: Buffer.from('{"error":{}}'), headers: [['content-type', 'application/json']], details: 'tiergate_unauthenticated' };
    const { call, events } = harness({ requestHeaders: () => refusal });
    call.emit('data', headers('request_headers', true));
    expect(call.written).toHaveLength(1);
    expect(call.written[0]?.immediate_response?.details).toBe('tiergate_unauthenticated');
    expect(events.filter((e) => e.startsWith('error:'))).toEqual([]);
  });
});
