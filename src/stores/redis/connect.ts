// One way to open a Redis connection for a store that sits on the request path: standalone or Cluster, short
// connect and command timeouts, no offline queue (a command while disconnected fails at once rather than
// waiting in ioredis' queue: the request must be answered inside Envoy's message timeout, by the store's
// failure rule if need be), and reconnects with a capped backoff.
import { Cluster, Command, Redis } from 'ioredis';
import { setDeadline } from '../../deadline-timer.js';

export interface RedisConnectOptions {
  url: string;
  cluster?: boolean | undefined;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
}

export function connectRedis(opts: RedisConnectOptions): Redis | Cluster {
  // No ioredis commandTimeout: its timer fails a command whose reply is already waiting to be read when the
  // event loop was held up; each command gets a deadline that reads what is waiting first instead.
  const common = { connectTimeout: opts.connectTimeoutMs, maxRetriesPerRequest: 0 };
  const ms = opts.commandTimeoutMs;
  let redis: Redis | Cluster;
  if (opts.cluster) {
    const seed = clusterSeed(opts.url);
    redis = withCommandDeadlines(new Cluster(seed.nodes, { enableOfflineQueue: false, clusterRetryStrategy: reconnectDelayMs, redisOptions: { ...common, ...seed.redisOptions } }), ms);
  } else {
    redis = withCommandDeadlines(new Redis(opts.url, { ...common, enableOfflineQueue: false, retryStrategy: reconnectDelayMs }), ms);
  }
  // Surfaced by failed commands and counted by the caller's breaker; the last one is kept for their messages.
  const password = passwordOf(opts.url);
  redis.on('error', (err: Error) => lastErrors.set(redis, password ? err.message.split(password).join('[redacted]') : err.message));
  redis.on('ready', () => lastErrors.delete(redis));
  return redis;
}

/** Per client, why its last connection attempt failed, until it is ready again. */
const lastErrors = new WeakMap<Redis | Cluster, string>();

/**
 * A client's state for a "not connected" message, with why it is not: `reconnecting; last error: WRONGPASS …`.
 * Without the reason a wrong password, a name that does not resolve and a refused port all read the same.
 */
export function connectionState(redis: Redis | Cluster): string {
  const why = lastErrors.get(redis);
  return why ? `${redis.status}; last error: ${why}` : redis.status;
}

function passwordOf(url: string): string {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return '';
  }
}

/**
 * How long before the n-th reconnect attempt in a row (n from 1): 50 ms more each time, at most 1 s. Soon enough
 * that a Redis back from a restart serves the next requests; a Redis gone for good costs one attempt a second
 * per connection once it has been gone some 10 s.
 */
export function reconnectDelayMs(n: number): number {
  return Math.min(50 * n, 1000);
}

/**
 * The client (standalone or Cluster) with every command given a deadline of `ms` (timeCommand): its own
 * sendCommand, in front of the prototype's, which every command the client sends goes through (its methods,
 * defined scripts, a Cluster's resends after a redirection).
 */
function withCommandDeadlines<C extends Redis | Cluster>(client: C, ms: number): C {
  const send = client.sendCommand.bind(client) as (command: Command, ...rest: unknown[]) => unknown;
  (client as { sendCommand: (command: Command, ...rest: unknown[]) => unknown }).sendCommand = (command, ...rest) => {
    timeCommand(command, ms);
    return send(command, ...rest);
  };
  return client;
}

/** Commands already given their deadline: a Cluster sends a command again after a MOVED or ASK redirection. */
const timed = new WeakSet<Command>();

/**
 * What ioredis' commandTimeout does (fail the command with "Command timed out" when no reply came within `ms`;
 * the reply, if it comes later, is read and dropped), on a deadline that lets a reply that arrived in time be
 * read first (src/deadline-timer.ts).
 */
function timeCommand(command: Command, ms: number): void {
  if (timed.has(command)) return;
  timed.add(command);
  const cancel = setDeadline(ms, () => {
    if (!command.isResolved) command.reject(new Error('Command timed out'));
  });
  command.promise.then(cancel, cancel);
}

/** A Cluster's seed node, and the credentials and TLS of its URL for every node the client finds. */
export function clusterSeed(url: string): { nodes: Array<{ host: string; port: number }>; redisOptions: { username?: string; password?: string; tls?: object } } {
  const { hostname, port, username, password } = new URL(url);
  return {
    nodes: [{ host: hostname, port: Number(port || 6379) }],
    redisOptions: {
      ...(username ? { username: decodeURIComponent(username) } : {}),
      ...(password ? { password: decodeURIComponent(password) } : {}),
      ...(url.startsWith('rediss:') ? { tls: {} } : {}),
    },
  };
}
