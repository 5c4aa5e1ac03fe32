// What the ledger hands its sinks. Each entry carries the writer's id and a per-writer sequence number
// assigned once, when the row is recorded: replayed entries keep them, so a sink can tell a row it already
// holds from a new one (and never write it twice).

export interface LedgerEntry {
  readonly eventId: string;
  /** UTC day of the row's timestamp (YYYY-MM-DD): the file sink rotates on it. */
  readonly day: string;
  /** The row as one JSON line, without the newline. */
  readonly line: string;
  /** The tiergate process that recorded the row. */
  readonly writer: string;
  /** Increases by one per row recorded by `writer`, in order. */
  readonly seq: number;
}

export interface LedgerSink {
  /** Unique among the configured sinks; names the spool file and the metric label. */
  readonly name: string;
  /** Stores every entry or throws; entries arrive in sequence order. Must skip entries it already holds. */
  write(entries: readonly LedgerEntry[]): Promise<void>;
  close(): Promise<void>;
}

/** Entries grouped by a key, each group in the original (sequence) order. */
export function groupEntries(entries: readonly LedgerEntry[], key: (e: LedgerEntry) => string): Map<string, LedgerEntry[]> {
  const groups = new Map<string, LedgerEntry[]>();
  for (const e of entries) {
    const k = key(e);
    const list = groups.get(k);
    if (list) list.push(e);
    else groups.set(k, [e]);
  }
  return groups;
}
