// An in-memory sink: the embedded default for tests and `tiergate dev`'s inspection, and the reference the
// sink contract tests compare Redis and files against.
import type { LedgerEntry, LedgerSink } from './sink.js';

export class MemorySink implements LedgerSink {
  readonly lines: string[] = [];
  private readonly ids = new Set<string>();

  constructor(readonly name = 'memory') {}

  async write(entries: readonly LedgerEntry[]): Promise<void> {
    for (const e of entries) {
      if (this.ids.has(e.eventId)) continue;
      this.ids.add(e.eventId);
      this.lines.push(e.line);
    }
  }

  rows<T = Record<string, unknown>>(): T[] {
    return this.lines.map((l) => JSON.parse(l) as T);
  }

  async close(): Promise<void> {}
}
