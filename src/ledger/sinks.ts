// Sinks from config. Read once at start: a config reload changes prices, not where rows go.
import type { Config } from '../config/schema.js';
import { FileSink } from './file-sink.js';
import { RedisStreamSink } from './redis-stream-sink.js';
import type { LedgerSink } from './sink.js';
import { StreamSink } from './stdout-sink.js';
import type { Logger } from '../telemetry/logger.js';

/** `log`: where a sink reports what it did about its storage that the rows' own outcomes do not show. */
export function createSinks(config: Config['ledger']['sinks'], log?: Logger): LedgerSink[] {
  return config.map((s) => {
    switch (s.type) {
      case 'file':
        return new FileSink({
          name: s.name,
          dir: s.dir,
          fsyncIntervalMs: s.fsyncIntervalMs,
          onReplaced: (path) => log?.warn({ event: 'ledger.file_replaced', sink: s.name, path, message: 'the day file was deleted or moved away while open; later rows go to a new file at its path' }),
        });
      case 'redis':
        return new RedisStreamSink({ name: s.name, url: s.url, cluster: s.cluster, stream: s.stream, maxLen: s.maxLen });
      case 'stdout':
        return new StreamSink(s.name, process.stdout);
    }
  });
}
