// Compressed response bodies. Clients ask for compression as a matter of course (the OpenAI SDKs' HTTP clients
// send `accept-encoding: gzip, deflate`, fetch adds `br`), Envoy passes that upstream, and hosted backends
// answer with `content-encoding: gzip` or `br`. The bytes tiergate sees in the response-body phase are then
// compressed, and reading usage from them as JSON fails: the ledger would fall back to an estimate and the cache
// would store nothing (the failures Envoy AI Gateway's users reported, envoyproxy/ai-gateway#682, #1189, #1894).
//
// tiergate does not change what the client asked for or what it receives: the compressed bytes pass through
// untouched, and the usage collector undoes the codings piece by piece as the body passes, so it reads the plain
// bytes as it would read an uncompressed body: nothing compressed is kept, a body cut short gives up what it
// held so far, and an answer read only for its usage (embeddings) needs no limit on its size. Until 2026-12-02 the
// compressed bytes were kept (up to 32 MiB) and decompressed in one synchronous call when the body ended.
import * as zlib from 'node:zlib';
import { BrotliDecompress, Gunzip, Inflate, InflateRaw, ZstdDecompress } from 'minizlib';

/**
 * Node's zlib has zstd from 22.15 and 23.8 (the image's Node 24), not on Node 20. Python clients that have the
 * zstandard package installed ask for it (httpx adds it to accept-encoding), and some hosts grant it.
 */
export const ZSTD_AVAILABLE = typeof (zlib as { ZstdDecompress?: unknown }).ZstdDecompress === 'function';

/** The codings tiergate can undo. */
const CODINGS: ReadonlySet<string> = new Set(['gzip', 'x-gzip', 'deflate', 'br', ...(ZSTD_AVAILABLE ? ['zstd'] : [])]);

/** More codings than this on one body are not undone: its usage is estimated. */
export const MAX_CODINGS = 3;

/** A body's codings undone piece by piece as it arrives (bodyDecoder). */
export interface StreamDecoder {
  write(piece: Buffer): void;
  /** The body ended (or was cut short): what the decompressors still hold goes out. */
  end(): void;
}

/**
 * Makes a StreamDecoder that hands each piece of plain bytes to `onData`, synchronously, and calls `onError` once
 * if the input turns out corrupt (the decoding then stops: what came out before it is all the reader gets).
 */
export type BodyDecoder = (onData: (plain: Buffer) => void, onError: () => void) => StreamDecoder;

/**
 * How to read a body sent with this `content-encoding`: undefined when it is not encoded (absent or `identity`),
 * null when it uses a coding tiergate cannot undo (zstd before Node 22.15, an unknown one) or more than MAX_CODINGS of
 * them (each layer is work on the event loop: a body wrapped in thousands, which a header of "gzip, gzip, …"
 * allows, would hold every stream for seconds). The decompressors are minizlib's, which run Node's zlib
 * synchronously and emit output as they go; Node's own zlib streams hand it over on later turns of the loop.
 */
export function bodyDecoder(contentEncoding: string | undefined): BodyDecoder | null | undefined {
  const codings = codingsOf(contentEncoding);
  if (codings.length === 0) return undefined;
  if (codings.length > MAX_CODINGS || !codings.every((c) => CODINGS.has(c))) return null;
  return (onData, onError) => {
    let failed = false;
    const fail = () => {
      if (!failed) onError();
      failed = true;
    };
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
  if (coding === 'br') return zlibLayer(new BrotliDecompress({}), next, fail);
  if (coding === 'zstd') return zlibLayer(new ZstdDecompress({}), next, fail);
  if (coding !== 'deflate') return zlibLayer(new Gunzip({}), next, fail);
  // HTTP's deflate is the zlib format (RFC 9110 §8.4.1.2), but some servers send raw deflate: a zlib stream
  // starts with a two-byte header that raw deflate data does not have (RFC 1950 §2.2).
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

/** A decompressor as a layer; after `fail` the decoder (bodyDecoder) passes nothing more to any layer. */
function zlibLayer(z: Gunzip | Inflate | InflateRaw | BrotliDecompress | ZstdDecompress, next: StreamDecoder, fail: () => void): StreamDecoder {
  z.on('data', (plain: Buffer) => next.write(plain));
  z.on('error', fail);
  return {
    write: (piece) => void z.write(piece),
    end: () => {
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
