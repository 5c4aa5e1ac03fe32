// Deadlines after the event loop was held up (src/deadline-timer.ts): an answer that arrived in time and was
// waiting to be read when the loop came back is not declared late. Each case starts real I/O (a thread-pool
// read, a Redis command, a sink's write), holds the loop for longer than the deadline while the answer comes
// in, and checks the answer won; and that a deadline with no answer still fires.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setDeadline, withDeadline } from '../../src/deadline-timer.js';
import { Ledger, type LedgerHooks } from '../../src/ledger/ledger.js';
import { MemorySink } from '../../src/ledger/memory-sink.js';
import type { LedgerRow } from '../../src/ledger/row.js';
import type { LedgerEntry } from '../../src/ledger/sink.js';
import { connectRedis } from '../../src/stores/redis/connect.js';
import { sampleRow } from '../helpers/ledger-rows.js';
import { redisAndClusterForFile } from '../helpers/redis-server.js';
import { jsonBody, startTiergate, type TestTiergate } from '../helpers/tiergate.js';
import { chatRequestHeaders, getHeader, RECOMMENDED_FILTER, type Outcome } from '../../src/dev/envoy-client.js';
import type { ConfigInput } from '../../src/config/schema.js';

const servers = redisAndClusterForFile();

/** Holds the event loop, as a long GC pause or a large synchronous parse would. */
function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy: nothing else runs
  }
}

const dir = mkdtempSync(join(tmpdir(), 'tiergate-stall-'));
const small = join(dir, 'small.txt');
writeFileSync(small, 'x');

describe('deadlines after a stalled event loop', () => {
  it('a thread-pool call that completed during the stall beats its expired deadline, every time', async () => {
    // One call, one completion: work that needs several turns of the loop (readFile is open, stat, read,
    // close) is late when only its first step was done in time, as it should be.
    for (let i = 0; i < 10; i++) {
      const raced = withDeadline<number | string>(stat(small).then((s) => s.size), 20, 'late');
      stall(150);
      expect(await raced).toBe(1);
    }
  });

  it('a deadline with nothing to wait for still fires', async () => {
    expect(await withDeadline(new Promise<string>(() => undefined), 20, 'late')).toBe('late');
    let late = false;
    setDeadline(10, () => (late = true));
    stall(50);
    await expect.poll(() => late, { timeout: 1000, interval: 5 }).toBe(true);
    // Cancelled in time, it never fires.
    let fired = false;
    setDeadline(10, () => (fired = true))();
    await new Promise((r) => setTimeout(r, 40));
    expect(fired).toBe(false);
  });

  for (const topology of ['standalone', 'cluster'] as const) {
    const connect = (): Redis | Cluster => {
      const url = topology === 'cluster' ? servers.cluster.url : servers.redis.url;
      const r = connectRedis({ url, cluster: topology === 'cluster', connectTimeoutMs: 2000, commandTimeoutMs: 50 });
      servers.beforeDown(async () => r.disconnect());
      return r;
    };
    const ready = (r: Redis | Cluster) => new Promise((resolve) => (r.status === 'ready' ? resolve(undefined) : r.once('ready', resolve)));

    it(`${topology} Redis: a reply that came in during the stall is not "Command timed out"`, async () => {
      const redis = connect();
      await ready(redis);
      await redis.set('stall:k', 'v');
      const outcomes: string[] = [];
      for (let i = 0; i < 10; i++) {
        const reply = redis.get('stall:k').then(String, (err: Error) => err.message);
        stall(200);
        outcomes.push(await reply);
      }
      expect(outcomes).toEqual(Array(10).fill('v'));
    });

    it(`${topology} Redis: a command with no reply still times out`, async () => {
      const redis = connect();
      await ready(redis);
      await redis.set('stall:k', 'v');
      // Every node stops answering clients for a while (CLIENT PAUSE): the command gets no reply in time.
      const nodes = topology === 'cluster' ? servers.cluster.nodes : [servers.redis];
      await Promise.all(
        nodes.map(async (n) => {
          const admin = n.client();
          await admin.call('CLIENT', 'PAUSE', '500', 'ALL');
          admin.disconnect();
        }),
      );
      await expect(redis.get('stall:k')).rejects.toThrow('Command timed out');
      await new Promise((r) => setTimeout(r, 600));
      expect(await redis.get('stall:k')).toBe('v');
    });
  }

  it('a ledger write that completed during the stall is not timed out, spooled and written again', async () => {
    /** A sink whose write finishes on real I/O, and that holds the loop right after the writer starts waiting. */
    class StallingSink extends MemorySink {
      writes = 0;
      override async write(entries: readonly LedgerEntry[]): Promise<void> {
        this.writes++;
        const io = stat(small);
        queueMicrotask(() => stall(300)); // after the writer armed its deadline, before the read is handled
        await io;
        await super.write(entries);
      }
    }
    const sink = new StallingSink('stalling');
    const errors: unknown[] = [];
    const hooks: LedgerHooks = { rows: () => undefined, sinkError: (_s, err) => void errors.push(err), unsaved: () => undefined, leftInSpool: () => undefined };
    const ledger = new Ledger([sink], { spoolDir: join(dir, 'spool'), queueSize: 100, batchSize: 10, writeTimeoutMs: 100, retryMs: 20, lingerMs: 0 }, hooks);
    const rows = Array.from({ length: 5 }, (_, i) => sampleRow({ request_id: `stall-${i}` }));
    for (const r of rows) ledger.record(r);
    await ledger.close();
    expect(errors).toEqual([]);
    expect(sink.rows<LedgerRow>().map((r) => r.request_id)).toEqual(rows.map((r) => r.request_id));
  });

  describe('end to end: a stall while Redis answers', () => {
    /**
     * While `on`, each Redis command a store sends is followed by a 200 ms stall of the loop (four times the
     * command timeout), in which Redis answers it.
     */
    const stalls = { on: false, count: 0 };
    const send = Redis.prototype.sendCommand;
    beforeAll(() => {
      Redis.prototype.sendCommand = function (this: Redis, ...args: Parameters<Redis['sendCommand']>) {
        const out = send.apply(this, args);
        if (stalls.on) {
          stalls.count++;
          queueMicrotask(() => stall(200));
        }
        return out;
      };
    });
    afterAll(() => {
      Redis.prototype.sendCommand = send;
    });

    const start = async (extra: ConfigInput) => {
      const t = await startTiergate({
        tenants: { '*': { requestsPerMinute: 1000, tokensPerMinute: 1_000_000, ...(extra.tenants?.['*'] ?? {}) } },
        budgets: { store: 'redis', redis: { url: servers.redis.url, keyPrefix: `stall-${stalls.count}:` }, onStoreFailure: 'closed' },
        ...(extra.cache ? { cache: extra.cache } : {}),
      });
      servers.beforeDown(() => t.stop());
      return t;
    };

    /** One chat request; the Redis commands of its request body (cache lookup, admission) are stalled. */
    async function ask(t: TestTiergate, id: string): Promise<Outcome> {
      const s = t.pool.open({ ...RECOMMENDED_FILTER, messageTimeoutMs: 5000 });
      await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', id]]), false);
      stalls.on = true;
      const o = await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'What is a stall?' }] }));
      stalls.on = false;
      if (o.kind === 'continue') {
        await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
        const answer = { id: 'c', object: 'chat.completion', model: 'weak-model', choices: [{ index: 0, message: { role: 'assistant', content: 'A held-up loop.' }, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 } };
        await s.sendResponseBody(jsonBody(answer), true);
      }
      s.close();
      return o;
    }

    it('budgets failing closed admit the request, rather than a 503', async () => {
      const t = await start({});
      const before = stalls.count;
      for (let i = 0; i < 3; i++) expect((await ask(t, `stall-admit-${i}`)).kind).toBe('continue');
      expect(stalls.count - before).toBeGreaterThanOrEqual(3);
    });

    it('the exact cache on Redis answers the hit, rather than a deadline miss', async () => {
      const prefix = `stall-cache-${stalls.count}:`;
      const t = await start({ tenants: { '*': { cache: { mode: 'exact' } } }, cache: { store: 'redis', redis: { url: servers.redis.url, keyPrefix: prefix } } });
      expect((await ask(t, 'stall-cache-1')).kind).toBe('continue');
      // The answer is stored once the response is in; then the same question is a hit, its lookup stalled too.
      const redis = servers.redis.client();
      await expect.poll(async () => (await redis.keys(`${prefix}*`)).length, { timeout: 5000 }).toBeGreaterThan(0);
      redis.disconnect();
      const second = await ask(t, 'stall-cache-2');
      expect(second.kind === 'immediate' ? [second.status, getHeader(second.headers, 'x-cache')] : second.kind).toEqual([200, 'hit-exact']);
    });
  });
});
