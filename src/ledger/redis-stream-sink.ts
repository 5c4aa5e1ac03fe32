// Redis Stream sink: XADD with an approximate MAXLEN, a whole batch in one atomic script. The script keeps a
// high-water mark per tiergate process (its last stored sequence number) and skips entries at or below it, so
// a batch replayed after a timeout that did reach Redis is never stored twice.
import type { Cluster, Redis } from 'ioredis';
import { connectRedis } from '../stores/redis/connect.js';
import { hashTag } from '../stores/redis/hash-tag.js';
import { whenReady } from '../stores/redis/when-ready.js';
import { groupEntries, type LedgerEntry, type LedgerSink } from './sink.js';

export interface RedisStreamSinkOptions {
  name?: string;
  url: string;
  /** A Redis Cluster, `url` being one of its nodes. */
  cluster?: boolean;
  stream: string;
  maxLen: number;
  /** How long a process's high-water mark outlives its last write. */
  markTtlSeconds?: number;
}

// KEYS[1] stream, KEYS[2] this writer's mark; ARGV[1] maxlen, ARGV[2] mark ttl, then (seq, event_id, row)…
// Entries arrive in sequence order, so one number per writer is enough to recognise what is already stored.
const APPEND = `
local mark = tonumber(redis.call('GET', KEYS[2]) or '0')
local added = 0
for i = 3, #ARGV, 3 do
  local seq = tonumber(ARGV[i])
  if seq > mark then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'event_id', ARGV[i + 1], 'row', ARGV[i + 2])
    mark = seq
    added = added + 1
  end
end
redis.call('SET', KEYS[2], mark, 'EX', ARGV[2])
return added
`;

const CONNECT_WAIT_MS = 1000;
/** A batch script's own limit; the ledger's writeTimeoutMs is what decides when a write has failed. */
const COMMAND_TIMEOUT_MS = 10_000;

type AppendClient = (Redis | Cluster) & { tiergateLedgerAppend(...args: Array<string | number>): Promise<number> };

export class RedisStreamSink implements LedgerSink {
  readonly name: string;
  readonly redis: AppendClient;

  constructor(private readonly opts: RedisStreamSinkOptions) {
    this.name = opts.name ?? 'redis';
    // No offline queue: while Redis is away the ledger spools and replays; rows must not pile up in ioredis.
    this.redis = connectRedis({ url: opts.url, cluster: opts.cluster, connectTimeoutMs: CONNECT_WAIT_MS, commandTimeoutMs: COMMAND_TIMEOUT_MS }) as AppendClient;
    this.redis.defineCommand('tiergateLedgerAppend', { numberOfKeys: 2, lua: APPEND });
  }

  /**
   * A writer's mark lives in the stream's Redis Cluster slot, as the script needs: beside a stream with a hash
   * tag it shares the tag; in a Cluster, the whole name of a stream without one is the mark's tag (the slot of a
   * key without a tag is that of its whole name). Standalone keeps the plain name it always had.
   */
  private markKey(writer: string): string {
    const { stream, cluster } = this.opts;
    return cluster && hashTag(stream) === stream ? `{${stream}}:mark:${writer}` : `${stream}:mark:${writer}`;
  }

  async write(entries: readonly LedgerEntry[]): Promise<void> {
    // Waiting briefly for a reconnect spares a batch a needless trip through the spool.
    await whenReady(this.redis, CONNECT_WAIT_MS, 'redis ledger sink');
    for (const [writer, list] of groupEntries(entries, (e) => e.writer)) {
      const args: Array<string | number> = [this.opts.stream, this.markKey(writer), this.opts.maxLen, this.opts.markTtlSeconds ?? 7 * 86_400];
      for (const e of list) args.push(e.seq, e.eventId, e.line);
      await this.redis.tiergateLedgerAppend(...args);
    }
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
