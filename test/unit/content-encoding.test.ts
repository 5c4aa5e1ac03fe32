// Compressed response bodies: the recorded transcripts gzip-, deflate- and brotli-compressed, cut into pieces,
// must give the collector exactly what the plain bodies give.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync, inflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import * as zlib from 'node:zlib';
import { MAX_CODINGS, ZSTD_AVAILABLE, bodyDecoder } from '../../src/usage/content-encoding.js';
import { ResponseUsageCollector, type ResponseFacts } from '../../src/usage/response-usage.js';
import { FIXTURES } from '../helpers/shared-data.js';

const fixtures = readdirSync(FIXTURES).filter((f) => f.endsWith('.response.sse') || f.endsWith('.response.json'));
const kindOf = (f: string) => (f.endsWith('.sse') ? 'sse' : 'json');

function collect(kind: 'json' | 'sse', body: Buffer, encoding: string | undefined, pieceBytes = 97, observer?: ConstructorParameters<typeof ResponseUsageCollector>[2]): ResponseFacts {
  const c = new ResponseUsageCollector(kind, undefined, observer, bodyDecoder(encoding));
  for (let i = 0; i < body.length; i += pieceBytes) c.push(body.subarray(i, i + pieceBytes));
  return c.finish();
}

const COMPRESS: Array<[string, (b: Buffer) => Buffer]> = [
  ['gzip', gzipSync],
  ['x-gzip', gzipSync],
  ['deflate', deflateSync],
  ['deflate', deflateRawSync], // what some servers send under that name
  ['br', brotliCompressSync],
  ['gzip, br', (b) => brotliCompressSync(gzipSync(b))], // applied in order, undone in reverse
  [' GZIP ', gzipSync],
];

describe('compressed response bodies', () => {
  it('the fixtures include usage, so the comparison means something', () => {
    const withUsage = fixtures.filter((f) => collect(kindOf(f), readFileSync(join(FIXTURES, f)), undefined).usage !== undefined);
    expect(withUsage.length).toBeGreaterThanOrEqual(5);
  });

  for (const f of fixtures) {
    it(`${f}: the same facts compressed as plain, for every coding`, () => {
      const plain = readFileSync(join(FIXTURES, f));
      const want = collect(kindOf(f), plain, undefined);
      for (const [encoding, compress] of COMPRESS) expect(collect(kindOf(f), compress(plain), encoding), encoding).toEqual(want);
    });
  }

  it('the cache sees the same objects from a compressed body as from a plain one', () => {
    const plain = readFileSync(join(FIXTURES, 'chat-streaming.response.sse'));
    const seen = (body: Buffer, encoding?: string) => {
      const chunks: unknown[] = [];
      let spoiled = false;
      collect('sse', body, encoding, 97, { body: (o) => chunks.push(o), chunk: (o) => chunks.push(o), spoil: () => (spoiled = true) });
      return { chunks, spoiled };
    };
    expect(seen(gzipSync(plain), 'gzip')).toEqual(seen(plain));
    expect(seen(plain).chunks.length).toBeGreaterThan(2);
  });

  it('a coding it cannot undo, a corrupt body or a JSON body too large once decompressed: no usage read, the answer spoiled, no throw', () => {
    // Both fixtures carry usage, so "no usage read" is something the reader did, not the fixture's lack.
    const plain = readFileSync(join(FIXTURES, 'chat-streaming-detailed-usage.response.sse'));
    const json = readFileSync(join(FIXTURES, 'chat-basic.response.json'));
    expect([collect('sse', plain, undefined).usage, collect('json', json, undefined).usage]).not.toContain(undefined);
    for (const [kind, encoding, body, max] of [
      ['sse', 'x-unknown', plain, undefined],
      ['sse', 'compress', plain, undefined],
      ['sse', 'gzip, compress', gzipSync(gzipSync(plain)), undefined], // one coding it knows is not enough: every one must be
      ['sse', 'gzip', Buffer.from('not gzip at all'), undefined],
      ['json', 'gzip', Buffer.from('not gzip at all'), undefined],
      ['json', 'gzip', gzipSync(Buffer.concat([json, Buffer.alloc(4 * 1024 * 1024, 0x20)])), 1024 * 1024], // a bomb for a 1 MiB limit
    ] as const) {
      let spoiled = false;
      const c = new ResponseUsageCollector(kind, max, { body: () => undefined, chunk: () => undefined, spoil: () => (spoiled = true) }, bodyDecoder(encoding));
      c.push(body);
      const facts = c.finish();
      expect([facts.usage, facts.complete, spoiled], `${kind} ${encoding}`).toEqual([undefined, false, true]);
    }
  });

  it('corrupt only at its end (a bad gzip check, in its own piece): a stream keeps what it read, a kept JSON body is not read', () => {
    const facts = (kind: 'sse' | 'json', plain: Buffer) => {
      const z = gzipSync(plain);
      z.writeUInt32LE(~z.readUInt32LE(z.length - 8) >>> 0, z.length - 8); // the trailer's CRC32, wrong
      let spoiled = false;
      const c = new ResponseUsageCollector(kind, undefined, { body: () => undefined, chunk: () => undefined, spoil: () => (spoiled = true) }, bodyDecoder('gzip'));
      c.push(z.subarray(0, z.length - 8)); // every plain byte comes out of this piece
      c.push(z.subarray(z.length - 8)); // and the check fails on this one
      return { f: c.finish(), spoiled };
    };
    const sse = readFileSync(join(FIXTURES, 'chat-streaming-detailed-usage.response.sse'));
    const json = Buffer.from('{"model":"m","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}');
    // The stream's events arrived whole before the check failed: its usage is the backend's, not an estimate,
    // but the answer is not cached.
    const stream = facts('sse', sse);
    expect(stream.f.usage).toBeDefined();
    expect(stream.f.usage).toEqual(collect('sse', sse, undefined).usage);
    expect([stream.f.unread, stream.spoiled]).toEqual([false, true]);
    // A JSON body is parsed only once it ended well: this one is unread, so the ledger estimates it.
    const whole = facts('json', json);
    expect([whole.f.usage, whole.f.unread, whole.f.complete, whole.spoiled]).toEqual([undefined, true, false, true]);
    expect(collect('json', gzipSync(json), 'gzip')).toMatchObject({ unread: false, complete: true, usage: { inputTokens: 3, outputTokens: 4 } });
  });

  it('a compressed stream is read as a plain one: no limit on its whole size, only on each event (the usage chunk read, the huge event skipped)', () => {
    const plain = readFileSync(join(FIXTURES, 'chat-streaming-detailed-usage.response.sse'));
    const huge = Buffer.from(`data: {"pad":"${'x'.repeat(2 * 1024 * 1024)}"}\n\n`);
    const body = Buffer.concat([huge, plain]);
    const read = (bytes: Buffer, encoding: string | undefined) => {
      let spoiled = false;
      const c = new ResponseUsageCollector('sse', 1024 * 1024, { body: () => undefined, chunk: () => undefined, spoil: () => (spoiled = true) }, bodyDecoder(encoding));
      for (let i = 0; i < bytes.length; i += 16_384) c.push(bytes.subarray(i, i + 16_384));
      return { ...c.finish(), spoiled };
    };
    const want = read(body, undefined);
    expect(want.usage).toBeDefined();
    expect(want.spoiled).toBe(true);
    expect(read(gzipSync(body), 'gzip')).toEqual(want);
    expect(read(brotliCompressSync(body), 'br')).toEqual(want);
  });

  it('a compressed stream cut short still gives the text it holds, for the estimate', () => {
    const plain = readFileSync(join(FIXTURES, 'chat-streaming.response.sse'));
    const whole = collect('sse', plain, undefined);
    const gz = gzipSync(plain);
    const cut = collect('sse', gz.subarray(0, Math.floor(gz.length * 0.8)), 'gzip');
    expect(cut.outputText.length).toBeGreaterThan(0);
    expect(whole.outputText.startsWith(cut.outputText)).toBe(true);
    expect(cut.complete).toBe(false);
  });

  it('undoes up to MAX_CODINGS layers; a body wrapped in more is not read (each layer is work on the event loop)', () => {
    // A fixture with usage: with one that has none, "the same usage" would hold for a body never read at all.
    const plain = readFileSync(join(FIXTURES, 'chat-streaming-detailed-usage.response.sse'));
    const wrapped = (n: number) => Array.from({ length: n }).reduce<Buffer>((b) => gzipSync(b), plain);
    const names = (n: number) => Array.from({ length: n }, () => 'gzip').join(', ');
    const want = collect('sse', plain, undefined).usage;
    expect(want).toBeDefined();
    expect(collect('sse', wrapped(MAX_CODINGS), names(MAX_CODINGS)).usage).toEqual(want);
    expect(bodyDecoder(names(MAX_CODINGS + 1))).toBeNull();
    expect(bodyDecoder(names(10_000))).toBeNull();
    expect(collect('sse', wrapped(MAX_CODINGS + 1), names(MAX_CODINGS + 1))).toMatchObject({ usage: undefined, complete: false });
  });

  it('reads absent and identity codings as plain, and never looks up Object members as codings', () => {
    expect(bodyDecoder(undefined)).toBeUndefined();
    expect(bodyDecoder('')).toBeUndefined();
    expect(bodyDecoder('identity')).toBeUndefined();
    expect(bodyDecoder('constructor')).toBeNull();
    expect(bodyDecoder('__proto__')).toBeNull();
  });
});

describe('codings undone as the body passes (bodyDecoder), and answers read only for their usage', () => {
  const decodeAll = (encoding: string, body: Buffer, pieceBytes: number): Buffer => {
    const out: Buffer[] = [];
    const d = bodyDecoder(encoding)?.(
      (b) => out.push(Buffer.from(b)),
      () => {
        throw new Error('corrupt');
      },
    );
    if (!d) throw new Error(`no decoder for ${encoding}`);
    for (let i = 0; i < body.length; i += pieceBytes) d.write(body.subarray(i, i + pieceBytes));
    d.end();
    return Buffer.concat(out);
  };

  it('gives back the plain bytes for every coding and layering, in pieces of any size, synchronously', () => {
    const plain = Buffer.from(JSON.stringify({ data: Array.from({ length: 2000 }, (_, i) => Math.sin(i)), usage: { prompt_tokens: 3, total_tokens: 3 } }));
    for (const [encoding, compress] of COMPRESS) {
      for (const piece of [1, 2, 97, 16_384]) expect(decodeAll(encoding, compress(plain), piece).equals(plain), `${encoding} in pieces of ${piece}`).toBe(true);
    }
  });

  it('a large compressed embeddings answer: its usage read past the 32 MiB a body is kept whole, nothing of it kept', () => {
    const vector = `[${Array.from({ length: 1536 }, (_, i) => (Math.cos(i) / 10).toFixed(12)).join(',')}]`;
    const plain = Buffer.from(`{"object":"list","data":[${Array.from({ length: 1700 }, (_, i) => `{"index":${i},"embedding":${vector}}`).join(',')}],"model":"e-1","usage":{"prompt_tokens":1700,"total_tokens":1700}}`);
    expect(plain.length).toBeGreaterThan(32 * 1024 * 1024);
    for (const [encoding, compress] of [['gzip', gzipSync], ['br', brotliCompressSync]] as const) {
      const body = compress(plain);
      const c = new ResponseUsageCollector('json', undefined, undefined, bodyDecoder(encoding), true);
      for (let i = 0; i < body.length; i += 16_384) c.push(body.subarray(i, i + 16_384));
      expect(c.finish(), encoding).toMatchObject({ model: 'e-1', usage: { inputTokens: 1700, totalTokens: 1700 }, complete: true });
      // Kept whole, the same body is over the limit once decompressed: not read.
      expect(collect('json', body, encoding, 16_384).usage, encoding).toBeUndefined();
    }
  });

  it('corrupt input, a body cut short, a coding it cannot undo: no usage, no throw', () => {
    const plain = Buffer.from('{"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}');
    const read = (encoding: string, body: Buffer) => {
      const c = new ResponseUsageCollector('json', undefined, undefined, bodyDecoder(encoding), true);
      c.push(body);
      return c.finish();
    };
    expect(read('gzip', gzipSync(plain)).usage).toEqual({ inputTokens: 1, outputTokens: 0, totalTokens: 1, cachedInputTokens: 0, reasoningTokens: 0, audioInputTokens: 0, audioOutputTokens: 0, audioSeconds: 0, imageInputTokens: 0, imageOutputTokens: 0 });
    expect(read('gzip', Buffer.from('not gzip at all')).usage).toBeUndefined();
    expect(read('br', brotliCompressSync(plain).subarray(0, 10)).usage).toBeUndefined();
    expect(read('x-unknown', plain).usage).toBeUndefined();
    expect(bodyDecoder('x-unknown')).toBeNull();
    expect(bodyDecoder(Array.from({ length: MAX_CODINGS + 1 }, () => 'gzip').join(','))).toBeNull();
    expect(bodyDecoder('identity')).toBeUndefined();
  });
});

describe('what a decoder reports (bodyDecoder): each failure once, and nothing after it', () => {
  /** Writes the pieces (and ends, unless told not to); what came out, and how many failures were reported. */
  const run = (encoding: string, pieces: Buffer[], end = true) => {
    const out: Buffer[] = [];
    let failures = 0;
    const d = bodyDecoder(encoding)?.(
      (b) => out.push(Buffer.from(b)),
      () => failures++,
    );
    if (!d) throw new Error(`no decoder for ${encoding}`);
    for (const p of pieces) d.write(p);
    if (end) d.end();
    return { text: Buffer.concat(out).toString(), failures };
  };
  const text = 'the plain bytes of a body, long enough to be cut in two';

  it('a corrupt piece is reported once; a good body written after it, and the end, pass nothing and report nothing', () => {
    expect(run('gzip', [Buffer.from('not gzip at all'), gzipSync(Buffer.from(text)), Buffer.from('more')])).toEqual({ text: '', failures: 1 });
    // In the inner layer of two: the outer one decodes, the inner one fails.
    expect(run('gzip, gzip', [gzipSync(Buffer.from('not gzip')), Buffer.from('x')])).toEqual({ text: '', failures: 1 });
    // The outer layer goes on handing the failed inner one its output, piece after piece, within one write.
    const notGzip = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 251));
    expect(run('gzip, gzip', [gzipSync(notGzip)])).toEqual({ text: '', failures: 1 });
  });

  it('a body cut short is reported when it ends, after the bytes it held (a truncated upstream answer)', () => {
    const gz = gzipSync(Buffer.from(text));
    const cut = gz.subarray(0, gz.length - 10);
    expect(run('gzip', [cut], false).failures).toBe(0);
    const ended = run('gzip', [cut]);
    expect(ended.failures).toBe(1);
    expect(text.startsWith(ended.text)).toBe(true);
    expect(ended.text.length).toBeGreaterThan(0);
    // Deflate waits for two bytes to tell zlib's format from raw deflate: a one-byte body is still read at its end.
    expect(run('deflate', [deflateSync(Buffer.from(text)).subarray(0, 1)])).toEqual({ text: '', failures: 1 });
  });

  it('a deflate body with no bytes at all ends quietly (a 204 or a HEAD answer that names its coding)', () => {
    expect(run('deflate', [])).toEqual({ text: '', failures: 0 });
  });

  it('raw deflate whose first byte looks like a zlib header by its method nibble alone is still read raw (RFC 1950 §2.2 check bits)', () => {
    // A stored block that is not the last, with a padding bit set (decoders skip padding): first byte 0x08, the
    // method nibble of a zlib header. The two bytes 0x08 0x02 fail the header's multiple-of-31 check.
    const raw = Buffer.from([0x08, 0x02, 0x00, 0xfd, 0xff, 0x68, 0x69, 0x01, 0x00, 0x00, 0xff, 0xff]);
    expect(inflateRawSync(raw).toString()).toBe('hi');
    expect(run('deflate', [raw])).toEqual({ text: 'hi', failures: 0 });
  });

  it('empty members of the coding list are not codings (a trailing comma, a doubled one)', () => {
    for (const encoding of ['gzip, ', ', gzip', 'gzip,,', 'identity, gzip']) {
      expect(run(encoding, [gzipSync(Buffer.from(text))]), encoding).toEqual({ text, failures: 0 });
    }
  });
});

describe('zstd, where the runtime has it (Node 22.15+, the image’s Node 24)', () => {
  const zstdCompress = (zlib as { zstdCompressSync?: (b: Buffer) => Buffer }).zstdCompressSync;

  it('is read like the other codings where Node has it, and not read (no usage, no throw) where it has not', () => {
    const plain = readFileSync(join(FIXTURES, 'chat-streaming-detailed-usage.response.sse'));
    const want = collect('sse', plain, undefined);
    expect(want.usage).toBeDefined();
    expect(ZSTD_AVAILABLE).toBe(zstdCompress !== undefined);
    if (zstdCompress) {
      expect(collect('sse', zstdCompress(plain), 'zstd')).toEqual(want);
      expect(collect('sse', zstdCompress(gzipSync(plain)), 'gzip, zstd')).toEqual(want);
    } else {
      expect(bodyDecoder('zstd')).toBeNull();
      expect(collect('sse', plain, 'zstd')).toMatchObject({ usage: undefined, complete: false });
    }
  });
});
