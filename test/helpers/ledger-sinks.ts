// Each ledger sink over storage that outlives it: `open()` gives a sink over the same storage each time (a
// reopen after a restart), `stored()` reads back what it holds, in stored order, as the rollup would.
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSink } from '../../src/ledger/file-sink.js';
import { MemorySink } from '../../src/ledger/memory-sink.js';
import { rowsFromFiles, rowsFromRedis } from '../../src/ledger/read.js';
import { RedisStreamSink } from '../../src/ledger/redis-stream-sink.js';
import type { LedgerRow } from '../../src/ledger/row.js';
import type { LedgerSink } from '../../src/ledger/sink.js';
import { collectRows } from './ledger-rows.js';

export interface SinkHarness {
  open(): LedgerSink;
  stored(): Promise<LedgerRow[]>;
}

/** Harness makers by sink type; each call of a maker gets storage of its own. */
export function sinkHarnesses(redisUrl: () => string, clusterUrl: () => string): Record<'memory' | 'file' | 'redis' | 'redis-cluster', () => SinkHarness> {
  const redis = (url: () => string, cluster: boolean) => (): SinkHarness => {
    // Streams without a hash tag: in a Cluster the writer's mark must still land in the stream's slot.
    const stream = `test:ledger:${Math.random().toString(36).slice(2)}`;
    return {
      open: () => new RedisStreamSink({ url: url(), cluster, stream, maxLen: 100_000 }),
      stored: () => collectRows(rowsFromRedis(url(), stream, undefined, cluster)),
    };
  };
  return {
    memory: () => {
      const sink = new MemorySink();
      return { open: () => sink, stored: async () => sink.rows<LedgerRow>() };
    },
    file: () => {
      const dir = mkdtempSync(join(tmpdir(), 'tiergate-file-sink-'));
      return {
        open: () => new FileSink({ dir, fsyncIntervalMs: 50 }),
        stored: () => collectRows(rowsFromFiles(readdirSync(dir).sort().map((f) => join(dir, f)))),
      };
    },
    redis: redis(redisUrl, false),
    'redis-cluster': redis(clusterUrl, true),
  };
}
