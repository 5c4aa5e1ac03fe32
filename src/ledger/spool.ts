// A sink's spool: the rows it has not stored yet, in order, in a local file (one line per row), with the byte
// offset of what was already delivered kept beside it. Every file operation runs on one chain, so appends,
// reads and rewrites never interleave.
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LedgerEntry } from './sink.js';
import { appendSync, countRows, decode, encode, encodedBytes, isMissing, mendTornTail, READ_WINDOW } from './spool-file.js';

/** Spool.compactAfterBytes' default: a few windows, so that a short outage's spool simply empties. */
const COMPACT_AFTER_BYTES = 64 * 1024 * 1024;

export class Spool {
  private readonly path: string;
  private readonly offsetPath: string;
  private readonly tmpPath: string;
  private pending: LedgerEntry[] = [];
  /**
   * Rows handed to the disk (by prepend() or flush()) whose write has not finished, or not started behind one
   * that hangs: whether they are on it nobody knows yet. notOnDisk() gives them to a shutdown that stops waiting.
   */
  private readonly writing = new Set<readonly LedgerEntry[]>();
  private chain: Promise<unknown> = Promise.resolve();
  private flushScheduled = false;
  private offset = 0;
  /**
   * Rows in the file past the offset plus rows pending: the backlog. Until the file could be read (`loaded`),
   * only the rows this process spooled, which are not in the file yet.
   */
  private rows = 0;
  /** The bytes those rows take in the file (past the offset), pending rows as they will be written: the bound's measure. */
  private bytes = 0;
  /**
   * False until the file an earlier process may have left is read: only while a failing disk prevents it, after
   * the constructor. Its rows are unknown, and are delivered once it can be read; this process's rows need not
   * wait for them, since a sink tells rows apart by each writer's sequence numbers and those rows are another
   * writer's.
   */
  private loaded = false;

  /** hasRoomFor()'s bound (ledger.spoolMaxBytes); rows put in front (prepend) are not refused. */
  private readonly maxBytes: number;
  /** advance() compacts the file once its delivered front is this large and larger than what is left. */
  private readonly compactAfterBytes: number;

  /** The directory is created on first use: a healthy sink never touches the disk. */
  constructor(dir: string, name: string, opts: { maxBytes?: number | undefined; compactAfterBytes?: number | undefined } = {}) {
    this.maxBytes = opts.maxBytes ?? Infinity;
    this.compactAfterBytes = opts.compactAfterBytes ?? COMPACT_AFTER_BYTES;
    this.path = join(dir, `${name}.spool.jsonl`);
    this.offsetPath = `${this.path}.offset`;
    this.tmpPath = `${this.path}.tmp`;
    // A previous process may have left rows: they are delivered first. A spool that may exist but cannot be
    // read now (a failing disk) is read later (load()).
    try {
      this.load();
    } catch {
      // read again before the spool is next used
    }
    try {
      // A rewrite (prepend, compaction) that a crash or a disk error cut short; the file itself is intact.
      rmSync(this.tmpPath, { force: true });
    } catch {
      // the disk is failing: the next rewrite replaces it
    }
  }

  get size(): number {
    return this.rows;
  }

  /** Whether appending `e` keeps the spool within its bound (an empty spool takes any one row). */
  hasRoomFor(e: LedgerEntry): boolean {
    return this.bytes === 0 || this.bytes + encodedBytes(e) <= this.maxBytes;
  }

  /** No row is waiting that new rows must queue behind. */
  get isEmpty(): boolean {
    return this.rows === 0;
  }

  /** Something to deliver or to find out: rows waiting, or a file from an earlier process not read yet. */
  get hasWork(): boolean {
    return this.rows > 0 || !this.loaded;
  }

  /**
   * Learns the offset and the rows of the file an earlier process left, once; throws while the disk fails.
   * Synchronous, as at start: it runs once, and a spool is only read back after an outage. The file is read a
   * window at a time: a long outage's spool can be larger than the memory a container is given, and reading it
   * whole at start (as this did) made the restarted process the container's largest allocation.
   */
  private load(): void {
    if (this.loaded) return;
    let fd: number;
    try {
      fd = openSync(this.path, 'r+');
    } catch (err) {
      if (!isMissing(err)) throw err;
      // An offset without its file would be applied to the next spool file from its first row.
      rmSync(this.offsetPath, { force: true });
      this.offset = 0;
      this.loaded = true;
      return;
    }
    try {
      let offset = 0;
      try {
        offset = Number(readFileSync(this.offsetPath, 'utf8')) || 0;
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
      const size = mendTornTail(fd);
      this.offset = Math.min(offset, size);
      this.rows += countRows(fd, this.offset, size);
      this.bytes += size - this.offset;
    } finally {
      closeSync(fd);
    }
    this.loaded = true;
  }

  append(entries: readonly LedgerEntry[]): void {
    if (entries.length === 0) return;
    this.pending.push(...entries);
    this.rows += entries.length;
    for (const e of entries) this.bytes += encodedBytes(e);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => void this.flush().catch(() => undefined));
  }

  /** Writes pending rows to the file and fsyncs. Rejects when the disk does; the rows stay pending. */
  flush(): Promise<void> {
    return this.run(async () => {
      this.flushScheduled = false;
      if (this.pending.length === 0) return;
      this.load(); // rows written before the file is known would be counted twice
      const batch = this.pending;
      this.pending = [];
      this.writing.add(batch);
      try {
        await appendSync(this.path, batch.map(encode).join(''));
      } catch (err) {
        this.pending = batch.concat(this.pending);
        throw err;
      } finally {
        this.writing.delete(batch);
      }
    });
  }

  /** Up to `max` rows from the front, and the bytes they take. */
  read(max: number): Promise<{ entries: LedgerEntry[]; bytes: number; skipped: number }> {
    return this.run(async () => {
      this.load();
      let text = await this.fileRest(READ_WINDOW);
      // A window with no whole line in it holds the start of one longer than the window: read on to its end.
      if (text.length > 0 && !text.includes('\n')) text = await this.fileRest();
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
        if (line.length === 0) continue; // not a row, and not counted as one
        const e = decode(line);
        if (e) entries.push(e);
        else skipped++; // a foreign line: passed over, never retried forever
      }
      // Nothing left to read: the count follows the file (it can only have drifted through a torn write).
      if (entries.length === 0 && skipped === 0 && text.length === 0 && this.pending.length === 0) this.rows = this.bytes = 0;
      return { entries, bytes, skipped };
    });
  }

  /**
   * The first `count` rows (`bytes` long) were stored; when nothing is left the files go. The delivered front of
   * the file is otherwise dropped only by compaction: while rows keep arriving about as fast as the sink takes
   * the old ones the spool never empties, and the file, which the bound does not count, would grow without end
   * (on an emptyDir, until kubelet evicts the pod). So once the delivered front is past `compactAfterBytes` and
   * larger than what is left, the rest moves to a new file: what is copied is never more than what was
   * delivered since the last time, and the file stays under twice the bound.
   */
  advance(count: number, bytes: number): Promise<void> {
    return this.run(async () => {
      this.offset += bytes;
      this.rows -= count;
      this.bytes = Math.max(0, this.bytes - bytes);
      if (this.rows === 0 && this.pending.length === 0) {
        this.bytes = 0;
        return this.reset();
      }
      if (this.offset >= Math.max(this.compactAfterBytes, this.bytes)) {
        try {
          return await this.rewrite('');
        } catch {
          // The disk: the offset below keeps the progress, and the next advance tries again.
        }
      }
      await writeFile(this.offsetPath, String(this.offset));
    });
  }

  /**
   * Puts rows in front of everything spooled (a failed in-memory queue, which is older), durably. The count
   * grows at once, so that rows recorded meanwhile see a spool that is not empty and go behind them. When the
   * disk fails nothing changes: the rows stay the caller's and what was pending stays pending.
   */
  prepend(entries: readonly LedgerEntry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    const front = entries.map(encode).join('');
    const frontBytes = Buffer.byteLength(front);
    this.rows += entries.length;
    this.bytes += frontBytes;
    this.writing.add(entries);
    return this.run(async () => {
      try {
        await this.rewrite(front);
      } catch (err) {
        this.rows -= entries.length;
        this.bytes -= frontBytes;
        throw err;
      } finally {
        this.writing.delete(entries);
      }
    });
  }

  /**
   * A new file: `front`, then the rows past the offset, then the pending rows; it replaces the old one, offset 0.
   * Runs on the chain (its callers' ops). When the disk fails the old file and offset stay as they were.
   */
  private async rewrite(front: string): Promise<void> {
    let batch: LedgerEntry[] = [];
    try {
      this.load();
      await mkdir(dirname(this.tmpPath), { recursive: true });
      const fh = await open(this.tmpPath, 'w');
      try {
        await fh.writeFile(front);
        // The rows still to deliver are copied a window at a time: a long outage's spool can be larger than the
        // process's memory, and larger than the longest string V8 makes (~512 MiB) as this once read it.
        for (let at = this.offset; ; ) {
          const window = await this.fileBytes(at, READ_WINDOW);
          if (window.length === 0) break;
          await fh.writeFile(window);
          at += window.length;
        }
        batch = [...this.pending];
        await fh.writeFile(batch.map(encode).join(''));
        await fh.sync();
      } finally {
        await fh.close();
      }
      // The old offset goes before the new file comes: the other order, cut short by a crash, would leave the new
      // file with an offset into it, and the next process would skip its first rows.
      await rm(this.offsetPath, { force: true });
      await rename(this.tmpPath, this.path);
      this.offset = 0;
    } catch (err) {
      await rm(this.tmpPath, { force: true }).catch(() => undefined);
      throw err;
    }
    this.pending = this.pending.slice(batch.length); // rows appended while this ran stay pending
  }

  /**
   * When nothing older than the rows waiting in memory is in the file, hands those rows to `into` (the disk
   * has failed and the caller can still deliver them: they are next in order, after the caller's queue). Otherwise none: the file's rows
   * must go first, since sinks recognise rows they hold by each writer's highest sequence number, and a row
   * delivered after a later one of its writer would be taken for one already stored. (A file not read yet
   * holds only an earlier process's rows, or rows this process delivered before a reset failed: this process
   * writes to it only once it has read it.)
   */
  takeUnwritten(into: (entries: LedgerEntry[]) => void): Promise<number> {
    return this.run(async () => {
      if (this.loaded && this.rows !== this.pending.length) return 0;
      // Handed over in the same step as the spool becomes empty: rows recorded after this go behind them.
      const taken = this.abandonUnwritten();
      into(taken);
      return taken.length;
    });
  }

  /**
   * For a shutdown that stopped waiting for a disk that does not answer: the rows not known to be in the file
   * (those being written, then those pending). They stay where they are: a write that finishes
   * after all stores them twice, which the sinks and the rollup tell apart by their writer marks and event ids.
   */
  notOnDisk(): LedgerEntry[] {
    return [...this.writing].flat().concat(this.pending);
  }

  /** At shutdown, after a failed flush: the rows that never reached the file, which are now the caller's. */
  abandonUnwritten(): LedgerEntry[] {
    const taken = this.pending;
    this.pending = [];
    this.rows -= taken.length;
    for (const e of taken) this.bytes -= encodedBytes(e);
    return taken;
  }

  /**
   * Every row still in the file, oldest first, handed to `visit` a window at a time, for a shutdown whose spool
   * directory will not outlive the process (ledger.logSpoolAtExit). Nothing changes on disk: a process started
   * on the same directory still delivers them. Returns how many rows were visited.
   */
  forEachLeft(visit: (entries: LedgerEntry[]) => void): Promise<number> {
    return this.run(async () => {
      this.load();
      let n = 0;
      for (let at = this.offset; ; ) {
        let window = await this.fileBytes(at, READ_WINDOW);
        let end = window.lastIndexOf(0x0a);
        // A line longer than the window: read on to its end (as read() does).
        if (end === -1 && window.length === READ_WINDOW) end = (window = await this.fileBytes(at)).lastIndexOf(0x0a);
        if (end === -1) return n; // the end of the file (a torn last line was cut off when it was loaded)
        const entries: LedgerEntry[] = [];
        for (const line of window.subarray(0, end).toString('utf8').split('\n')) {
          const e = line.length > 0 ? decode(line) : undefined;
          if (e) entries.push(e);
        }
        n += entries.length;
        if (entries.length > 0) visit(entries);
        at += end + 1;
      }
    });
  }

  /**
   * The file past the offset (at most `limit` bytes; a window ending mid-line is trimmed by the reader). No
   * file is an empty spool; any other error is the disk's and is thrown: read as empty, it would let newer
   * rows overtake the ones the file holds.
   */
  private async fileRest(limit = Infinity): Promise<string> {
    return (await this.fileBytes(this.offset, limit)).toString('utf8');
  }

  /** At most `limit` bytes of the file from byte `from`; none when there is no file. */
  private async fileBytes(from: number, limit = Infinity): Promise<Buffer> {
    if (limit === Infinity) {
      try {
        return (await readFile(this.path)).subarray(from);
      } catch (err) {
        if (isMissing(err)) return Buffer.alloc(0);
        throw err;
      }
    }
    let fh;
    try {
      fh = await open(this.path, 'r');
    } catch (err) {
      if (isMissing(err)) return Buffer.alloc(0);
      throw err;
    }
    try {
      const buf = Buffer.alloc(limit);
      const { bytesRead } = await fh.read(buf, 0, limit, from);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  /**
   * Offset first: a crash (or a failing disk) between the two leaves the delivered file with no offset, whose
   * rows the next process sends again and the sinks skip. The other order would leave an offset behind, to be
   * applied to the next spool file from its first row.
   */
  private async reset(): Promise<void> {
    try {
      await rm(this.offsetPath, { force: true });
      await rm(this.path, { force: true });
      await rm(this.tmpPath, { force: true });
      this.offset = 0;
    } catch (err) {
      // The file may still be there, holding rows already delivered, with its offset or without. Counted as
      // empty while rows were appended behind those, the count would run out on the delivered ones and the
      // next reset would delete the new rows unsent. So it is read again from the disk before the spool is
      // next used (load()); the delivered rows are then sent again, and the sinks skip them by sequence number.
      this.loaded = false;
      throw err;
    }
  }

  private run<T>(op: () => Promise<T>): Promise<T> {
    const next = this.chain.then(op, op);
    this.chain = next.catch(() => undefined);
    return next;
  }
}
