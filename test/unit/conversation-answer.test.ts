// The answer to POST /v1/conversations, read for the id to claim for its tenant (src/affinity/conversation-answer.ts):
// only a success that is a conversation object names one; a copy of the plain bytes is kept, bounded. The
// responses-api suite checks the claim end to end; here each way an answer can fail to name one.
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ConversationAnswer } from '../../src/affinity/conversation-answer.js';

const CONV = Buffer.from(JSON.stringify({ id: 'conv_abc', object: 'conversation', created_at: 1764979200, metadata: {} }));

/** The id the answer names, fed as `pieces` after headers of this status and coding. */
function read(status: number | undefined, pieces: Buffer[], coding?: string): string | undefined {
  const a = new ConversationAnswer();
  a.headers(status, coding);
  let id: string | undefined;
  pieces.forEach((p, i) => {
    const got = a.push(p, i === pieces.length - 1);
    if (i < pieces.length - 1) expect(got).toBeUndefined();
    else id = got;
  });
  return id;
}

const split = (b: Buffer, at: number[]) => [...at, b.length].map((end, i) => b.subarray(i === 0 ? 0 : (at[i - 1] as number), end));

describe('ConversationAnswer', () => {
  it('a 2xx conversation object names its id, whole or in pieces cut anywhere, the last one possibly empty', () => {
    expect(read(200, [CONV])).toBe('conv_abc');
    expect(read(201, split(CONV, [1, 7, 20]))).toBe('conv_abc');
    expect(read(299, [CONV, Buffer.alloc(0)])).toBe('conv_abc');
  });

  it('decoded first when the answer is compressed; a coding tiergate cannot undo, or a corrupt body, names none', () => {
    expect(read(200, split(gzipSync(CONV), [5]), 'gzip')).toBe('conv_abc');
    expect(read(200, [brotliCompressSync(CONV)], 'br')).toBe('conv_abc');
    expect(read(200, [CONV], 'identity')).toBe('conv_abc');
    expect(read(200, [CONV], 'x-unknown')).toBeUndefined();
    const corrupt = gzipSync(CONV);
    const crc = corrupt.length - 6; // in the CRC: every byte of output comes out, then the check fails
    corrupt[crc] = (corrupt[crc] as number) ^ 0xff;
    expect(read(200, [corrupt], 'gzip')).toBeUndefined();
    // Cut in its trailer: every byte of the object comes out before the decoder finds the body corrupt.
    expect(read(200, [gzipSync(CONV).subarray(0, -4)], 'gzip')).toBeUndefined();
  });

  it('no success, no id: an error status, or none at all', () => {
    for (const status of [undefined, 100, 199, 300, 404, 500]) expect(read(status, [CONV]), String(status)).toBeUndefined();
  });

  it('only a conversation object with a non-empty string id', () => {
    const named = (body: unknown) => read(200, [Buffer.from(JSON.stringify(body))]);
    expect(named({ id: 'resp_1', object: 'response' })).toBeUndefined();
    expect(named({ id: 'conv_1' })).toBeUndefined();
    expect(named({ id: '', object: 'conversation' })).toBeUndefined();
    expect(named({ id: 7, object: 'conversation' })).toBeUndefined();
    expect(named({ object: 'conversation' })).toBeUndefined();
    expect(named(null)).toBeUndefined();
    expect(named(['conv_1'])).toBeUndefined();
    expect(named('conv_1')).toBeUndefined();
    expect(read(200, [Buffer.from('{"id":"conv_1","object":"conversation"')])).toBeUndefined();
  });

  it('an answer larger than 64 KiB is not one; 64 KiB exactly still is, whether plain or decoded', () => {
    const padded = (bytes: number) => {
      const bare = JSON.stringify({ id: 'conv_big', object: 'conversation', metadata: { pad: '' } });
      return Buffer.from(JSON.stringify({ id: 'conv_big', object: 'conversation', metadata: { pad: 'x'.repeat(bytes - Buffer.byteLength(bare)) } }));
    };
    expect(padded(65536).length).toBe(65536);
    expect(read(200, split(padded(65536), [30000]))).toBe('conv_big');
    expect(read(200, split(padded(65537), [30000]))).toBeUndefined();
    expect(read(200, [gzipSync(padded(65536))], 'gzip')).toBe('conv_big');
    // Compressed small, plain past the bound: the bound is on what the decoder gives.
    expect(read(200, [gzipSync(padded(65537))], 'gzip')).toBeUndefined();
  });

  it('past the bound, none, even when what came before it was a whole conversation (JSON allows the blanks after)', () => {
    expect(read(200, [CONV, Buffer.alloc(70_000, 0x20)])).toBeUndefined();
    expect(read(200, [CONV, Buffer.alloc(1000, 0x20)])).toBe('conv_abc');
  });

  it('once spoiled, later pieces are not kept', () => {
    const a = new ConversationAnswer();
    a.headers(200, undefined);
    expect(a.push(Buffer.alloc(70_000, 0x20), false)).toBeUndefined();
    expect(a.push(CONV, true)).toBeUndefined();
  });
});
