// Rows as JSON lines on a stream (stdout by default), for platforms that collect container output.
import type { Writable } from 'node:stream';
import type { LedgerEntry, LedgerSink } from './sink.js';

export class StreamSink implements LedgerSink {
  constructor(
    readonly name: string,
    private readonly out: Writable,
  ) {}

  write(entries: readonly LedgerEntry[]): Promise<void> {
    const text = entries.map((e) => e.line).join('\n') + '\n';
    return new Promise((resolve, reject) => this.out.write(text, (err) => (err ? reject(err) : resolve())));
  }

  async close(): Promise<void> {}
}
