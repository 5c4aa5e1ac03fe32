// endLogger in a process of its own, whose stdout the test can close under it as `head` or a dead log shipper does.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';

const LOGGER = fileURLToPath(new URL('../../src/telemetry/logger.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

// Logs "ready", waits for a line on stdin, logs again (onto the broken pipe), gives the failed write time to be
// reported, then ends the logger with a deadline far beyond the test's timeout and exits.
const SCRIPT = `
import { createLogger, endLogger } from ${JSON.stringify(LOGGER)};
const log = createLogger('info');
log.info({ event: 'ready' });
process.stdin.once('data', async () => {
  for (let i = 0; i < 3; i++) log.info({ event: 'after_close', i });
  await new Promise((r) => setTimeout(r, 300));
  await endLogger(log, 600_000);
  process.exit(0);
});
`;

describe('endLogger when stdout broke before shutdown', () => {
  it('returns at once instead of waiting out its deadline for a stream pino has already given up on', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    onTestFinished(() => void child.kill('SIGKILL'));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await expect.poll(() => out, { timeout: 15_000 }).toContain('"event":"ready"');
    child.stdout.destroy();
    child.stdin.write('go\n');
    // Ending the ended stream would wait the whole 600 s: the test's own timeout fails it first.
    expect(await exited).toBe(0);
    expect(err).toBe('');
  });
});

// Fills stdout's pipe (its reader never reads), ends the logger with a short deadline and reports on stderr that
// endLogger came back; the exit-time flush afterwards would wait for the reader, so the test kills the process.
const STALLED = `
import { createLogger, endLogger } from ${JSON.stringify(LOGGER)};
const log = createLogger('info');
const line = 'x'.repeat(1_000);
for (let i = 0; i < 2_000; i++) log.info({ event: 'filler', i, line });
const started = Date.now();
await endLogger(log, 300);
process.stderr.write('ended after ' + (Date.now() - started) + ' ms\\n');
`;

describe('endLogger with a log reader that stopped reading', () => {
  it('gives up waiting at its deadline instead of holding the exit for ever', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', STALLED], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    onTestFinished(() => void child.kill('SIGKILL'));
    // Never read: the pipe's buffer (64 KiB on Linux) fills with the first lines and the rest stay queued.
    child.stdout.pause();
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await expect.poll(() => err, { timeout: 15_000 }).toMatch(/ended after \d+ ms/);
    const ms = Number(/ended after (\d+) ms/.exec(err)?.[1]);
    // Not before the deadline: the 2 MB queued behind the full pipe cannot have been written.
    expect(ms).toBeGreaterThanOrEqual(300);
    expect(child.exitCode).toBeNull();
  });
});
