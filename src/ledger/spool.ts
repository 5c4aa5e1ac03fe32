// A sink's spool: the rows it has not stored yet, in order, in a local file (one line per row), with the byte
// offset of what was already delivered kept beside it. Every file operation runs on one chain, so appends,
// reads and rewrites never interleave.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LedgerEntry } from './sink.js';

/** Rows are read from the file in windows of this size, so a long outage's spool is never loaded whole. */
const READ_WINDOW = 4 * 1024 * 1024;

export class Spool {
  private readonly path: string;
  private readonly offsetPath: string;
  private pending: LedgerEntry[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private flushScheduled = false;
  private offset = 0;
  /** Rows in the file past the offset plus rows pending: the backlog. */
  private rows = 0;

  /** The directory is created on first use: a healthy sink never touches the disk. */
  constructor(dir: string, name: string) {
    this.path = join(dir, `${name}.spool.jsonl`);
    this.offsetPath = `${this.path}.offset`;
    // A previous process may have left rows: they are delivered first.
    if (existsSync(this.path)) {
      this.offset = existsSync(this.offsetPath) ? Number(readFileSync(this.offsetPath, 'utf8')) || 0 : 0;
      const rest = readFileSync(this.path).subarray(this.offset).toString('utf8');
      this.rows = rest.split('\n').filter((l) => l.length > 0).length;
    }
  }

  get size(): number {
    return this.rows;
  }

  get isEmpty(): boolean {
    return this.rows === 0;
  }

  append(entries: readonly LedgerEntry[]): void {
    if (entries.length === 0) return;
    this.pending.push(...entries);
    this.rows += entries.length;
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => void this.flush().catch(() => undefined));
  }

  /** Writes pending rows to the file and fsyncs. Rejects when the disk does; the rows stay pending. */
  flush(): Promise<void> {
    return this.run(async () => {
      this.flushScheduled = false;
      if (this.pending.length === 0) return;
      const batch = this.pending;
      this.pending = [];
      try {
        await appendSync(this.path, batch.map(encode).join(''));
      } catch (err) {
        this.pending = batch.concat(this.pending);
        throw err;
      }
    });
  }

  /** Up to `max` rows from the front, and the bytes they take. */
  read(max: number): Promise<{ entries: LedgerEntry[]; bytes: number; skipped: number }> {
    return this.run(async () => {
      const text = await this.fileRest(READ_WINDOW);
      const entries: LedgerEntry[] = [];
      let bytes = 0;
      let skipped = 0;
      let start = 0;
      while (entries.length < max) {
        const nl = text.indexOf('\n', start);
        if (nl === -1) break;
        const line = text.slice(start, nl);
        bytes += Buffer.byteLength(line) + 1;
        start = nl + 1;
        const e = decode(line);
        if (e) entries.push(e);
        else skipped++; // a torn or foreign line: passed over, never retried forever
      }
      // Nothing left to read: the count follows the file (it can only have drifted through a torn write).
      if (entries.length === 0 && skipped === 0 && text.length === 0 && this.pending.length === 0) this.rows = 0;
      return { entries, bytes, skipped };
    });
  }

  /** The first `count` rows (`bytes` long) were stored; when nothing is left the files go. */
  advance(count: number, bytes: number): Promise<void> {
    return this.run(async () => {
      this.offset += bytes;
      this.rows -= count;
      if (this.rows === 0 && this.pending.length === 0) await this.reset();
      else await writeFile(this.offsetPath, String(this.offset));
    });
  }

  /** Puts rows in front of everything spooled (a failed in-memory queue, which is older), durably. */
  prepend(entries: readonly LedgerEntry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    this.rows += entries.length;
    return this.run(async () => {
      const rest = await this.fileRest();
      const pending = this.pending.map(encode).join('');
      this.pending = [];
      const tmp = `${this.path}.tmp`;
      await appendSync(tmp, entries.map(encode).join('') + rest + pending, 'w');
      await rename(tmp, this.path);
      this.offset = 0;
      await rm(this.offsetPath, { force: true });
    });
  }

  /** The file past the offset (at most `limit` bytes; a window ending mid-line is trimmed by the reader). */
  private async fileRest(limit = Infinity): Promise<string> {
    if (limit === Infinity) {
      try {
        return (await readFile(this.path)).subarray(this.offset).toString('utf8');
      } catch {
        return '';
      }
    }
    let fh;
    try {
      fh = await open(this.path, 'r');
    } catch {
      return '';
    }
    try {
      const buf = Buffer.alloc(limit);
      const { bytesRead } = await fh.read(buf, 0, limit, this.offset);
      return buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  }

  private async reset(): Promise<void> {
    this.offset = 0;
    await rm(this.path, { force: true });
    await rm(this.offsetPath, { force: true });
  }

  private run<T>(op: () => Promise<T>): Promise<T> {
    const next = this.chain.then(op, op);
    this.chain = next.catch(() => undefined);
    return next;
  }
}

async function appendSync(path: string, text: string, flag = 'a'): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const fh = await open(path, flag);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// writer, seq, event id and day never contain a tab, and JSON escapes tabs inside strings.
function encode(e: LedgerEntry): string {
  return `${e.writer}\t${e.seq}\t${e.eventId}\t${e.day}\t${e.line}\n`;
}

function decode(line: string): LedgerEntry | undefined {
  const parts = line.split('\t');
  if (parts.length !== 5) return undefined;
  const [writer, seq, eventId, day, json] = parts as [string, string, string, string, string];
  const n = Number(seq);
  if (!Number.isSafeInteger(n) || !json.startsWith('{')) return undefined;
  return { writer, seq: n, eventId, day, line: json };
}
