// Sinks from config. Read once at start: a config reload changes prices, not where rows go.
import type { Config } from '../config/schema.js';
import { FileSink } from './file-sink.js';
import { RedisStreamSink } from './redis-stream-sink.js';
import type { LedgerSink } from './sink.js';
import { StreamSink } from './stdout-sink.js';

export function createSinks(config: Config['ledger']['sinks']): LedgerSink[] {
  return config.map((s) => {
    switch (s.type) {
      case 'file':
        return new FileSink({ name: s.name, dir: s.dir, fsyncIntervalMs: s.fsyncIntervalMs });
      case 'redis':
        return new RedisStreamSink({ name: s.name, url: s.url, cluster: s.cluster, stream: s.stream, maxLen: s.maxLen });
      case 'stdout':
        return new StreamSink(s.name, process.stdout);
    }
  });
}
