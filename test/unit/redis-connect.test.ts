// A Redis Cluster's seed and the options every node it finds is reached with (clusterSeed in
// src/stores/redis/connect.ts): the URL's credentials and TLS must reach each node, not only the first; the
// contract suites run a real Cluster without credentials or TLS, so these are checked here.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { clusterSeed, connectRedis, connectionState, reconnectDelayMs } from '../../src/stores/redis/connect.js';
import { whenReady } from '../../src/stores/redis/when-ready.js';
import { RedisServer } from '../helpers/redis-server.js';

describe('clusterSeed', () => {
  it('the host and port; 6379 when the URL names none', () => {
    expect(clusterSeed('redis://10.0.0.7:7001')).toEqual({ nodes: [{ host: '10.0.0.7', port: 7001 }], redisOptions: {} });
    expect(clusterSeed('redis://redis-cluster.cache.svc')).toEqual({ nodes: [{ host: 'redis-cluster.cache.svc', port: 6379 }], redisOptions: {} });
  });

  it('a password, and a user with it (Redis ACLs), percent-decoded as the URL carries them', () => {
    expect(clusterSeed('redis://:p%40ss%3Aw%2Frd@10.0.0.7:7001').redisOptions).toEqual({ password: 'p@ss:w/rd' });
    expect(clusterSeed('redis://tiergate:s3cret@10.0.0.7:7001').redisOptions).toEqual({ username: 'tiergate', password: 's3cret' });
    expect(clusterSeed('redis://tiergate%2Bcache@10.0.0.7').redisOptions).toEqual({ username: 'tiergate+cache' });
  });

  it('rediss: TLS to every node; redis: none', () => {
    expect(clusterSeed('rediss://:pw@redis.example:6380')).toEqual({ nodes: [{ host: 'redis.example', port: 6380 }], redisOptions: { password: 'pw', tls: {} } });
    expect(clusterSeed('redis://redis.example:6380').redisOptions).not.toHaveProperty('tls');
  });
});

describe('connectRedis', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start();
  }, 30_000);
  afterAll(() => server.down());

  it('reconnects 50 ms later, 50 ms more each attempt in a row, at most a second apart; standalone and Cluster alike', () => {
    expect([1, 2, 3, 19, 20, 21, 1000].map(reconnectDelayMs)).toEqual([50, 100, 150, 950, 1000, 1000, 1000]);
    const standalone = connectRedis({ url: server.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000 });
    const cluster = connectRedis({ url: server.url, cluster: true, connectTimeoutMs: 1000, commandTimeoutMs: 1000 });
    try {
      expect('retryStrategy' in standalone.options && standalone.options.retryStrategy).toBe(reconnectDelayMs);
      expect('clusterRetryStrategy' in cluster.options && cluster.options.clusterRetryStrategy).toBe(reconnectDelayMs);
      // Every node of the Cluster: the same short connect timeout and no retries of a command in flight.
      expect('redisOptions' in cluster.options && cluster.options.redisOptions).toMatchObject({ connectTimeout: 1000, maxRetriesPerRequest: 0 });
      expect(cluster.options).toMatchObject({ enableOfflineQueue: false });
      expect(standalone.options).toMatchObject({ connectTimeout: 1000, maxRetriesPerRequest: 0, enableOfflineQueue: false });
    } finally {
      standalone.disconnect();
      cluster.disconnect();
    }
  });

  it('a command in flight when the connection drops fails at once, and is not sent again after the reconnect', async () => {
    // A long deadline, so that only the drop can end the command: ioredis' default (20 retries) would send it again
    // on the new connection and leave the request waiting for its deadline; the store's failure rule must apply now.
    const redis = connectRedis({ url: server.url, connectTimeoutMs: 1000, commandTimeoutMs: 10_000 });
    const admin = server.client();
    try {
      await expect.poll(() => redis.status).toBe('ready');
      const list = `drop:${Date.now()}`;
      const blocked = redis.blpop(list, 0).then(() => 'answered', (err: Error) => err.message);
      await expect.poll(async () => String(await admin.call('CLIENT', 'LIST', 'TYPE', 'normal'))).toContain('cmd=blpop');
      await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      expect(await blocked).toMatch(/^Reached the max retries per request limit \(which is 0\)/);
      await expect.poll(() => redis.status).toBe('ready');
      // A BLPOP sent again would take this item.
      await admin.lpush(list, 'x');
      expect(await redis.llen(list)).toBe(1);
    } finally {
      redis.disconnect();
      admin.disconnect();
    }
  });

  it('a Redis that refuses the connection: commands fail at once, and ioredis prints nothing of its own', async () => {
    // Without a listener for its error events, ioredis writes "[ioredis] Unhandled error event" to stderr on every
    // reconnect: a log line per 50 ms to 1 s outside tiergate's JSON logs, while the store's breaker counts it.
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const redis = connectRedis({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 200, commandTimeoutMs: 200 });
    try {
      await expect.poll(() => redis.status).toBe('reconnecting');
      // No offline queue: a command while disconnected is refused, not held until a reconnect.
      await expect(redis.get('k')).rejects.toThrow("Stream isn't writeable and enableOfflineQueue options is false");
      expect(printed).not.toHaveBeenCalled();
    } finally {
      redis.disconnect();
      printed.mockRestore();
    }
  });

  it('a client that cannot connect says why, in what its store reports: a wrong password is not a refused port', async () => {
    // Before: "not connected (reconnecting)" for every cause; the password, the address or the name could be wrong.
    const admin = server.client();
    await admin.config('SET', 'requirepass', 'right-pw');
    const clients: Array<ReturnType<typeof connectRedis>> = [];
    try {
      const state = async (url: string) => {
        const redis = connectRedis({ url, connectTimeoutMs: 500, commandTimeoutMs: 500 });
        clients.push(redis);
        await expect.poll(() => connectionState(redis), { timeout: 5_000 }).toContain('last error');
        return redis;
      };
      const wrong = await state(`redis://:wrong-pw@127.0.0.1:${server.port}`);
      expect(connectionState(wrong)).toMatch(/^(reconnecting|connecting|connect); last error: WRONGPASS/);
      // What the stores and the ledger sink report carries it (they build their messages from it).
      await expect(whenReady(wrong, 50, 'redis budget store')).rejects.toThrow(/^redis budget store: not connected \((reconnecting|connecting|connect); last error: WRONGPASS/);
      expect(connectionState(await state(server.url))).toContain('last error: NOAUTH');
      expect(connectionState(await state('redis://127.0.0.1:1'))).toContain('last error: connect ECONNREFUSED 127.0.0.1:1');
      // Once connected, the last error is forgotten.
      const right = await state(`redis://:wrong-pw@127.0.0.1:${server.port}`);
      await admin.config('SET', 'requirepass', 'wrong-pw');
      await expect.poll(() => connectionState(right), { timeout: 5_000 }).toBe('ready');
      // The URL's password never shows in it, whatever an error says.
      right.emit('error', new Error('a server that repeats wrong-pw back'));
      expect(connectionState(right)).toBe('ready; last error: a server that repeats [redacted] back');
    } finally {
      for (const c of clients) c.disconnect();
      await admin.config('SET', 'requirepass', '');
      admin.disconnect();
    }
  });
});
