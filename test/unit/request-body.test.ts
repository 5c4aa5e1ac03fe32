// The request body as each of Envoy's body modes delivers it (src/pipeline/request-body.ts): when the pipeline
// gets it whole, what each piece is answered with, the limit, and whether the last answer carries the body.
// The integration suites (body-end, request-encoding, full-duplex) drive it through the transport.
import { describe, expect, it } from 'vitest';
import { CONTINUE } from '../../src/extproc/types.js';
import { RequestBody, TOO_LARGE, UNSEEN_REST } from '../../src/pipeline/request-body.js';

const b = (s: string) => Buffer.from(s);

describe('RequestBody', () => {
  it('STREAMED, as Envoy says: marked, so the request is refused on its headers (the route is chosen before the body comes)', () => {
    expect(new RequestBody('STREAMED', 100).streamed).toBe(true);
    for (const mode of [undefined, 'BUFFERED', 'BUFFERED_PARTIAL', 'FULL_DUPLEX_STREAMED', 'NONE'] as const) expect(new RequestBody(mode, 100).streamed, String(mode)).toBe(false);
  });

  // An Envoy older than 1.34 does not say how it streams: its pieces go on unchanged, so the last answer must not
  // carry a body (the pieces before it were already sent; a whole body after them would send it twice).
  it('a mode Envoy did not name: pieces pass unchanged, and the last answer never carries the body', () => {
    const body = new RequestBody(undefined, 100);
    expect(body.push(b('{"a":'), false)).toBe(CONTINUE);
    expect(body.push(b('1}'), true)).toEqual(b('{"a":1}'));
    expect([body.replaced(false), body.replaced(true)]).toEqual([false, false]);
    // One piece, the whole body: replaced only when changed.
    const one = new RequestBody(undefined, 100);
    one.push(b('{}'), true);
    expect([one.replaced(false), one.replaced(true)]).toEqual([false, true]);
  });

  it('BUFFERED: one message is the whole body even without end_of_stream (trailers follow)', () => {
    const body = new RequestBody('BUFFERED', 100);
    expect(body.push(b('{"a":1}'), false)).toEqual(b('{"a":1}'));
    expect([body.open, body.replaced(false), body.replaced(true)]).toEqual([false, false, true]);
  });

  it('BUFFERED_PARTIAL: a message without end_of_stream is a body larger than Envoy buffers', () => {
    expect(new RequestBody('BUFFERED_PARTIAL', 100).push(b('{"a":'), false)).toBe(UNSEEN_REST);
  });

  it('FULL_DUPLEX_STREAMED: pieces need no answer of their own; the last carries the body only when it changed', () => {
    const body = new RequestBody('FULL_DUPLEX_STREAMED', 100);
    expect([body.duplex, body.push(b('{"a":'), false), body.open]).toEqual([true, CONTINUE, true]);
    expect(body.push(b('1}'), true)).toEqual(b('{"a":1}'));
    expect([body.replaced(false), body.replaced(true)]).toEqual([false, true]);
  });

  it('the limit is the most a body may be: at it, taken; one byte over, too large', () => {
    expect(new RequestBody(undefined, 4).push(b('{"a"'), true)).toEqual(b('{"a"'));
    const over = new RequestBody(undefined, 4);
    expect(over.push(b('{"'), false)).toBe(CONTINUE);
    expect(over.push(b('a":'), true)).toBe(TOO_LARGE);
  });
});
