// One way to open a Redis connection for a store that sits on the request path: standalone or Cluster, short
// connect and command timeouts, no offline queue (a command while disconnected fails at once rather than
// waiting in ioredis' queue: the request must be answered inside Envoy's message timeout, by the store's
// failure rule if need be), and reconnects with a capped backoff.
import { Cluster, Redis } from 'ioredis';

export interface RedisConnectOptions {
  url: string;
  cluster?: boolean | undefined;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
}

export function connectRedis(opts: RedisConnectOptions): Redis | Cluster {
  const common = { connectTimeout: opts.connectTimeoutMs, commandTimeout: opts.commandTimeoutMs, maxRetriesPerRequest: 0 };
  const backoff = (n: number) => Math.min(50 * n, 1000);
  let redis: Redis | Cluster;
  if (opts.cluster) {
    const seed = clusterSeed(opts.url);
    redis = new Cluster(seed.nodes, { enableOfflineQueue: false, clusterRetryStrategy: backoff, redisOptions: { ...common, ...seed.redisOptions } });
  } else {
    redis = new Redis(opts.url, { ...common, enableOfflineQueue: false, retryStrategy: backoff });
  }
  redis.on('error', () => undefined); // surfaced by failed commands, counted by the caller's breaker
  return redis;
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
