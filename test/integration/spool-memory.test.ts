// A process that starts on a long outage's spool must not read the whole file into memory: the kgateway
// Deployment gives tiergate 1 GiB, and a spool of several hundred MB read whole at start (as Spool once did)
// took the restarted container over its limit, again at every restart. Measured in a child process, by its
// peak resident memory (maxRSS) before and after it opens the spool.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tiergate-spool-memory-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('spool memory at start', () => {
  it('a 160 MB spool is counted without holding the file in memory', () => {
    const line = `w1\t1\te1\t2026-12-02\t${JSON.stringify({ event_id: 'e1', pad: 'x'.repeat(1000) })}\n`;
    const chunk = line.repeat(1000); // ~1 MB
    const chunks = 160;
    const fd = openSync(join(dir, 'redis.spool.jsonl'), 'w');
    for (let i = 0; i < chunks; i++) writeSync(fd, chunk);
    closeSync(fd);
    const child = `
      const { Spool } = await import(${JSON.stringify(join(ROOT, 'src/ledger/spool.ts'))});
      const before = process.resourceUsage().maxRSS;
      const spool = new Spool(${JSON.stringify(dir)}, 'redis');
      console.log(JSON.stringify({ rows: spool.size, grewKb: process.resourceUsage().maxRSS - before }));`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', child], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    const { rows, grewKb } = JSON.parse(r.stdout) as { rows: number; grewKb: number };
    expect(rows).toBe(chunks * 1000);
    console.info(`opening a 160 MB spool: peak resident memory +${(grewKb / 1024).toFixed(1)} MB`);
    // Reading windows of 4 MiB: a few MB. The whole file would be 160 MB more (the old code: +159 MB).
    expect(grewKb).toBeLessThan(40 * 1024);
  }, 90_000);
});
