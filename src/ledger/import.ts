// `tiergate ledger import`: puts back rows a shutdown logged in full. Two kinds of lines (app.ts, ledger hooks):
// `ledger.rows_unsaved`, rows a closing process could give to neither its sink nor the spool's disk, and, with
// `ledger.logSpoolAtExit`, `ledger.rows_left_in_spool`, rows kept in a spool directory that may not outlive the
// process (a pod's emptyDir). This reads such lines from log files and hands each row to the sink it was meant for.
//
// Running it twice must not store a row twice. Each logged batch becomes the rows of a writer of its own, named by
// a hash of its rows, with sequence numbers in its order, so a sink that holds them already skips them as it skips
// any replay (the Redis stream by the writer's mark, the file sink by the same mark or the event ids in its tail).
// Rows that also reach the sink by another way (a spool that did outlive its process and was replayed by the next
// one) are stored under their own writer as well: there the rollup counts each row once, by its event id.
import { createHash } from 'node:crypto';
import { checkedRow } from './row-check.js';
import type { LedgerEntry } from './sink.js';
import { recordText } from './log-line.js';
import { textLines } from '../text-lines.js';

/** The rows of one logged batch, as entries for its sink. */
export interface LoggedBatch {
  file: string;
  line: number;
  sink: string;
  entries: LedgerEntry[];
  /** Rows of the line left out because an earlier line of the logs held them for the same sink. */
  repeated: number;
}

export const LOGGED_ROW_EVENTS: readonly string[] = ['ledger.rows_unsaved', 'ledger.rows_left_in_spool'];

/** A parsed log record that carries rows in full (one of LOGGED_ROW_EVENTS); its sink and rows still unchecked. */
export interface LoggedRowsRecord {
  event: string;
  sink?: unknown;
  rows?: unknown;
}

export function isLoggedRowsRecord(value: unknown): value is LoggedRowsRecord {
  const event = (value as { event?: unknown } | null)?.event;
  return typeof value === 'object' && typeof event === 'string' && LOGGED_ROW_EVENTS.includes(event);
}

/**
 * Container runtimes cut log lines longer than 16 KiB into pieces (containerd's max_container_log_line_size
 * and Docker's json-file driver), which a log pipeline may not join again: a row split across two pieces could
 * not be imported. So rows are logged a few at a time: each line's rows take under 12 KiB as logged (a row is
 * ~1 KB, a little more escaped; one larger than that goes alone).
 */
const LOG_LINE_ROW_BYTES = 12 * 1024;

export function* logLineRows(entries: readonly LedgerEntry[]): Generator<string[]> {
  let rows: string[] = [];
  let bytes = 0;
  for (const e of entries) {
    const size = Buffer.byteLength(JSON.stringify(e.line)) + 1; // as it appears in the log line: escaped, a comma
    if (rows.length > 0 && bytes + size > LOG_LINE_ROW_BYTES) {
      yield rows;
      rows = [];
      bytes = 0;
    }
    rows.push(e.line);
    bytes += size;
  }
  if (rows.length > 0) yield rows;
}

/**
 * Every logged batch of rows in the given log files, in order. Other log lines are passed over. A line may carry
 * a prefix before its JSON record (`kubectl logs --timestamps`, a container runtime's own log files). A batch
 * with a row that is not a ledger row (no event id, no timestamp, or a field the rollup reads missing or wrong:
 * row-check.ts) is an error naming its file and line. A line that names one of the events but holds no log
 * record is passed over and reported through `skipped` (a shell command pasted into the log, or a line a log
 * pipeline cut in pieces). One batch at a time: a long outage's logs hold millions of rows.
 */
export async function* loggedBatches(files: readonly string[], skipped: (file: string, line: number) => void = () => undefined): AsyncGenerator<LoggedBatch> {
  // A pod whose container restarted while its sink was down logs its spool at every exit, each time with the
  // rows of the exits before: each row is taken once per sink, from the first line that holds it. (A row's
  // sequence number stays its place in its line, so a second run of the same logs gives the same entries.)
  const seen = new Map<string, Set<string>>(); // per sink, the event ids taken (idKey)
  for (const file of files) {
    const lines = textLines(file);
    let n = 0;
    for await (const text of lines) {
      n++;
      // Cheap: most of a log is other events. (Not the quoted name: in a Docker json-file entry its quotes are escaped.)
      if (!LOGGED_ROW_EVENTS.some((e) => text.includes(e))) continue;
      let event: unknown;
      try {
        event = JSON.parse(recordText(text));
      } catch {
        skipped(file, n);
        continue;
      }
      if (!isLoggedRowsRecord(event)) continue;
      if (typeof event.sink !== 'string' || !Array.isArray(event.rows) || !event.rows.every((r) => typeof r === 'string')) {
        throw new Error(`${file}:${n}: a ${event.event} line without its sink or rows`);
      }
      const all = entriesOf(event.rows as string[], `${file}:${n}`);
      const sink = event.sink;
      let taken = seen.get(sink);
      if (!taken) seen.set(sink, (taken = new Set()));
      const entries: LedgerEntry[] = [];
      for (const e of all) {
        const key = idKey(e.eventId);
        if (taken.has(key)) continue;
        taken.add(key);
        entries.push(e);
      }
      yield { file, line: n, sink, entries, repeated: all.length - entries.length };
    }
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/; // lower case: hex decoding would fold case

/**
 * An event id as a key of the set of ids taken: a long outage's logs hold millions of rows, and the set is what
 * the import keeps. tiergate's ids are UUIDs: their 16 bytes as a 16-character one-byte string. Any other id is
 * kept whole behind a character no such key holds, so the two kinds never meet.
 */
function idKey(eventId: string): string {
  if (UUID.test(eventId)) return Buffer.from(eventId.replaceAll('-', ''), 'hex').toString('latin1');
  return `\u0100${eventId}`;
}

/** loggedBatches, all of them (for logs small enough to hold). */
export async function readLoggedRows(files: readonly string[], skipped?: (file: string, line: number) => void): Promise<LoggedBatch[]> {
  const batches: LoggedBatch[] = [];
  for await (const b of loggedBatches(files, skipped)) batches.push(b);
  return batches;
}

function entriesOf(rows: readonly string[], where: string): LedgerEntry[] {
  const writer = `import-${createHash('sha256').update(rows.join('\n')).digest('hex').slice(0, 24)}`;
  return rows.map((line, i) => {
    let row: { event_id?: unknown; timestamp?: unknown };
    try {
      row = JSON.parse(line) as typeof row;
    } catch {
      throw new Error(`${where}: row ${i + 1} is not JSON`);
    }
    const ts = typeof row.timestamp === 'string' ? row.timestamp : '';
    if (typeof row.event_id !== 'string' || row.event_id === '' || Number.isNaN(Date.parse(ts))) {
      throw new Error(`${where}: row ${i + 1} is not a ledger row (it needs event_id and an ISO timestamp)`);
    }
    // And whatever a rollup reads, the timestamp's ISO form among it: a row imported here must not be the line
    // that stops next month's sums.
    checkedRow(row, `${where}: row ${i + 1}`);
    // The row's own UTC day, as the ledger writer derives it: the file sink puts it in that day's file.
    return { eventId: row.event_id, day: ts.slice(0, 10), line, writer, seq: i + 1 };
  });
}
