// The SSE parser on its own (src/llm/sse-parser.ts), for what the recorded streams in usage-extraction.test.ts
// never hold: a CR that ends one chunk, fields without a colon, fields other than data and event, and the exact
// bound of an event. Each case pushes the pieces in order and records what was dispatched before end() and after.
import { describe, expect, it } from 'vitest';
import { SseParser, type SseEvent } from '../../src/llm/sse-parser.js';

function parse(pieces: ReadonlyArray<string | Buffer>, maxEventBytes?: number, onDropped?: () => void): { beforeEnd: SseEvent[]; all: SseEvent[] } {
  const events: SseEvent[] = [];
  const p = new SseParser((e) => events.push(e), maxEventBytes, onDropped);
  for (const piece of pieces) p.push(typeof piece === 'string' ? Buffer.from(piece) : piece);
  const beforeEnd = [...events];
  p.end();
  return { beforeEnd, all: events };
}

const message = (data: string, type = 'message'): SseEvent => ({ type, data });

describe('SseParser: a CR at the end of a chunk', () => {
  it.each([
    ['its LF in the next chunk ends one line, not two', ['data: a\r', '\ndata: b\r\n\r\n'], [message('a\nb')]],
    ['a CR alone ends the line, and the next chunk starts the next line whole', ['data: a\r', 'data: b\r\r'], [message('a\nb')]],
    ['an empty chunk between the CR and its LF changes nothing', ['data: a\r', '', '\ndata: b\n\n'], [message('a\nb')]],
    ['only the LF right after that CR is skipped: a later chunk starting with LF is a blank line', ['data: a\r', '\ndata: b\n', '\n'], [message('a\nb')]],
    ['CR CR across chunks: the second CR is a blank line', ['data: a\r', '\r'], [message('a')]],
  ] as const)('%s', (_, pieces, events) => {
    const r = parse(pieces);
    // Dispatched by the blank line itself, not only once the body ends.
    expect(r.beforeEnd).toEqual(events);
    expect(r.all).toEqual(events);
  });
});

describe('SseParser: fields', () => {
  it('a line without a colon is a field with an empty value: "data" alone is an empty data line', () => {
    expect(parse(['data\ndata: x\n\n']).all).toEqual([message('\nx')]);
    expect(parse(['data\n\n']).all).toEqual([message('')]);
  });

  it('one space after the colon is dropped, and only one; a comment line is ignored', () => {
    expect(parse(['data:  two\n: a comment with data: in it\ndata:none\n\n']).all).toEqual([message(' two\nnone')]);
  });

  it('id and retry set nothing this parser reports: the event type stays the one named', () => {
    expect(parse(['event: response.completed\nid: 7\nretry: 1000\ndata: {}\n\n']).all).toEqual([message('{}', 'response.completed')]);
  });

  it('the event type is reset after each event', () => {
    expect(parse(['event: a\ndata: 1\n\ndata: 2\n\n']).all).toEqual([message('1', 'a'), message('2')]);
  });

  it('a last event without its blank line is dispatched at the end, even cut inside its line', () => {
    const r = parse(['data: {"usage":', '1}']);
    expect(r.beforeEnd).toEqual([]);
    expect(r.all).toEqual([message('{"usage":1}')]);
  });
});

describe('SseParser: a byte order mark', () => {
  const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
  it.each([
    ['before the first line is dropped', [Buffer.concat([BOM, Buffer.from('data: a\n\n')])], [message('a')]],
    ['cut across chunks, byte by byte, it is dropped all the same', [BOM.subarray(0, 1), BOM.subarray(1, 2), BOM.subarray(2), 'event: e\ndata: a\n\n'], [message('a', 'e')]],
    ['before a first blank line it is that blank line', [Buffer.concat([BOM, Buffer.from('\ndata: a\n\n')])], [message('a')]],
    ['only one is dropped: a second is part of the field name', [Buffer.concat([BOM, BOM, Buffer.from('data: a\n\ndata: b\n\n')])], [message('b')]],
    ['one at the start of a later line is part of its field name', [Buffer.concat([Buffer.from('data: a\n'), BOM, Buffer.from('data: b\n\n')])], [message('a')]],
  ] as const)('%s', (_, pieces, events) => {
    expect(parse(pieces).beforeEnd).toEqual(events);
  });
});

describe('SseParser: the event bound', () => {
  // "data: abcd" is 10 bytes; line ends are not counted.
  it('an event of exactly maxEventBytes is kept; one byte more is dropped whole, and the next event is read', () => {
    expect(parse(['data: abcd\n\n'], 10).all).toEqual([message('abcd')]);
    let dropped = 0;
    expect(parse(['data: abcde\n\ndata: ok\n\n'], 10, () => dropped++).all).toEqual([message('ok')]);
    expect(dropped).toBe(1);
  });

  it('a parser without onDropped drops quietly, also when the event is cut across chunks', () => {
    expect(parse(['data: abc', 'defgh\n', '\ndata: ok\n\n'], 10).all).toEqual([message('ok')]);
  });
});
