// The forced usage chunk taken back out of a stream: against the recorded OpenAI streams, cut at every byte
// offset, into single bytes and with CRLF / CR line ends, the bytes sent must be the stream without its usage
// event, every other byte as the backend sent it. The expected text is made a different way (the whole body
// split at its blank lines), so the incremental framing is checked against an independent reading.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ForcedUsageFilter, MAX_HELD_BYTES } from '../../src/usage/forced-usage-filter.js';
import { FIXTURES } from '../helpers/shared-data.js';

const WITH_USAGE = ['chat-streaming-detailed-usage.response.sse', 'completion-streaming-usage.response.sse'];
const WITHOUT_USAGE = ['chat-streaming.response.sse', 'chat-streaming-web-search.response.sse', 'completion-streaming.response.sse'];

/** What the client should get: every event except the usage-only one, found by parsing the whole body. */
function withoutUsageEvent(body: string, eol: string): string {
  const sep = eol + eol;
  return body
    .split(sep)
    .filter((ev) => {
      const data = ev.split(eol).filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      if (!data.startsWith('{')) return true;
      const o = JSON.parse(data) as { choices?: unknown[]; usage?: unknown };
      return !(Array.isArray(o.choices) && o.choices.length === 0 && o.usage);
    })
    .join(sep);
}

/** Feeds the pieces as Envoy would (the last one ends the body) and returns what goes to the client. */
function run(pieces: readonly Buffer[], filter = new ForcedUsageFilter()): { out: Buffer; replaced: number } {
  const sent: Buffer[] = [];
  let replaced = 0;
  pieces.forEach((p, i) => {
    const r = filter.push(p, i === pieces.length - 1);
    if (r) replaced++;
    sent.push(r ?? p);
  });
  return { out: Buffer.concat(sent), replaced };
}

const lineEnds = [
  ['LF', '\n'],
  ['CRLF', '\r\n'],
  ['CR', '\r'],
] as const;

describe('forced usage chunk: recorded streams', () => {
  for (const file of WITH_USAGE) {
    const lf = readFileSync(join(FIXTURES, file), 'utf8');
    for (const [name, eol] of lineEnds) {
      const body = Buffer.from(lf.replaceAll('\n', eol));
      const expected = withoutUsageEvent(body.toString(), eol);

      it(`${file} (${name}): the usage event is gone, nothing else changed`, () => {
        expect(expected.length).toBeLessThan(body.length);
        expect(expected).not.toContain('"usage":{');
        expect(expected.endsWith(`data: [DONE]${eol}${eol}`)).toBe(true);
        const filter = new ForcedUsageFilter();
        expect(run([body], filter).out.toString()).toBe(expected);
        expect(filter.removed).toBe(1);
      });

      it(`${file} (${name}): the same bytes whatever the cut, with Envoy's empty last chunk`, () => {
        for (let i = 1; i < body.length; i++) {
          const got = run([body.subarray(0, i), body.subarray(i), Buffer.alloc(0)]).out.toString();
          if (got !== expected) expect({ offset: i, got }).toEqual({ offset: i, got: expected });
        }
        const bytes = [...body].map((b) => Buffer.from([b]));
        expect(run([...bytes, Buffer.alloc(0)]).out.toString()).toBe(expected);
      });
    }
  }

  for (const file of WITHOUT_USAGE) {
    it(`${file}: a stream without a usage event passes byte for byte, and chunks cut at events are never replaced`, () => {
      const body = readFileSync(join(FIXTURES, file));
      const events = body.toString().split(/(?<=\n\n)/).map((e) => Buffer.from(e));
      const aligned = run([...events, Buffer.alloc(0)]);
      expect(aligned.out.equals(body)).toBe(true);
      expect(aligned.replaced).toBe(0);
      for (let i = 1; i < body.length; i += 97) expect(run([body.subarray(0, i), body.subarray(i)]).out.equals(body)).toBe(true);
    });
  }
});

describe('forced usage chunk: what is and is not the usage event', () => {
  const ev = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
  const content = (text: string) => ev({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: text } }], usage: null });

  it('keeps text that spells a usage chunk inside a delta, and usage reported beside non-empty choices', () => {
    const body = content('{"choices": [], "usage": {"total_tokens": 1}}') + ev({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: { total_tokens: 3 } }) + 'data: [DONE]\n\n';
    const filter = new ForcedUsageFilter();
    expect(filter.push(Buffer.from(body), true)).toBeUndefined();
    expect(filter.removed).toBe(0);
  });

  it('takes out a usage event with data split over two lines, and one with no blank line at the very end', () => {
    const split = 'data: {"choices": [],\ndata:  "usage": {"total_tokens": 7}}\n\n';
    expect(run([Buffer.from(content('a') + split + 'data: [DONE]\n\n')]).out.toString()).toBe(content('a') + 'data: [DONE]\n\n');
    const unterminated = content('a') + ev({ choices: [], usage: { total_tokens: 7 } }).trimEnd();
    expect(run([Buffer.from(unterminated)]).out.toString()).toBe(content('a'));
  });

  it("a body whose last event lacks its blank line loses nothing, whether the last chunk holds it or is Envoy's empty one", () => {
    // Servers that end with `data: [DONE]\n` (one newline) are common; the event is held until the body ends.
    const body = content('a') + 'data: [DONE]\n';
    expect(run([Buffer.from(body)]).out.toString()).toBe(body);
    const cuts = [content('a') + 'data: [DO', 'NE]\n'];
    expect(run([...cuts.map((c) => Buffer.from(c)), Buffer.alloc(0)]).out.toString()).toBe(body);
    expect(run(cuts.map((c) => Buffer.from(c))).out.toString()).toBe(body);
  });

  it('a usage chunk that is the first event of the body is taken out too', () => {
    const usage = ev({ id: 'x', choices: [], usage: { prompt_tokens: 3, completion_tokens: 0, total_tokens: 3 } });
    expect(run([Buffer.from(usage + 'data: [DONE]\n\n')]).out.toString()).toBe('data: [DONE]\n\n');
    expect(run([Buffer.from(usage.slice(0, 20)), Buffer.from(usage.slice(20) + 'data: [DONE]\n\n')]).out.toString()).toBe('data: [DONE]\n\n');
  });

  it('keeps comments, other event types and events that are not JSON', () => {
    const body = ': keep-alive\n\nevent: ping\ndata: {"usage": {"x": 1}}\n\n' + 'data: not json "usage": {\n\n' + 'data: [DONE]\n\n';
    const { out, replaced } = run([Buffer.from(body)]);
    expect(out.toString()).toBe(body);
    expect(replaced).toBe(0);
  });

  it('holds the unfinished part of an event back until it ends, so a chunk can become empty', () => {
    const filter = new ForcedUsageFilter();
    const first = content('a');
    const usage = ev({ choices: [], usage: { total_tokens: 7 } });
    // The first chunk ends inside the usage event: its start waits, the content event goes.
    const cut = first.length + 10;
    const whole = Buffer.from(first + usage + 'data: [DONE]\n\n');
    expect(filter.push(whole.subarray(0, cut), false)?.toString()).toBe(first);
    expect(filter.push(whole.subarray(cut, first.length + usage.length), false)?.length).toBe(0);
    expect(filter.push(whole.subarray(first.length + usage.length), true)).toBeUndefined();
  });

  it('an event cut after its choices show an element goes on at once: neither part is held or replaced', () => {
    const filter = new ForcedUsageFilter();
    const event = Buffer.from(content('a long answer'));
    const cut = event.indexOf('"choices":[{') + 13;
    expect(filter.push(event.subarray(0, cut), false)).toBeUndefined();
    expect(filter.push(event.subarray(cut), false)).toBeUndefined();
    // The next event is framed and read again as usual.
    const usage = Buffer.from(ev({ choices: [], usage: { total_tokens: 7 } }));
    expect(filter.push(usage, false)?.length).toBe(0);
  });

  it('an event too long to be a usage chunk, not yet showing its choices, turns the filter off, losing nothing', () => {
    const long = `data: {"pad":"${'x'.repeat(2 * MAX_HELD_BYTES)}","choices":[{"delta":{"content":"a"}}],"usage":null}\n\n`;
    const usage = ev({ choices: [], usage: { total_tokens: 7 } });
    const body = Buffer.from(content('a') + long + usage + 'data: [DONE]\n\n');
    const pieces: Buffer[] = [];
    for (let i = 0; i < body.length; i += 4096) pieces.push(body.subarray(i, i + 4096));
    // Once off, the usage chunk goes through: what matters is that no byte is lost or reordered.
    expect(run(pieces).out.equals(body)).toBe(true);
  });
});
