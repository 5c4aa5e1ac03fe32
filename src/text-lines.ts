// A text file read as a stream, its lines or its bytes. A gzip file (told by its first two bytes, whatever its
// name) is decompressed on the way: log archives, rotated logs and exported samples of traffic are mostly kept
// compressed. Read as they were, a compressed log held no line with a row in it, so a rollup over them summed to
// $0 and an import found nothing; a compressed labelled file gave `eval` nothing but unreadable rows.
import { closeSync, createReadStream, openSync, readSync, statSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

/**
 * Why one of `paths`, named on a command line as files to read, is not one (`what` names the kind: "log file"),
 * or undefined when all are: checked before any is read. A directory said "EISDIR: illegal operation on a
 * directory, read" without naming it.
 */
export function fileProblem(paths: readonly string[], what: string): string | undefined {
  for (const path of paths) {
    const stat = statSync(path, { throwIfNoEntry: false });
    if (!stat) return `${path}: no such file`;
    if (stat.isDirectory()) return `${path}: a directory, not a ${what}`;
  }
  return undefined;
}

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
 * The file's bytes, decompressed when it is gzip (`gzip`: already known by the caller). A read or decompression
 * error (a file cut short) is an error of the returned stream, naming the file.
 */
export function fileBytes(file: string, gzip = isGzip(file)): Readable {
  if (!gzip) return createReadStream(file);
  const gunzip = createGunzip();
  // Registered before any reader's listener, so the error a reader sees names the file.
  gunzip.once('error', (err) => (err.message = `${file}: ${err.message}`));
  // pipeline, not pipe: a read error reaches the stream the caller reads too, which ends its iteration.
  pipeline(createReadStream(file), gunzip, () => undefined);
  return gunzip;
}

/** The file's lines (CRLF or LF), decompressed when it is gzip. An error ends the iteration with it. */
export function textLines(file: string, gzip = isGzip(file)): Interface {
  const bytes = fileBytes(file, gzip);
  bytes.setEncoding('utf8');
  return createInterface({ input: bytes, crlfDelay: Infinity });
}
