// JSON Lines files, one per UTC day (ledger-YYYY-MM-DD.jsonl), rotated on each row's own day so a row replayed
// after an outage lands in the file of the day it happened. Each batch is one append; fsync runs on a timer
// and on close, so a crash loses at most the last interval and a SIGTERM nothing. A row sent again (a replay
// after a write that timed out but landed) is recognised as the Redis sink does: per day file, each writer's
// highest sequence number written; rows of an earlier process, by the event ids in the file's tail.
import { openSync, readSync, closeSync, fstatSync, ftruncateSync, write, writeSync } from 'node:fs';
import { mkdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { withDeadline } from '../deadline-timer.js';
import { openForAppend } from './open-append.js';
import { groupEntries, type LedgerEntry, type LedgerSink } from './sink.js';
import { tornTail } from './torn-tail.js';

export interface FileSinkOptions {
  name?: string;
  dir: string;
  fsyncIntervalMs?: number;
  /** A day file was deleted or moved away while open: told with its path, as a new file takes its place. */
  onReplaced?: (path: string) => void;
}

/** How long close() waits for the disk (see close). */
export const CLOSE_WAIT_MS = 2_000;

/** How often, at most, the fsync timer checks that the open day files are still at their paths (see sync). */
export const PLACE_CHECK_MS = 1000;

/** How much of an existing file is read at open to learn the ids it already holds. */
const TAIL_BYTES = 4 * 1024 * 1024;

export function ledgerFileName(day: string): string {
  return `ledger-${day}.jsonl`;
}

export class FileSink implements LedgerSink {
  readonly name: string;
  private readonly files = new Map<string, DayFile>();
  private readonly timer: NodeJS.Timeout;
  private chain: Promise<unknown> = Promise.resolve();
  private placesCheckedAt = 0;

  constructor(private readonly opts: FileSinkOptions) {
    this.name = opts.name ?? 'file';
    this.timer = setInterval(() => void this.sync().catch(() => undefined), opts.fsyncIntervalMs ?? 1000);
    this.timer.unref();
  }

  /**
   * Writes run one after another. The ledger gives up on a write after its timeout and replays the same rows,
   * possibly while the first write is still running on a stalled disk; run side by side, both would find the
   * rows above the file's mark and append them twice. One at a time, the replay finds the mark moved and skips
   * them. (It also keeps two first writes of a day from opening the file twice.)
   */
  write(entries: readonly LedgerEntry[]): Promise<void> {
    const next = this.chain.then(() => this.append(entries));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async append(entries: readonly LedgerEntry[]): Promise<void> {
    for (const [day, list] of groupEntries(entries, (e) => e.day)) {
      const f = await this.file(day);
      // Entries arrive in sequence order (LedgerSink), and a file's mark only moves once its rows are written:
      // whatever is at or below it is in this file already. The marks are per file because a batch can span
      // two days and fail on the second after the first was written.
      const fresh = list.filter((e) => e.seq > (f.marks.get(e.writer) ?? 0) && !f.earlier.has(e.eventId));
      if (fresh.length === 0) continue;
      const data = Buffer.from(fresh.map((e) => e.line).join('\n') + '\n');
      try {
        await appendAll(f.fh.fd, data);
      } catch (err) {
        // A write that failed part way (a full disk) leaves part of a line; the next append would run on from it
        // into a line that is not JSON. What this batch wrote goes, and the replay writes it whole.
        try {
          ftruncateSync(f.fh.fd, f.size);
        } catch {
          // the disk refuses this too: the file sink's open cuts a torn last line off
        }
        throw err;
      }
      f.size += data.length;
      for (const e of fresh) f.marks.set(e.writer, e.seq);
      f.dirty = true;
    }
  }

  /**
   * Waits for the writes still running, fsyncs and closes the day files: for CLOSE_WAIT_MS at most. A write the
   * ledger gave up on (a stalled disk, a hung network mount) may still be running, and an fsync there may never
   * end. Its rows are in the spool already, since the ledger gave up on them; waiting for it kept the shutdown
   * from ever ending, until the orchestrator's SIGKILL cut off what was left of it (the traces' flush, the last
   * log lines). What is left is left to the exit.
   */
  async close(): Promise<void> {
    clearInterval(this.timer);
    const closed = await withDeadline(this.closeFiles().then(() => true), CLOSE_WAIT_MS, false);
    if (!closed) throw new Error(`ledger sink ${this.name}: its disk did not finish a write or fsync within ${CLOSE_WAIT_MS} ms of the shutdown; left to the exit`);
  }

  private async closeFiles(): Promise<void> {
    await this.chain;
    await this.sync();
    for (const f of this.files.values()) await f.fh.close();
    this.files.clear();
  }

  /**
   * On the timer: fsyncs the files written since the last tick, and finds any open file that is no longer at its
   * path. A day file deleted while open (a cleanup that ships and removes every file, today's too) took every
   * later row with it until the day ended: the appends went on into a file no one could read. One moved away
   * (renamed for shipping) kept taking rows after the move. The next batch for that day opens a new file at the
   * path instead, so what is lost is at most what was written in the last second (or fsync interval, if longer),
   * as with a crash. Checked here, asynchronously, not before each append: a synchronous stat on a hung network
   * mount would stall every stream, and an asynchronous one per batch costs a wake-up of the process each time.
   */
  private async sync(): Promise<void> {
    // At most once a second, however short the fsync interval: two stats per file on every 1 ms tick would cost
    // more than the fsyncs they ride along with.
    const now = Date.now();
    const checkPlaces = now - this.placesCheckedAt >= PLACE_CHECK_MS;
    if (checkPlaces) this.placesCheckedAt = now;
    for (const f of this.files.values()) {
      if (f.dirty) {
        f.dirty = false;
        await f.fh.sync();
      }
      if (checkPlaces && !f.replaced && !(await atPath(f))) {
        f.replaced = true;
        this.opts.onReplaced?.(f.path);
      }
    }
  }

  private async file(day: string) {
    let f = this.files.get(day);
    if (f && !f.replaced) return f;
    if (f) {
      this.files.delete(day);
      await f.fh.close().catch(() => undefined);
    }
    await mkdir(this.opts.dir, { recursive: true });
    const path = join(this.opts.dir, ledgerFileName(day));
    const earlier = new Set(idsInTail(path));
    const { fh, size } = await openForAppend(path);
    f = { fh, path, earlier, marks: new Map(), dirty: false, replaced: false, size };
    this.files.set(day, f);
    // Yesterday stays open for late rows; anything older is closed, but never the file just opened: a row
    // older than both open days (a replay after a long outage, a batch listing its days newest first) would
    // otherwise be written to a closed descriptor, fail on every replay, and hold every row behind it.
    while (this.files.size > 2) {
      const [oldDay, old] = [...this.files.entries()].filter(([d]) => d !== day).sort(([a], [b]) => a.localeCompare(b))[0] as [string, typeof f];
      this.files.delete(oldDay);
      await old.fh.sync();
      await old.fh.close();
    }
    return f;
  }
}

/**
 * One batch appended through the callback `fs.write` on the handle's descriptor (opened with O_APPEND), looping
 * over short writes. `FileHandle.appendFile` does the same through promise-based bindings at a higher cost in
 * CPU: 8 µs per request more in bench:ab (9 of 10 rounds), 13–17 µs in interleaved runs of the two variants.
 */
function appendAll(fd: number, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const from = (offset: number): void =>
      void write(fd, data, offset, data.length - offset, null, (err, n) => {
        if (err) reject(err);
        else if (offset + n < data.length) from(offset + n);
        else resolve();
      });
    from(0);
  });
}

/**
 * Whether the open file is still the one its path names. A disk that fails to answer counts as yes: what to do
 * about a failing disk is the writes' to find out, not a reason to open another file on it.
 */
async function atPath(f: DayFile): Promise<boolean> {
  try {
    const [open, named] = await Promise.all([f.fh.stat(), stat(f.path).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)))]);
    return open.nlink > 0 && named !== undefined && named.ino === open.ino && named.dev === open.dev;
  } catch {
    return true;
  }
}

interface DayFile {
  fh: FileHandle;
  path: string;
  /** Deleted or moved away while open: the next write for its day opens a new file at the path. */
  replaced: boolean;
  /** The file's length after the last write that succeeded. */
  size: number;
  /** Event ids in the file's tail when it was opened: rows of an earlier process, which a replay may repeat. */
  earlier: ReadonlySet<string>;
  /** Per writer, the highest sequence number written to this file by this sink. */
  marks: Map<string, number>;
  dirty: boolean;
}

/**
 * The event ids in a day file's tail, after mending a torn last line (torn-tail.ts): left there, its id would
 * also make the replay of its row look stored.
 */
function idsInTail(path: string): string[] {
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch {
    return [];
  }
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, TAIL_BYTES);
    let buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    const torn = tornTail(buf, isJson);
    if (torn === 'complete') writeSync(fd, '\n', size);
    // (A torn line longer than the tail is not cut, since no row is that long: the rollup names it.)
    else if (torn && (torn.cutTo > 0 || len === size)) {
      ftruncateSync(fd, size - len + torn.cutTo);
      buf = buf.subarray(0, torn.cutTo);
    }
    return eventIdsIn(buf);
  } finally {
    closeSync(fd);
  }
}

function isJson(b: Buffer): boolean {
  try {
    JSON.parse(b.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

const EVENT_ID_KEY = Buffer.from('"event_id":"');

/**
 * The event ids in JSON lines, read straight from the bytes: each id becomes its own small string. Matching a
 * regex over the tail decoded as one string would keep that whole string (up to TAIL_BYTES) alive for as
 * long as one id sliced from it is still remembered. Inside a JSON string a quote is always escaped, so the
 * key's bytes only match the key itself.
 */
export function eventIdsIn(buf: Buffer): string[] {
  const ids: string[] = [];
  for (let at = buf.indexOf(EVENT_ID_KEY); at !== -1; ) {
    const start = at + EVENT_ID_KEY.length;
    const end = buf.indexOf(0x22, start);
    if (end === -1) break;
    if (end > start) ids.push(buf.toString('utf8', start, end));
    at = buf.indexOf(EVENT_ID_KEY, end + 1);
  }
  return ids;
}
