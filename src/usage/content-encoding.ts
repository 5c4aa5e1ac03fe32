// Compressed response bodies. Clients ask for compression as a matter of course (the OpenAI SDKs' HTTP clients
// send `accept-encoding: gzip, deflate`, fetch adds `br`), Envoy passes that upstream, and hosted backends
// answer with `content-encoding: gzip` or `br`. The bytes tiergate sees in the response-body phase are then
// compressed, and reading usage from them as JSON fails: the ledger would fall back to an estimate and the cache
// would store nothing (the failures Envoy AI Gateway's users reported, envoyproxy/ai-gateway#682, #1189, #1894).
//
// tiergate does not change what the client asked for or what it receives: the compressed bytes pass through
// untouched, and the usage collector keeps them and decompresses them once the body has ended. Usage is only
// needed then (the final answer's metadata, the ledger row, the cache entry), so one synchronous decompression
// of the whole body is enough, and a stream needs no decompressor state across chunks.
import { brotliDecompressSync, constants, gunzipSync, inflateRawSync, inflateSync, type BrotliOptions, type ZlibOptions } from 'node:zlib';
import { BrotliDecompress, Gunzip, Inflate, InflateRaw } from 'minizlib';

/** Undoes one body's content codings; throws on corrupt input or when the output would exceed `maxBytes`. */
export type BodyDecoder = (body: Buffer, maxBytes: number) => Buffer;

// A flush rather than a finish: a body cut short (the client went away mid-stream) gives up what it holds so far
// instead of failing, so a cancelled stream's text can still be estimated from.
const opts = (maxBytes: number): ZlibOptions => ({ maxOutputLength: maxBytes, finishFlush: constants.Z_SYNC_FLUSH });
const brotliOpts = (maxBytes: number): BrotliOptions => ({ maxOutputLength: maxBytes, finishFlush: constants.BROTLI_OPERATION_FLUSH });

const gzip: BodyDecoder = (b, max) => gunzipSync(b, opts(max));
/** A Map, not an object literal: a header value such as "constructor" must not find Object's own members. */
const CODINGS = new Map<string, BodyDecoder>([
  ['gzip', gzip],
  ['x-gzip', gzip],
  // HTTP's "deflate" is the zlib format (RFC 9110 §8.4.1.2), but some servers send raw deflate: try both.
  [
    'deflate',
    (b, max) => {
      try {
        return inflateSync(b, opts(max));
      } catch (err) {
        if (err instanceof RangeError) throw err; // over the limit: raw deflate would be too
        return inflateRawSync(b, opts(max));
      }
    },
  ],
  ['br', (b, max) => brotliDecompressSync(b, brotliOpts(max))],
]);

/** More codings than this on one body are not undone: its usage is estimated. */
export const MAX_CODINGS = 3;

/**
 * How to read a body sent with this `content-encoding`: undefined when it is not encoded (absent or
 * `identity`), null when it uses a coding tiergate cannot undo (zstd on Node 20, an unknown one). Several
 * codings are undone in the reverse of the order they were applied.
 */
export function bodyDecoder(contentEncoding: string | undefined): BodyDecoder | null | undefined {
  const codings = codingsOf(contentEncoding);
  if (codings.length === 0) return undefined;
  // Each step may write up to maxBytes, on the event loop: a body wrapped in thousands of layers (a header of
  // "gzip, gzip, …" fits Envoy's limits) would hold every stream for seconds. Real servers apply one.
  if (codings.length > MAX_CODINGS) return null;
  const steps: BodyDecoder[] = [];
  for (const c of codings) {
    const step = CODINGS.get(c);
    if (!step) return null;
    steps.unshift(step);
  }
  if (steps.length === 1) return steps[0];
  return (body, maxBytes) => steps.reduce((b, step) => step(b, maxBytes), body);
}

/** A body's codings undone piece by piece as it arrives (streamingBodyDecoder). */
export interface StreamDecoder {
  write(piece: Buffer): void;
  /** The body ended (or was cut short): what the decompressors still hold goes out. */
  end(): void;
}

/** Makes a StreamDecoder that hands each piece of plain bytes to `onData`, synchronously. */
export type StreamDecoderFactory = (onData: (plain: Buffer) => void) => StreamDecoder;

/**
 * bodyDecoder's counterpart for a body that is read as it passes and not kept (an embeddings answer: tens of MB,
 * whose usage comes last), so that it needs no limit on its size: undefined when the body is not encoded, null
 * when it uses a coding tiergate cannot undo. The decompressors are minizlib's, which run Node's zlib
 * synchronously and emit output as they go; Node's own streams would hand it over on later turns of the loop.
 * Corrupt input stops the decoding quietly: what came out before it is all the reader gets.
 */
export function streamingBodyDecoder(contentEncoding: string | undefined): StreamDecoderFactory | null | undefined {
  const codings = codingsOf(contentEncoding);
  if (codings.length === 0) return undefined;
  if (codings.length > MAX_CODINGS || !codings.every((c) => CODINGS.has(c))) return null;
  return (onData) => {
    let failed = false;
    const fail = () => (failed = true);
    // Undone in the reverse of the order applied: the last coding's layer gets the body first.
    let next: StreamDecoder = { write: (b) => void (failed || onData(b)), end: () => undefined };
    for (const coding of codings) next = layer(coding, next, fail);
    const first = next;
    return {
      write: (piece) => void (failed || first.write(piece)),
      end: () => void (failed || first.end()),
    };
  };
}

/** One coding's decompressor, writing to `next`; `fail` on corrupt input. */
function layer(coding: string, next: StreamDecoder, fail: () => void): StreamDecoder {
  if (coding !== 'deflate') return zlibLayer(coding === 'br' ? new BrotliDecompress({}) : new Gunzip({}), next, fail);
  // HTTP's deflate is the zlib format, but some servers send raw deflate (as bodyDecoder tries both): a zlib
  // stream starts with a two-byte header that raw deflate data does not have (RFC 1950 §2.2).
  let held = Buffer.alloc(0);
  let chosen: StreamDecoder | undefined;
  return {
    write(piece) {
      if (chosen) return chosen.write(piece);
      held = Buffer.concat([held, piece]);
      if (held.length < 2) return;
      const zlibHeader = ((held[0] as number) & 0x0f) === 8 && (((held[0] as number) << 8) | (held[1] as number)) % 31 === 0;
      chosen = zlibLayer(zlibHeader ? new Inflate({}) : new InflateRaw({}), next, fail);
      chosen.write(held);
    },
    end() {
      if (!chosen && held.length > 0) chosen = zlibLayer(new InflateRaw({}), next, fail);
      chosen?.end();
    },
  };
}

function zlibLayer(z: Gunzip | Inflate | InflateRaw | BrotliDecompress, next: StreamDecoder, fail: () => void): StreamDecoder {
  let failed = false;
  z.on('data', (plain: Buffer) => next.write(plain));
  z.on('error', () => {
    failed = true;
    fail();
  });
  return {
    write: (piece) => void (failed || z.write(piece)),
    end: () => {
      if (failed) return;
      z.end();
      next.end();
    },
  };
}

/** Whether a body sent with this `content-encoding` is anything but its plain bytes. */
export function isEncoded(contentEncoding: string | undefined): boolean {
  return codingsOf(contentEncoding).length > 0;
}

/** The codings a `content-encoding` value names, in the order applied; `identity` is none (RFC 9110 §8.4). */
function codingsOf(contentEncoding: string | undefined): string[] {
  if (!contentEncoding) return [];
  return contentEncoding
    .toLowerCase()
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c.length > 0 && c !== 'identity');
}
