// The lines of a text file, read as a stream. A gzip file (told by its first two bytes, whatever its name) is
// decompressed on the way: log archives and rotated logs are mostly kept compressed, and read as they were, a
// compressed log held no line with a row in it, so a rollup over them summed to $0 and an import found nothing.
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';

/** Whether the file starts with gzip's magic bytes (RFC 1952: 1f 8b). */
export function isGzip(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(2);
    return readSync(fd, head, 0, 2, 0) === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

/**
 * The file's lines (CRLF or LF), decompressed when it is gzip (`gzip`: already known by the caller). A read or
 * decompression error (a file cut short) ends the iteration with that error, naming the file.
 */
export function textLines(file: string, gzip = isGzip(file)): Interface {
  if (!gzip) return createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  const gunzip = createGunzip();
  // Registered before readline's own listener, so the error it ends the iteration with names the file.
  gunzip.once('error', (err) => (err.message = `${file}: ${err.message}`));
  // pipeline, not pipe: a read error reaches the stream readline reads too, which ends the iteration.
  pipeline(createReadStream(file), gunzip, () => undefined);
  gunzip.setEncoding('utf8');
  return createInterface({ input: gunzip, crlfDelay: Infinity });
}
