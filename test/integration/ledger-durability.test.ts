// No row lost, none doubled: a Redis sink stopped mid-run and restarted, and a SIGTERM'd server whose Redis is
// down (its rows wait in the spool and the next process delivers them).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ExtProcPool, chatRequestHeaders } from '../../src/dev/envoy-client.js';
import { rowsFromFiles, rowsFromRedis } from '../../src/ledger/read.js';
import type { LedgerRow } from '../../src/ledger/row.js';
import { jsonBody, metricValue, startTiergate } from '../helpers/tiergate.js';
import { collectRows } from '../helpers/ledger-rows.js';
import { RedisServer } from '../helpers/redis-server.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await RedisServer.start();
});
afterAll(async () => redis.down());

/** One complete request (JSON response with usage), identified by its x-request-id. */
async function request(pool: ExtProcPool, id: string): Promise<void> {
  const s = pool.open();
  await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', id]]), false);
  await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'hello' }] }));
  await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
  await s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'weak-model', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }), true);
  s.close();
}

function expectExactly(rows: LedgerRow[], ids: string[]): void {
  const seen = rows.map((r) => r.request_id);
  expect(new Set(seen).size).toBe(seen.length); // none doubled
  expect([...seen].sort()).toEqual([...ids].sort()); // none lost
}

describe('ledger durability', () => {
  it('Redis stopped mid-run and restarted: every row reaches the stream once, in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-outage-'));
    const stream = 'outage:ledger';
    const tg = await startTiergate(
      { ledger: { sinks: [{ type: 'redis', url: redis.url, stream }, { type: 'file', dir }], retryMs: 50, writeTimeoutMs: 500 } },
      {},
      { ownSinks: true },
    );
    const ids: string[] = [];
    const send = async (from: number, n: number) => {
      for (let i = from; i < from + n; i++) {
        ids.push(`req-${i}`);
        await request(tg.pool, `req-${i}`);
      }
    };
    try {
      await send(0, 100);
      await redis.down();
      await send(100, 100); // Redis is away: these go to the spool
      await expect.poll(() => metricValue(tg.app, 'tiergate_ledger_rows_total', { sink: 'redis', result: 'spooled' })).toBeGreaterThan(0);
      expect(await metricValue(tg.app, 'tiergate_ledger_backlog_rows', { sink: 'redis', where: 'spool' })).toBeGreaterThan(0);
      await redis.up();
      await send(200, 100);
      await expect.poll(async () => (await collectRows(rowsFromRedis(redis.url, stream))).length, { timeout: 15_000 }).toBe(300);
      const inRedis = await collectRows(rowsFromRedis(redis.url, stream));
      expectExactly(inRedis, ids);
      // Replayed oldest first: the stream holds the rows in the order they were recorded.
      expect(inRedis.map((r) => r.request_id)).toEqual(ids);
      await tg.app.ledger.flush();
      expectExactly(await collectRows(rowsFromFiles(readdirSync(dir).map((f) => join(dir, f)))), ids);
      expect(await metricValue(tg.app, 'tiergate_ledger_rows_total', { sink: 'redis', result: 'replayed' })).toBeGreaterThan(0);
      expect(await metricValue(tg.app, 'tiergate_ledger_backlog_rows', { sink: 'redis' })).toBe(0);
    } finally {
      await tg.stop();
    }
  });

  it('SIGTERM flushes every row: to the file, and to the spool while Redis is down; the next start delivers them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-sigterm-'));
    const down = await RedisServer.start();
    await down.down(); // a Redis that is not there
    const config = ledgerConfig(dir, join(dir, 'spool'), down.url, 'sigterm:ledger');
    const ids = Array.from({ length: 50 }, (_, i) => `term-${i}`);
    await runServer(config, async (pool) => {
      for (const id of ids) await request(pool, id);
    });
    expectExactly(await fileSinkRows(dir), ids);
    const spooled = readFileSync(join(dir, 'spool', 'redis.spool.jsonl'), 'utf8').trim().split('\n');
    expect(spooled).toHaveLength(50);

    // The next process, with Redis back, delivers the spool first and removes it.
    await down.up();
    await runServer(config, async () => {
      await expect.poll(async () => (await collectRows(rowsFromRedis(down.url, 'sigterm:ledger'))).length, { timeout: 15_000 }).toBe(50);
    });
    expectExactly(await collectRows(rowsFromRedis(down.url, 'sigterm:ledger')), ids);
    expect(readdirSync(join(dir, 'spool'))).toEqual([]);
    // …and the file sink did not get them twice.
    expectExactly(await fileSinkRows(dir), ids);
    await down.down();
  });

  it('ledger.logSpoolAtExit: a SIGTERM\'d pod whose Redis is down logs its spool; after the pod and its emptyDir are gone, ledger import delivers every row once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-left-'));
    const down = await RedisServer.start();
    await down.down();
    const config = ledgerConfig(dir, join(dir, 'spool'), down.url, 'left:ledger', ['  logSpoolAtExit: true']);
    const ids = Array.from({ length: 60 }, (_, i) => `left-${i}`);
    const out = await runServer(config, async (pool) => {
      for (const id of ids) await request(pool, id);
    });
    const logged = out
      .split('\n')
      .filter((l) => l.includes('"event":"ledger.rows_left_in_spool"'))
      .map((l) => ({ bytes: Buffer.byteLength(l), line: JSON.parse(l) as { level: number; sink: string; count: number; rows: string[] } }));
    expect(logged.length).toBeGreaterThan(1); // 60 rows of ~1 KB: several lines
    for (const { bytes, line } of logged) {
      expect(line.sink).toBe('redis');
      expect(line.count).toBe(line.rows.length);
      expect(bytes).toBeLessThan(16 * 1024);
    }
    expectExactly(logged.flatMap(({ line }) => line.rows.map((r) => JSON.parse(r) as LedgerRow)), ids);
    expect(out).not.toContain('ledger.rows_unsaved'); // the spool did take them

    // The container restarts in the same pod, Redis still down: the next exit logs the spool again, the first 60
    // rows with 10 more.
    const more = Array.from({ length: 10 }, (_, i) => `left-more-${i}`);
    const out2 = await runServer(config, async (pool) => {
      for (const id of more) await request(pool, id);
    });
    expect(out2.split('\n').filter((l) => l.includes('"event":"ledger.rows_left_in_spool"')).flatMap((l) => (JSON.parse(l) as { rows: string[] }).rows)).toHaveLength(70);

    // The pod is deleted, its emptyDir with it; Redis comes back; the import of both exits' logs puts each row into
    // the stream once, however often it is run.
    await importAfterPodGone(config, dir, out + out2, [...ids, ...more], down, 'left:ledger');
  });

  it('ledger.spoolMaxBytes: past the bound rows go to the log instead of the disk; with the spool logged at exit and gone, ledger import delivers every row once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-full-'));
    const down = await RedisServer.start();
    await down.down();
    const maxBytes = 16 * 1024; // ~15 rows
    const config = ledgerConfig(dir, join(dir, 'spool'), down.url, 'full:ledger', ['  logSpoolAtExit: true', `  spoolMaxBytes: ${maxBytes}`]);
    const ids = Array.from({ length: 60 }, (_, i) => `full-${i}`);
    let spoolBytes = 0;
    const spoolFile = join(dir, 'spool', 'redis.spool.jsonl');
    const out = await runServer(config, async (pool, output) => {
      // The first rows wait in the queue until the first write fails, and then all go to the spool together.
      for (const id of ids.slice(0, 5)) await request(pool, id);
      await expect.poll(() => existsSync(spoolFile), { timeout: 10_000 }).toBe(true);
      for (const id of ids.slice(5)) await request(pool, id);
      // The refused rows are logged on the next turn; the spool's size is read while the process still runs.
      await expect.poll(() => output().includes('"reason":"spool_full"'), { timeout: 5_000 }).toBe(true);
      spoolBytes = statSync(spoolFile).size;
    });
    expect(spoolBytes).toBeGreaterThan(0);
    expect(spoolBytes).toBeLessThanOrEqual(maxBytes);
    const rowsOf = (event: string, reason?: string) =>
      out
        .split('\n')
        .filter((l) => l.includes(`"event":"${event}"`))
        .map((l) => JSON.parse(l) as { reason?: string; rows: string[] })
        .filter((l) => l.reason === reason)
        .flatMap((l) => l.rows.map((r) => (JSON.parse(r) as LedgerRow).request_id));
    const refused = rowsOf('ledger.rows_unsaved', 'spool_full');
    const left = rowsOf('ledger.rows_left_in_spool');
    expect(refused.length).toBeGreaterThan(30);
    // The spool took the oldest rows while it had room; every later one went to the log, as it came.
    expect([...left, ...refused]).toEqual(ids);

    await importAfterPodGone(config, dir, out, ids, down, 'full:ledger');
  });

  it('SIGTERM with the sink down and the spool disk failing: the rows it could not keep are logged in full', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-unsaved-'));
    const down = await RedisServer.start();
    await down.down();
    const spool = join(dir, 'spool');
    const config = ledgerConfig(dir, spool, down.url, 'unsaved:ledger');
    const ids = Array.from({ length: 30 }, (_, i) => `unsaved-${i}`);
    const out = await runServer(config, async (pool) => {
      // The spool's disk fails after the start (a spool that cannot be made refuses the start): its directory
      // becomes a file, and every spool operation under it fails (ENOTDIR).
      rmSync(spool, { recursive: true, force: true });
      writeFileSync(spool, '');
      for (const id of ids) await request(pool, id);
    });
    expectExactly(await fileSinkRows(dir), ids);
    const logged = out
      .split('\n')
      .filter((l) => l.includes('"event":"ledger.rows_unsaved"'))
      .map((l) => JSON.parse(l) as { sink: string; count: number; rows: string[] });
    expect(logged.every((l) => l.sink === 'redis' && l.count === l.rows.length)).toBe(true);
    // Each row in full, as the sink would have stored it: the log is where they can be put back from.
    expectExactly(
      logged.flatMap((l) => l.rows.map((r) => JSON.parse(r) as LedgerRow)),
      ids,
    );

    // Once Redis is back, `tiergate ledger import` puts them into the stream, from the log as it was written
    // (every other event in it passed over); a second run stores none of them twice.
    await down.up();
    try {
      await importTwice(config, dir, out, ids, down.url, 'unsaved:ledger');
      // The import is the rows as they were: each the same JSON the process would have stored.
      const stored = await collectRows(rowsFromRedis(down.url, 'unsaved:ledger'));
      const loggedRows = new Map(logged.flatMap((l) => l.rows.map((r) => [(JSON.parse(r) as LedgerRow).event_id, JSON.parse(r) as LedgerRow] as const)));
      for (const row of stored) expect(row).toEqual(loggedRows.get(row.event_id));
    } finally {
      await down.down();
    }
  });

  it('SIGTERM with the sink down and the spool disk hung: the rows are logged at the delivery bound, and the shutdown goes on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-hung-'));
    const down = await RedisServer.start();
    await down.down();
    const spool = join(dir, 'spool');
    // The bound: the 5 s replay, writeTimeoutMs twice, 2 s for the disk (7.4 s here).
    const config = ledgerConfig(dir, spool, down.url, 'hung:ledger', ['  writeTimeoutMs: 200']);
    const ids = Array.from({ length: 30 }, (_, i) => `hung-${i}`);
    const out = await runServer(
      config,
      async (pool) => {
        // The disk stops answering after the start: the spool file becomes a FIFO no one else opens, so each
        // open of it blocks for ever, as a call into a hung network mount does.
        expect(spawnSync('mkfifo', [join(spool, 'redis.spool.jsonl')]).status).toBe(0);
        for (const id of ids) await request(pool, id);
      },
      // Node ends a process only once its I/O threads do, and one waits for the FIFO: the kill ends it, as the
      // orchestrator's would.
      { exits: false },
    );
    expectExactly(await fileSinkRows(dir), ids);
    expect(out).toContain('its disk did not answer within 7400 ms of the shutdown; 30 rows not known to be stored are logged');
    const logged = out
      .split('\n')
      .filter((l) => l.includes('"event":"ledger.rows_unsaved"'))
      .flatMap((l) => (JSON.parse(l) as { rows: string[] }).rows.map((r) => JSON.parse(r) as LedgerRow));
    expectExactly(logged, ids);
    // Before the server stopped: what the kill ends has nothing left to lose.
    expect(out.indexOf('"event":"ledger.rows_unsaved"')).toBeLessThan(out.indexOf('"event":"server.stopped"'));
    await down.up();
    try {
      await importTwice(config, dir, out, ids, down.url, 'hung:ledger');
    } finally {
      await down.down();
    }
  }, 60_000);
});

describe('a crash (an exception nothing caught)', () => {
  /**
   * A config with a file sink (`server` and `ledger` lines of its own besides) and a module to load into the
   * server, a bug stood in for, in a directory of their own.
   */
  function crashingServer(bug: string, { server = [], ledger = [] }: { server?: string[]; ledger?: string[] }) {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-crash-'));
    const config = join(dir, 'tiergate.yaml');
    writeFileSync(config, [...server, 'ledger:', ...ledger, `  spoolDir: ${join(dir, 'spool')}`, '  sinks:', `    - { type: file, dir: ${join(dir, 'ledger')} }`].join('\n'));
    const bugModule = join(dir, 'bug.mjs');
    writeFileSync(bugModule, bug);
    return { dir, config, nodeArgs: ['--import', bugModule] };
  }

  it('is logged as process.crashed and ends the process with exit 1, after the rows held in memory are stored', async () => {
    // Before: Node's default printed the stack to stderr and ended the process at once; the rows waiting for
    // their batch (here a linger of a minute) were lost. SIGUSR2 throws where nothing catches it.
    const { dir, config, nodeArgs } = crashingServer("process.on('SIGUSR2', () => setImmediate(() => { throw new Error('a bug nothing caught'); }));\n", { ledger: ['  lingerMs: 60000'] });
    const ids = ['crash-0', 'crash-1', 'crash-2'];
    const out = await runServer(
      config,
      async (pool) => {
        for (const id of ids) await request(pool, id);
      },
      { nodeArgs, signal: 'SIGUSR2', code: 1 },
    );
    const lines = out.split('\n').filter((l) => l.length > 0);
    expect(JSON.parse(lines.find((l) => l.includes('"event":"process.crashed"')) ?? '{}')).toMatchObject({ level: 'fatal', origin: 'uncaughtException', error: 'a bug nothing caught' });
    // Nothing outside the JSON log: no stack trace printed to stderr.
    for (const l of lines) expect(() => JSON.parse(l) as unknown, l).not.toThrow();
    expectExactly(await fileSinkRows(dir), ids);
  }, 60_000);

  it('during a SIGTERM shutdown, ends the process with exit 1 once that shutdown is done, not with its 0', async () => {
    // A drain of a second: the bug strikes while the process still takes streams after the SIGTERM.
    const { dir, config, nodeArgs } = crashingServer("process.on('SIGTERM', () => setTimeout(() => { throw new Error('a bug during the shutdown'); }, 200));\n", { server: ['server: { drainDelayMs: 1000 }'] });
    const out = await runServer(config, (pool) => request(pool, 'crash-late'), { nodeArgs, code: 1 });
    expect(out.indexOf('"event":"process.crashed"')).toBeGreaterThan(out.indexOf('"event":"server.draining"'));
    expectExactly(await fileSinkRows(dir), ['crash-late']);
  }, 60_000);
});

/** The rows of the file sink in `dir`/ledger. */
function fileSinkRows(dir: string): Promise<LedgerRow[]> {
  return collectRows(rowsFromFiles(readdirSync(join(dir, 'ledger')).map((f) => join(dir, 'ledger', f))));
}

/** A config file in `dir`: a file sink in `dir`/ledger and a Redis stream sink, spooling to `spoolDir`; `more` ledger lines. */
function ledgerConfig(dir: string, spoolDir: string, redisUrl: string, stream: string, more: string[] = []): string {
  const config = join(dir, 'tiergate.yaml');
  // No drain: nothing routes here but the test, which has stopped sending before the SIGTERM.
  const lines = ['server: { drainDelayMs: 0 }', 'ledger:', `  spoolDir: ${spoolDir}`, '  retryMs: 50', ...more, '  sinks:', `    - { type: file, dir: ${join(dir, 'ledger')} }`, `    - { type: redis, url: "${redisUrl}", stream: "${stream}" }`];
  writeFileSync(config, lines.join('\n'));
  return config;
}

/** The pod is deleted with its emptyDir (the spool in `dir`), Redis comes back, and the import runs twice. */
async function importAfterPodGone(config: string, dir: string, out: string, ids: string[], redis: RedisServer, stream: string): Promise<void> {
  rmSync(join(dir, 'spool'), { recursive: true });
  await redis.up();
  try {
    await importTwice(config, dir, out, ids, redis.url, stream);
  } finally {
    await redis.down();
  }
}

/**
 * `tiergate ledger import` of a server's output (written to a log file in `dir`), run twice: each time every row
 * of `ids` is in the stream exactly once.
 */
async function importTwice(config: string, dir: string, out: string, ids: string[], redisUrl: string, stream: string): Promise<void> {
  const log = join(dir, 'tiergate.log');
  writeFileSync(log, out);
  for (let run = 0; run < 2; run++) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'ledger', 'import', '--config', config, log], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`sink redis: ${ids.length} rows sent`);
    expect(r.status).toBe(0);
    expectExactly(await collectRows(rowsFromRedis(redisUrl, stream)), ids);
  }
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'src/cli.ts');

/**
 * `tiergate serve` in a child process: run `work` against it (`output`: what it printed so far), then send it
 * `signal` (SIGTERM) and expect it to stop and exit with `code` (0); with `exits: false`, expect `server.stopped`
 * and then kill it (the orchestrator's SIGKILL). `nodeArgs` go to node before the CLI.
 */
async function runServer(
  config: string,
  work: (pool: ExtProcPool, output: () => string) => Promise<void>,
  { exits = true, nodeArgs = [] as string[], signal = 'SIGTERM' as NodeJS.Signals, code = 0 } = {},
): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...nodeArgs, CLI, 'serve', '--config', config, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], {
    cwd: ROOT,
    env: { ...process.env, TIERGATE_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onTestFinished(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await expect.poll(() => out, { timeout: 20_000 }).toContain('"event":"server.started"');
  const started = JSON.parse(out.split('\n').find((l) => l.includes('server.started')) ?? '{}') as { grpc_port: number };
  const pool = new ExtProcPool(`127.0.0.1:${started.grpc_port}`, 500);
  try {
    await work(pool, () => out);
  } finally {
    pool.close();
  }
  child.kill(signal);
  if (!exits) {
    await expect.poll(() => out, { timeout: 30_000 }).toContain('"event":"server.stopped"');
    return out;
  }
  expect(await exited).toBe(code);
  expect(out).toContain('"event":"server.stopped"');
  return out;
}
