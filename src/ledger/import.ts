// `tiergate ledger import`: puts back the rows a shutdown could give to neither its sink nor the spool's disk. Those
// are logged in full, one `ledger.rows_unsaved` line per sink (app.ts, ledger hooks), as the last place left for
// them; this reads such lines from log files and hands each row to the sink it was meant for.
//
// Running it twice must not store a row twice. Each logged batch becomes the rows of a writer of its own, named by
// a hash of its rows, with sequence numbers in its order, so a sink that holds them already skips them as it skips
// any replay (the Redis stream by the writer's mark, the file sink by the same mark or the event ids in its tail).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { checkedRow } from './row-check.js';
import type { LedgerEntry } from './sink.js';

/** The rows of one `ledger.rows_unsaved` log line, as entries for its sink. */
export interface UnsavedBatch {
  file: string;
  line: number;
  sink: string;
  entries: LedgerEntry[];
}

const EVENT = '"ledger.rows_unsaved"';

/**
 * Every `ledger.rows_unsaved` line of the given log files, in order. Other log lines are passed over. A batch
 * with a row that is not a ledger row (no event id, no timestamp, or a field the rollup reads missing or wrong:
 * row-check.ts) is an error naming its file and line: nothing is imported until the input is sound.
 */
export async function readUnsaved(files: readonly string[]): Promise<UnsavedBatch[]> {
  const batches: UnsavedBatch[] = [];
  for (const file of files) {
    const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
    let n = 0;
    for await (const text of lines) {
      n++;
      if (!text.includes(EVENT)) continue; // cheap: most of a log is other events
      let event: { event?: unknown; sink?: unknown; rows?: unknown };
      try {
        event = JSON.parse(text) as typeof event;
      } catch {
        continue; // a line that mentions the event but is not a log record (a shell line pasted into the log)
      }
      if (event.event !== 'ledger.rows_unsaved') continue;
      if (typeof event.sink !== 'string' || !Array.isArray(event.rows) || !event.rows.every((r) => typeof r === 'string')) {
        throw new Error(`${file}:${n}: a ledger.rows_unsaved line without its sink or rows`);
      }
      batches.push({ file, line: n, sink: event.sink, entries: entriesOf(event.rows as string[], `${file}:${n}`) });
    }
  }
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
