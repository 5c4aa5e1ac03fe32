// Reading the ledger back (rollups, tests): JSON Lines files, or the Redis stream. Rows stream one at a time;
// a day's ledger never has to fit in memory.
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { clusterSeed } from '../stores/redis/connect.js';
import { ledgerFileName } from './file-sink.js';
import type { LedgerRow } from './row.js';
import { isLoggedRowsRecord } from './import.js';
import { checkedRow, InvalidRowError } from './row-check.js';
import { isGzip, textLines } from '../text-lines.js';
import { recordText } from './log-line.js';

/**
 * A file, or a directory holding ledger-YYYY-MM-DD.jsonl files (then only `day`'s file is read; compressed as
 * ledger-YYYY-MM-DD.jsonl.gz when the plain one is not there, as a log rotation leaves old days).
 */
export function ledgerFilesFor(path: string, day: string | undefined): string[] {
  if (!statSync(path).isDirectory()) return [path];
  if (!day) throw new Error(`${path} is a directory: name a period to read its ledger-YYYY-MM-DD.jsonl files`);
  const f = join(path, ledgerFileName(day));
  if (existsSync(f)) return [f];
  return existsSync(`${f}.gz`) ? [`${f}.gz`] : [];
}

/**
 * Told of each line that is not a ledger row (not JSON, or JSON without the fields a row has), which is then
 * skipped. Without it such a line is an error naming it: a rollup that quietly left rows out would be wrong.
 */
export type OnInvalid = (problem: string) => void;

/**
 * The rows of JSON Lines files, in order. A line that is not a ledger row is an error naming it (or, with
 * `onInvalid`, reported and skipped), except a last line that is not JSON and has no newline after it: the torn
 * end of an append that a crash cut short (its row was never acknowledged, and the file sink cuts it off when
 * it next opens the file). That one is passed to `onTorn` and skipped, so a crashed pod's day can still be summed.
 */
export async function* rowsFromFiles(
  files: readonly string[],
  onTorn: (file: string, line: number) => void = () => undefined,
  onInvalid?: OnInvalid,
): AsyncGenerator<LedgerRow> {
  const invalid = reportOrThrow(onInvalid);
  for (const file of files) {
    // A compressed file was complete when it was compressed: its last line is never an append cut short.
    const gzip = isGzip(file);
    const lastLineTorn = !gzip && !endsWithNewline(file);
    const lines = textLines(file, gzip);
    let n = 0;
    let bad: number | undefined;
    for await (const line of lines) {
      n++;
      if (bad !== undefined) {
        invalid(`${file}:${bad}: not JSON`);
        bad = undefined;
      }
      if (line.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        bad = n; // not JSON: an error unless it turns out to be the torn last line
        continue;
      }
      const row = rowOrInvalid(value, `${file}:${n}`, invalid);
      if (row) yield row;
    }
    if (bad === undefined) continue;
    if (lastLineTorn) onTorn(file, bad);
    else invalid(`${file}:${bad}: not JSON`);
  }
}

/**
 * The ledger rows among a process's log lines: what the `stdout` sink wrote, as a container runtime keeps it
 * (`/var/log/pods/…`, `<time> stdout F <row>`), as `kubectl logs [--timestamps]` prints it, or as a log archive
 * exports it line for line. The sink's rows come between tiergate's own log records there: a line whose JSON
 * object has a `schema_version` is a row (and one that is not a whole row is an error naming it, or reported to
 * `onInvalid`). The rows of a `ledger.rows_unsaved` or `ledger.rows_left_in_spool` record count too: a row the
 * stdout sink itself could not take (its spool full or its disk failing) is only there, and one that is in both
 * places counts once, as every row does, by event_id. Every other line (a log record, anything not JSON) is
 * passed over. Only rows of `day` when given.
 */
/**
 * A log line that can hold a row, plainly or inside a record for import: every row has a schema_version. The one
 * test both rowsFromLogs() and datesInLogs() apply, so that the files a day skips can hold none of its rows.
 */
function mayHoldRow(line: string): boolean {
  return line.includes('schema_version');
}

export async function* rowsFromLogs(files: readonly string[], day?: string, onInvalid?: OnInvalid): AsyncGenerator<LedgerRow> {
  const invalid = reportOrThrow(onInvalid);
  const ofDay = (row: LedgerRow | undefined): row is LedgerRow => row !== undefined && (!day || row.timestamp.startsWith(day));
  for (const file of files) {
    const lines = textLines(file);
    let n = 0;
    for await (const line of lines) {
      n++;
      // Cheap passes first: a row of the day has its date in its timestamp, and every row a schema_version
      // (quoted, or escaped inside a record's rows).
      if ((day && !line.includes(day)) || !mayHoldRow(line)) continue;
      const record = recordText(line);
      let value: unknown;
      try {
        value = JSON.parse(record);
      } catch {
        // A row the log pipeline damaged, or a log record that only mentions the word: the first is an error.
        if (/^\{\s*"schema_version"/.test(record)) invalid(`${file}:${n}: not JSON`);
        continue;
      }
      if (typeof value !== 'object' || value === null) continue;
      if ('schema_version' in value) {
        const row = rowOrInvalid(value, `${file}:${n}`, invalid);
        if (ofDay(row)) yield row;
        continue;
      }
      if (!isLoggedRowsRecord(value) || !Array.isArray(value.rows)) continue; // a log record
      for (const [i, text] of value.rows.entries()) {
        const where = `${file}:${n}: row ${i + 1}`;
        let parsed: unknown;
        try {
          parsed = JSON.parse(String(text));
        } catch {
          invalid(`${where}: not JSON`);
          continue;
        }
        const row = rowOrInvalid(parsed, where, invalid);
        if (ofDay(row)) yield row;
      }
    }
  }
}

/**
 * For each log file, every date (YYYY-MM-DD) written on a line that could hold a row (one rowsFromLogs() does not
 * pass over unread): a file without a day's date holds no row of that day. A period's rollup reads each day's
 * rows from every file named; with this, a day reads only the files that can hold it, and a month of daily log
 * files is read about twice instead of once per day. A date that is not a row's (a line's time prefix) only
 * makes a file read for nothing.
 */
export async function datesInLogs(files: readonly string[]): Promise<Map<string, Set<string>>> {
  const dates = new Map<string, Set<string>>();
  for (const file of files) {
    const found = new Set<string>();
    const lines = textLines(file);
    for await (const line of lines) {
      if (!mayHoldRow(line)) continue;
      for (const m of line.matchAll(/\d{4}-\d{2}-\d{2}/g)) found.add(m[0]);
    }
    dates.set(file, found);
  }
  return dates;
}

/** What to do with a line that is not a row: tell `onInvalid`, or without one stop with an error naming it. */
function reportOrThrow(onInvalid: OnInvalid | undefined): OnInvalid {
  return (problem) => {
    if (!onInvalid) throw new InvalidRowError(problem);
    onInvalid(problem);
  };
}

function rowOrInvalid(value: unknown, where: string, invalid: OnInvalid): LedgerRow | undefined {
  try {
    return checkedRow(value, where);
  } catch (err) {
    if (!(err instanceof InvalidRowError)) throw err;
    invalid(err.message);
    return undefined;
  }
}

function endsWithNewline(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return true;
    const last = Buffer.alloc(1);
    readSync(fd, last, 0, 1, size - 1);
    return last[0] === 0x0a;
  } finally {
    closeSync(fd);
  }
}

/**
 * A stream entry's id starts with the Redis server's time in ms when it was added; a row's timestamp is
 * tiergate's time when its request arrived, and the row is added after that. A Redis clock behind tiergate's
 * would put the first rows of a day under ids from the day before: the scan of a day starts this much earlier.
 */
export const STREAM_CLOCK_MARGIN_MS = 3_600_000;

/** Where the scan of `day`'s rows starts: the day's first ms, less the clock margin. */
export function dayScanStart(day: string): number {
  return Date.parse(`${day}T00:00:00Z`) - STREAM_CLOCK_MARGIN_MS;
}

/**
 * Entries of the stream, oldest first, in pages; only rows whose timestamp falls on `day` when given. `cluster`:
 * `url` is a node of a Redis Cluster (the client finds the stream's node).
 */
export async function* rowsFromRedis(url: string, stream: string, day?: string, cluster = false, onInvalid?: OnInvalid): AsyncGenerator<LedgerRow> {
  const invalid = reportOrThrow(onInvalid);
  const redis = await redisClient(url, cluster);
  try {
    // A day's rows were added from that day on (rows replayed after an outage later still), so the scan starts at
    // the day (less the clock margin) and filters on the row's timestamp.
    let start = day ? String(dayScanStart(day)) : '-';
    for (;;) {
      const page = await redis.xrange(stream, start, '+', 'COUNT', 1000);
      if (page.length === 0) return;
      for (const [id, fields] of page) {
        const i = fields.indexOf('row');
        if (i === -1) continue;
        const where = `${stream} entry ${id}`;
        let value: unknown;
        try {
          value = JSON.parse(fields[i + 1] as string);
        } catch {
          invalid(`${where}: not JSON`);
          continue;
        }
        const row = rowOrInvalid(value, where, invalid);
        if (row && (!day || row.timestamp.startsWith(day))) yield row;
      }
      start = `(${(page[page.length - 1] as [string, string[]])[0]}`;
    }
  } finally {
    redis.disconnect();
  }
}

/**
 * A time (ms) before which the stream may have lost entries: the redis sink's `MAXLEN ~ maxLen` trims the oldest
 * entries away, so everything added before its first entry is gone (and an entry deleted by hand counts too). 0
 * when it has lost none; undefined when Redis cannot say (XINFO STREAM counts entries-added from Redis 7.0).
 * (max-deleted-entry-id alone would not do: Redis 7.0 leaves it at 0-0 after a trim.) No such stream is an error:
 * a misspelt `--stream` (or database in the URL) read as an empty ledger, and a rollup of $0 exited 0.
 */
export async function streamLostBefore(url: string, stream: string, cluster = false): Promise<number | undefined> {
  const redis = await redisClient(url, cluster);
  try {
    let info: unknown[];
    try {
      info = (await redis.xinfo('STREAM', stream)) as unknown[];
    } catch (err) {
      if (err instanceof Error && /no such key/i.test(err.message)) {
        throw new Error(`${redactedUrl(url)} holds no stream "${stream}", so nothing was summed: is --stream, or the database in the URL, the one the redis sink writes to?`);
      }
      throw err;
    }
    const field = (name: string): unknown => {
      const i = info.indexOf(name);
      return i === -1 ? undefined : info[i + 1];
    };
    const added = field('entries-added');
    if (added === undefined) return undefined;
    if (Number(added) <= Number(field('length'))) return 0;
    const ms = (id: unknown) => Number(String(id).split('-')[0]);
    const first = field('first-entry') as [string, string[]] | null;
    // No entry left: everything up to the last one added is gone.
    const trimmedBefore = first ? ms(first[0]) : ms(field('last-generated-id')) + 1;
    return Math.max(trimmedBefore, ms(field('max-deleted-entry-id')) + 1);
  } finally {
    redis.disconnect();
  }
}

/**
 * Reading the stream is a command someone, or a cron job, waits on: it must end. With ioredis' defaults (reconnect
 * for ever, no timeout on a command) an unreachable Redis held `tiergate ledger rollup --redis` for ever, printing
 * "[ioredis] Unhandled error event" every time it tried again. Now five reconnects over 3.75 s (a restarting Redis
 * is waited for), then the error; a connection attempt, the whole wait to connect (15 s) and each command are
 * bounded.
 */
const retry = (attempt: number) => (attempt <= 5 ? attempt * 250 : null);
const BOUNDED = { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 10_000, commandTimeout: 10_000 } as const;
const CONNECT_DEADLINE_MS = 15_000;

/** A connected client; the connection error (with where it was going) when there is none. */
async function redisClient(url: string, cluster: boolean): Promise<Redis | Cluster> {
  const seed = cluster ? clusterSeed(url) : undefined;
  const redis = seed
    ? new Cluster(seed.nodes, { lazyConnect: true, clusterRetryStrategy: retry, redisOptions: { ...BOUNDED, ...seed.redisOptions } })
    : new Redis(url, { ...BOUNDED, retryStrategy: retry });
  // Reported once, below, by what went wrong last (ioredis ends with "Connection is closed" after its retries).
  let last: Error | undefined;
  redis.on('error', (e: Error) => (last = e));
  // connect() rejects at the first refused attempt, while the client goes on reconnecting by the strategy above:
  // waited on alone, the reconnects were never reached. The client's own end is the answer: ready, or given up.
  // A server that takes connections and never answers leaves the client waiting on its ready check until its
  // command timeout and reconnects run out (136 s measured): the whole wait is bounded too.
  let timedOut!: () => void;
  const settled = new Promise<void>((resolve, reject) => {
    redis.once('ready', resolve);
    redis.once('end', () => reject(last ?? new Error('Connection is closed.')));
    timedOut = () => reject(new Error(`no ready connection within ${CONNECT_DEADLINE_MS / 1000} s${last ? ` (last error: ${last.message})` : ''}`));
  });
  const deadline = setTimeout(timedOut, CONNECT_DEADLINE_MS);
  redis.connect().catch(() => undefined);
  try {
    await settled;
    return redis;
  } catch (err) {
    redis.disconnect();
    throw new Error(`could not read the ledger from Redis at ${redactedUrl(url)}: ${(err as Error).message}`);
  } finally {
    clearTimeout(deadline);
  }
}

/** The URL without its password, for an error message. */
function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
