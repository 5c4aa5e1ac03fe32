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
