// A text-to-speech request read for what it asks to be spoken (src/usage/speech-request.ts): the ledger's only
// source for tts-1's characters. The row-level behaviour is in integration/ledger-rows.
import { describe, expect, it } from 'vitest';
import { SpeechRequest } from '../../src/usage/speech-request.js';

const read = (...pieces: Buffer[]) => {
  const r = new SpeechRequest();
  for (const p of pieces) r.push(p);
  return r.text();
};

describe('a speech request', () => {
  it('is read whole however the body was cut, and its pieces are copied (the transport reuses its buffers)', () => {
    const body = Buffer.from(JSON.stringify({ model: 'tts-1', input: '안녕하세요 👋', voice: 'alloy', instructions: 'Cheerful.' }));
    for (let i = 1; i < body.length; i++) {
      const r = new SpeechRequest();
      const first = Buffer.from(body.subarray(0, i));
      r.push(first);
      first.fill(0x20); // what the transport would do to a buffer it owns
      r.push(body.subarray(i));
      expect(r.text(), `cut at ${i}`).toEqual({ input: '안녕하세요 👋', instructions: 'Cheerful.' });
    }
  });

  it('without instructions has none; one that is not a speech request is not read', () => {
    expect(read(Buffer.from('{"input":"hi","voice":"alloy"}'))).toEqual({ input: 'hi', instructions: '' });
    // A leading byte order mark (PowerShell's utf8), as the backend's parser takes it off.
    expect(read(Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"input":"hi"}'))).toEqual({ input: 'hi', instructions: '' });
    for (const body of ['not json', '[1]', 'null', '{"input":7}', '{"text":"hi"}', '']) expect(read(Buffer.from(body)), body).toBeUndefined();
  });

  it('over 1 MiB is not read at all, rather than counted from its start', () => {
    const big = Buffer.from(JSON.stringify({ input: 'x'.repeat(1024 * 1024) }));
    expect(read(big.subarray(0, 1000), big.subarray(1000))).toBeUndefined();
    // At the bound, it is.
    const text = 'y'.repeat(1024 * 1024 - '{"input":""}'.length);
    expect(read(Buffer.from(JSON.stringify({ input: text })))?.input.length).toBe(text.length);
  });

  it('is parsed once, and reads the same each time it is asked', () => {
    const r = new SpeechRequest();
    r.push(Buffer.from('{"input":"once"}'));
    expect(r.text()).toBe(r.text());
  });
});
