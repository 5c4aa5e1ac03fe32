// The bench's stand-in for a pod's memory limit (bench/memory-cgroup.ts) must be what it claims: Node inside it
// sees the limit, and the kernel enforces it. Needs write access to the cgroup tree, which this project's
// machines and CI give (root); elsewhere vitest reports these tests as skipped.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createMemoryCgroup } from '../../bench/memory-cgroup.js';

const run = promisify(execFile);

function canMakeCgroups(): boolean {
  try {
    createMemoryCgroup(64).remove();
    return true;
  } catch {
    return false;
  }
}

describe.runIf(canMakeCgroups())('a memory cgroup for a bench server', () => {
  it('is the limit Node and V8 size themselves to', async () => {
    const cg = createMemoryCgroup(256);
    try {
      const script = "const v8=require('v8');console.log(JSON.stringify({c:process.constrainedMemory(),h:v8.getHeapStatistics().heap_size_limit}))";
      const { stdout } = await run(cg.execPath, ['-e', script]);
      const seen = JSON.parse(stdout) as { c: number; h: number };
      expect(seen.c).toBe(256 * 1024 * 1024);
      // Without the limit V8 takes gigabytes on this machine; under it, about the limit or less.
      expect(seen.h).toBeLessThanOrEqual(320 * 1024 * 1024);
      expect(cg.read().oomKills).toBe(0);
    } finally {
      cg.remove();
    }
  });

  it('is enforced by the kernel, and the reading says so', async () => {
    const cg = createMemoryCgroup(96);
    try {
      // Buffers live outside V8's heap, so only the kernel stops this one.
      const script = 'const a=[];for(let i=0;i<32;i++)a.push(Buffer.alloc(16*2**20,1));console.log(a.length)';
      const outcome = await run(cg.execPath, ['-e', script]).then(
        () => 'finished',
        (err: { signal?: string }) => err.signal,
      );
      expect(outcome).toBe('SIGKILL');
      const r = cg.read();
      expect(r.oomKills).toBe(1);
      expect(r.limitHits).toBeGreaterThan(0);
      expect(r.peakBytes).toBeGreaterThan(90 * 1024 * 1024);
      expect(r.peakBytes).toBeLessThanOrEqual(96 * 1024 * 1024);
    } finally {
      cg.remove();
    }
  });
});
