// A `stdout` ledger sink shares the process's stdout with the log. Under a reader that falls behind (a container
// runtime's log copier on a busy disk), a log line written into the middle of a row tore it in two, and
// `ledger rollup --logs` lost the row. `tiergate serve` is run as deployed and its stdout read slowly.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ExtProcPool, chatRequestHeaders } from '../../src/dev/envoy-client.js';
import { jsonBody } from '../helpers/tiergate.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'src/cli.ts');

describe('rows and log lines on one stdout', () => {
  it('every line is whole under a slow reader: each row, each log line (1 to 10 rows of 1,500 were torn before)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-shared-stdout-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const config = join(dir, 'tiergate.yaml');
    // A write timeout the slow reader never reaches: every row is written to stdout, none spooled.
    writeFileSync(config, `server: { drainDelayMs: 0 }\nledger:\n  writeTimeoutMs: 60000\n  sinks:\n    - { type: stdout }\n  spoolDir: ${join(dir, 'spool')}\n`);
    // Debug: a log line per request, beside its row.
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', config, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], {
      cwd: ROOT,
      env: { ...process.env, TIERGATE_LOG_LEVEL: 'debug' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onTestFinished(() => void child.kill('SIGKILL'));
    // 'close', not 'exit': the slow reader is still behind when the process ends.
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    let out = '';
    let resting = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      // The slow reader: it rests 50 ms after each chunk, so the pipe fills and long writes go out in parts.
      if (resting) return;
      resting = true;
      child.stdout.pause();
      setTimeout(() => {
        resting = false;
        child.stdout.resume();
      }, 50);
    });
    await expect.poll(() => out, { timeout: 20_000 }).toContain('"event":"server.started"');
    const { grpc_port } = JSON.parse(out.split('\n').find((l) => l.includes('server.started')) ?? '{}') as { grpc_port: number };
    const pool = new ExtProcPool(`127.0.0.1:${grpc_port}`, 500);
    const prompt = `explain ${'x'.repeat(3000)}`;
    const one = async (i: number) => {
      const s = pool.open();
      await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', `r${i}`]]), false);
      await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: prompt }] }));
      await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      await s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'm', choices: [], usage: { prompt_tokens: 700, completion_tokens: 2, total_tokens: 702 } }), true);
      s.close();
    };
    const N = 1500;
    try {
      for (let i = 0; i < N; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => one(i + j)));
    } finally {
      pool.close();
    }
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const lines = out.split('\n').filter((l) => l !== '');
    const torn = lines.filter((l) => {
      try {
        JSON.parse(l);
        return false;
      } catch {
        return true;
      }
    });
    expect(torn.map((l) => l.slice(0, 160))).toEqual([]);
    const rows = lines.map((l) => JSON.parse(l) as { event_id?: string; request_id?: string }).filter((r) => r.event_id !== undefined);
    expect(new Set(rows.map((r) => r.request_id)).size).toBe(N);
  }, 120_000);

  it('a stdout that fails (a full disk: ENOSPC) is the sink\'s to handle: the rows are spooled and the server goes on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-full-stdout-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const config = join(dir, 'tiergate.yaml');
    writeFileSync(config, `server: { drainDelayMs: 0 }\nledger:\n  writeTimeoutMs: 1000\n  retryMs: 60000\n  sinks:\n    - { type: stdout }\n  spoolDir: ${join(dir, 'spool')}\n`);
    const ports = await Promise.all([0, 1].map(freePort));
    // Every write to /dev/full fails with ENOSPC, as stdout on a full disk does.
    const full = openSync('/dev/full', 'w');
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', config, '--listen', `127.0.0.1:${ports[0]}`, '--admin', `127.0.0.1:${ports[1]}`], {
      cwd: ROOT,
      env: { ...process.env, TIERGATE_LOG_LEVEL: 'info' },
      stdio: ['ignore', full, 'pipe'],
    });
    closeSync(full);
    onTestFinished(() => void child.kill('SIGKILL'));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const ready = () => fetch(`http://127.0.0.1:${ports[1]}/readyz`).then((r) => r.status, () => 'refused');
    await expect.poll(ready, { timeout: 20_000, interval: 200 }).toBe(200);
    const pool = new ExtProcPool(`127.0.0.1:${ports[0]}`, 500);
    try {
      const s = pool.open();
      await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', 'on-a-full-disk']]), false);
      await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }));
      await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      await s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'm', choices: [], usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 } }), true);
      s.close();
    } finally {
      pool.close();
    }
    const spooled = () => readdirSync(join(dir, 'spool'), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .some((e) => readFileSync(join(e.parentPath, e.name), 'utf8').includes('on-a-full-disk'));
    await expect.poll(spooled, { timeout: 10_000 }).toBe(true);
    expect(await ready()).toBe(200);
    expect(child.exitCode).toBeNull();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(err).toBe('');
  }, 60_000);
});

/** A port free a moment ago, for a server whose stdout cannot say which port it took. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
