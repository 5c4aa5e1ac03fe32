// A private redis-server per test file on a free port, so runs never collide; stoppable and restartable on the
// same port to simulate an outage.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export class RedisServer {
  private proc: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'tiergate-redis-'));
  constructor(
    readonly port: number,
    private readonly extraArgs: readonly string[] = [],
  ) {}

  static async start(extraArgs: readonly string[] = []): Promise<RedisServer> {
    const s = new RedisServer(await freePort(), extraArgs);
    await s.up();
    return s;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, ...this.extraArgs], {
      stdio: 'ignore',
    });
    const client = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    for (let i = 0; i < 100; i++) {
      try {
        await client.connect();
        await client.ping();
        client.disconnect();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error('redis-server did not start');
  }

  /** An outage: the server saves its data to disk (so a restart has it back, as a real one would) and exits. */
  async down(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    const c = new Redis(this.url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => undefined);
    await c.call('SHUTDOWN', 'SAVE').catch(() => undefined);
    c.disconnect();
    await exited;
  }

  client(): Redis {
    return new Redis(this.url);
  }
}

/** A three-master Redis Cluster of private servers (no replicas), for the Cluster mode of the Redis stores. */
export class RedisCluster {
  private constructor(readonly nodes: readonly RedisServer[]) {}

  static async start(): Promise<RedisCluster> {
    const nodes: RedisServer[] = [];
    for (let i = 0; i < 3; i++) nodes.push(await RedisServer.start(['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000']));
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stderr || create.stdout}`);
    for (const n of nodes) {
      const c = new Redis(n.url);
      for (let i = 0; ; i++) {
        const info = (await c.cluster('INFO')) as string;
        if (info.includes('cluster_state:ok')) break;
        if (i > 100) throw new Error('cluster did not converge');
        await new Promise((r) => setTimeout(r, 50));
      }
      c.disconnect();
    }
    return new RedisCluster(nodes);
  }

  /** A seed node's URL (any node: the client discovers the rest). */
  get url(): string {
    return (this.nodes[0] as RedisServer).url;
  }

  async down(): Promise<void> {
    for (const n of this.nodes) await n.down();
  }
}

export interface RedisSuite {
  readonly redis: RedisServer;
  readonly cluster: RedisCluster;
  /**
   * Runs `close` after the file's tests, before the servers stop (stores and instances that use them); the
   * last registered is closed first, so a client goes before the proxy it connects through.
   */
  beforeDown(close: () => Promise<unknown>): void;
}

/**
 * A private redis-server and a Redis Cluster for the test file that calls this at its top level: started
 * before its tests, stopped after them, once everything registered with beforeDown has been closed.
 */
export function redisAndClusterForFile(): RedisSuite {
  let redis: RedisServer | undefined;
  let cluster: RedisCluster | undefined;
  const closers: Array<() => Promise<unknown>> = [];
  beforeAll(async () => {
    redis = await RedisServer.start();
    cluster = await RedisCluster.start();
  }, 30_000);
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await redis?.down();
    await cluster?.down();
  });
  const started = <T>(x: T | undefined): T => {
    if (x === undefined) throw new Error('Redis is used before beforeAll started it');
    return x;
  };
  return {
    get redis() {
      return started(redis);
    },
    get cluster() {
      return started(cluster);
    },
    beforeDown: (close) => void closers.push(close),
  };
}
