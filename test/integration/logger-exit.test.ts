// endLogger in a process of its own, whose stdout the test can close under it as `head` or a dead log shipper does.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';

const LOGGER = fileURLToPath(new URL('../../src/telemetry/logger.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Runs `script` in a process of its own. Once it has logged "ready", the test closes its stdout (as `head` does when
 * it has its lines) and writes a line to its stdin, on which the script goes on. `err` is its stderr so far.
 */
async function runWithStdoutClosed(script: string, nodeFlags: string[] = []): Promise<{ exited: Promise<number | null>; err: () => string }> {
  const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  await expect.poll(() => out, { timeout: 15_000 }).toContain('"event":"ready"');
  child.stdout.destroy();
  child.stdin.write('go\n');
  return { exited, err: () => err };
}

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
    const { exited, err } = await runWithStdoutClosed(SCRIPT);
    // Ending the ended stream would wait the whole 600 s: the test's own timeout fails it first.
    expect(await exited).toBe(0);
    expect(err()).toBe('');
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

// Logs "ready", waits for a line on stdin (the test has closed stdout by then), logs a line (its write is then
// under way) and a fatal one, which pino writes out at once, synchronously, and reports on stderr that the call
// came back.
const FATAL = `
import { createLogger } from ${JSON.stringify(LOGGER)};
const log = createLogger('info');
log.info({ event: 'ready' });
process.stdin.once('data', () => {
  log.error({ event: 'stream.failed' });
  log.fatal({ event: 'process.crashed' });
  process.stderr.write('fatal returned\\n');
  process.exit(0);
});
`;

describe('a fatal line logged after stdout broke', () => {
  it('comes back and lets the process exit: the synchronous flush retried the broken pipe every 100 ms for ever', async () => {
    // Found with `tiergate dev | head -1`: the banner's EPIPE crashed the stack, and the crash's fatal line then
    // held the process, neither serving nor exiting, so no supervisor restarted it.
    const { exited, err } = await runWithStdoutClosed(FATAL);
    // Not a measure of speed: before the fix the process never exited, so the test's own timeout fails it.
    expect(await exited).toBe(0);
    expect(err()).toBe('fatal returned\n');
  });
});

// Logs more than a pipe holds, then exits at once, without endLogger (a server that failed to start does).
const EXIT_AT_ONCE = `
import { createLogger } from ${JSON.stringify(LOGGER)};
const log = createLogger('info');
const line = 'x'.repeat(1_000);
for (let i = 0; i < 500; i++) log.info({ event: 'filler', i, line });
process.exit(3);
`;

describe('a process that exits without ending its logger', () => {
  it('still writes out every line it logged (the exit-time flush)', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', EXIT_AT_ONCE], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    onTestFinished(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(code).toBe(3);
    const lines = out.split('\n').filter(Boolean);
    expect(lines).toHaveLength(500);
    expect(JSON.parse(lines[499]!)).toMatchObject({ event: 'filler', i: 499 });
  });
});

// Logs "ready", waits for a line on stdin (stdout is closed by then), lets one write meet the broken pipe, then
// logs 20 MB more in rounds (each round's writes are attempted) and reports how much of it the heap still holds.
const AFTER_BREAK = `
import { createLogger } from ${JSON.stringify(LOGGER)};
const log = createLogger('info');
log.info({ event: 'ready' });
const tick = () => new Promise((r) => setTimeout(r, 5));
process.stdin.once('data', async () => {
  log.info({ event: 'first_after_close' });
  await new Promise((r) => setTimeout(r, 200));
  globalThis.gc();
  const before = process.memoryUsage().heapUsed;
  const line = 'x'.repeat(1_000);
  for (let round = 0; round < 200; round++) {
    for (let i = 0; i < 100; i++) log.info({ event: 'filler', i, line });
    await tick();
  }
  globalThis.gc();
  process.stderr.write('held ' + (process.memoryUsage().heapUsed - before) + '\\n');
  process.exit(0);
});
`;

describe('lines logged after stdout broke', () => {
  it('are dropped, not kept in memory behind the write that keeps failing', async () => {
    const { err } = await runWithStdoutClosed(AFTER_BREAK, ['--expose-gc']);
    await expect.poll(err, { timeout: 30_000 }).toMatch(/held -?\d+/);
    // 20,000 lines of ~1.1 KB: ~22 MB if kept. Dropped, the heap moves by what the loop itself left, well under.
    expect(Number(/held (-?\d+)/.exec(err())?.[1])).toBeLessThan(5_000_000);
  }, 40_000);
});
