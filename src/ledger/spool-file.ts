// The spool's file: one row per line (writer, seq, event id, day and the row's JSON, tab-separated), and the
// file operations the spool needs that work a window at a time, so that a long outage's spool is never read
// into memory whole.
import { fstatSync, ftruncateSync, readSync, writeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { LedgerEntry } from './sink.js';
import { openForAppend } from './open-append.js';
import { tornTail } from './torn-tail.js';

/** Rows are read from the file in windows of this size, so a long outage's spool is never loaded whole. */
export const READ_WINDOW = 4 * 1024 * 1024;

/** Appends `text` to the file and fsyncs it; on a failure, nothing of it stays (the file is cut back). */
export async function appendSync(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const { fh, size } = await openForAppend(path);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } catch (err) {
    // Part of the rows may be on disk (a full disk): they go, or the retry would append after half a line.
    await fh.truncate(size).catch(() => undefined);
    throw err;
  } finally {
    await fh.close();
  }
}

/**
 * Mends the file's last line (torn-tail.ts) and returns the file's size after it. Reads back from the end only
 * as far as the last newline: one window, unless the last line is longer than that.
 */
export function mendTornTail(fd: number): number {
  const size = fstatSync(fd).size;
  let start = Math.max(0, size - READ_WINDOW);
  let tail = readBytes(fd, start, size - start);
  while (start > 0 && tail[tail.length - 1] !== 0x0a && tail.indexOf(0x0a) === -1) {
    start = Math.max(0, start - READ_WINDOW);
    tail = readBytes(fd, start, size - start);
  }
  const torn = tornTail(tail, (line) => isWholeEntry(line.toString('utf8')));
  if (torn === 'complete') {
    writeSync(fd, '\n', size);
    return size + 1;
  }
  if (torn) {
    ftruncateSync(fd, start + torn.cutTo);
    return start + torn.cutTo;
  }
  return size;
}

/** The rows (non-empty lines) between byte `from` and `to`, counted a window at a time on the bytes. */
export function countRows(fd: number, from: number, to: number): number {
  const window = Buffer.allocUnsafe(Math.min(READ_WINDOW, Math.max(1, to - from)));
  let rows = 0;
  let lineStart = from;
  for (let at = from; at < to; ) {
    const n = readSync(fd, window, 0, Math.min(window.length, to - at), at);
    if (n === 0) break;
    const bytes = window.subarray(0, n);
    for (let nl = bytes.indexOf(0x0a); nl !== -1; nl = bytes.indexOf(0x0a, nl + 1)) {
      if (at + nl > lineStart) rows++;
      lineStart = at + nl + 1;
    }
    at += n;
  }
  return rows;
}

function readBytes(fd: number, from: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, from + got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/** No such file, or a path component that is not a directory (no file can be under it either). */
export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** encode(e)'s length in bytes, without making the string. */
export function encodedBytes(e: LedgerEntry): number {
  return Buffer.byteLength(e.writer) + String(e.seq).length + Buffer.byteLength(e.eventId) + e.day.length + Buffer.byteLength(e.line) + 5;
}

// writer, seq, event id and day never contain a tab, and JSON escapes tabs inside strings.
export function encode(e: LedgerEntry): string {
  return `${e.writer}\t${e.seq}\t${e.eventId}\t${e.day}\t${e.line}\n`;
}

/** A line that decodes and whose row is complete JSON (decode() only checks its shape). */
function isWholeEntry(line: string): boolean {
  const e = decode(line);
  if (!e) return false;
  try {
    JSON.parse(e.line);
    return true;
  } catch {
    return false;
  }
}

export function decode(line: string): LedgerEntry | undefined {
  const parts = line.split('\t');
  if (parts.length !== 5) return undefined;
  const [writer, seq, eventId, day, json] = parts as [string, string, string, string, string];
  const n = Number(seq);
  if (!Number.isSafeInteger(n) || !json.startsWith('{')) return undefined;
  return { writer, seq: n, eventId, day, line: json };
}
