// Rows as JSON lines on a stream (stdout by default), for platforms that collect container output.
import type { Writable } from 'node:stream';
import type { LedgerEntry, LedgerSink } from './sink.js';

export class StreamSink implements LedgerSink {
  constructor(
    readonly name: string,
    private readonly out: Writable,
  ) {
    // A broken pipe surfaces through the write callback (and the ledger spools); unheard, the stream's
    // 'error' event would take the process down.
    out.on('error', () => undefined);
  }

  write(entries: readonly LedgerEntry[]): Promise<void> {
    const text = entries.map((e) => e.line).join('\n') + '\n';
    return new Promise((resolve, reject) => this.out.write(text, (err) => (err ? reject(err) : resolve())));
  }

  async close(): Promise<void> {}
}
