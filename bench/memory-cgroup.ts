// A server child under a container's memory limit, without a container: a memory cgroup of its own.
//
// A pod's limit changes more than when the process is killed. Node reads the limit at start
// (process.constrainedMemory()) and V8 sizes its heap from it, the young generation included, so figures taken
// on this 24 GiB machine with no limit are not the pod's. A bench that sets BENCH_MEMORY_LIMIT_MIB starts every
// server in a new memory cgroup with that limit (under the bench's own, so it is removed with the run), and
// reads the kernel's own account of it: what the cgroup holds now (anonymous memory and page cache apart), its
// peak, how often it hit the limit and how many processes the kernel killed there.
//
// It needs write access to the cgroup tree (root on this machine). cgroup v1 and v2 are both read; with v2 the
// bench's cgroup must have the memory controller enabled for its children.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CgroupReading {
  /** Anonymous memory: the process' heap, stacks and buffers (v1 `rss`, v2 `anon`). */
  anonBytes: number;
  /** Page cache charged to the cgroup: the files the server wrote and read (v1 `cache`, v2 `file`). */
  fileBytes: number;
  /** The most the cgroup has held since it was made, cache included. */
  peakBytes: number;
  /** Times an allocation met the limit and the kernel had to reclaim (v1 `failcnt`, v2 `max` events). */
  limitHits: number;
  /** Processes the kernel's OOM killer ended in this cgroup. */
  oomKills: number;
}

export interface MemoryCgroup {
  dir: string;
  limitBytes: number;
  /** An executable that joins the cgroup and then runs node: give it to fork() as `execPath`. */
  execPath: string;
  read(): CgroupReading;
  /** Removes the cgroup; its processes must have exited. */
  remove(): void;
}

type Version = 1 | 2;

/** The directory of this process' own memory cgroup, and which cgroup version it is under. */
function ownMemoryCgroup(): { dir: string; version: Version } {
  const lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
  const v1 = lines.map((l) => l.split(':')).find(([, controllers = '']) => controllers.split(',').includes('memory'));
  if (v1 && existsSync('/sys/fs/cgroup/memory')) return { dir: join('/sys/fs/cgroup/memory', v1.slice(2).join(':')), version: 1 };
  const v2 = lines.find((l) => l.startsWith('0::'));
  if (v2 && existsSync('/sys/fs/cgroup/cgroup.controllers')) return { dir: join('/sys/fs/cgroup', v2.slice(3)), version: 2 };
  throw new Error('BENCH_MEMORY_LIMIT_MIB: no memory cgroup found in /proc/self/cgroup');
}

/** `key value` lines of a cgroup file (memory.stat, memory.events) as numbers. */
function keyed(file: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [key, value] = line.split(' ');
    if (key && value !== undefined) out.set(key, Number(value));
  }
  return out;
}

const numberIn = (file: string) => Number(readFileSync(file, 'utf8').trim());

let made = 0;

export function createMemoryCgroup(limitMiB: number, nodePath: string = process.execPath): MemoryCgroup {
  const own = ownMemoryCgroup();
  const name = `tiergate-bench-${process.pid}-${made++}`;
  const dir = join(own.dir, name);
  const limitBytes = Math.round(limitMiB * 1024 * 1024);
  mkdirSync(dir);
  try {
    writeFileSync(join(dir, own.version === 1 ? 'memory.limit_in_bytes' : 'memory.max'), String(limitBytes));
  } catch (err) {
    rmdirSync(dir);
    throw new Error(`BENCH_MEMORY_LIMIT_MIB: cannot set a limit in ${dir} (${(err as Error).message})`);
  }
  // The shell joins the cgroup before node starts, so that Node and V8 see the limit from the first instruction;
  // exec keeps the pid (and with it fork()'s IPC channel, an inherited descriptor).
  // (cgroupfs holds no ordinary files, so the script lives in the temp directory.)
  const execPath = join(tmpdir(), `${name}.sh`);
  writeFileSync(execPath, `#!/bin/sh\necho $$ > '${join(dir, 'cgroup.procs')}' && exec '${nodePath}' "$@"\n`);
  chmodSync(execPath, 0o755);
  return {
    dir,
    limitBytes,
    execPath,
    read(): CgroupReading {
      if (own.version === 1) {
        const stat = keyed(join(dir, 'memory.stat'));
        const oom = keyed(join(dir, 'memory.oom_control'));
        return {
          anonBytes: stat.get('rss') ?? NaN,
          fileBytes: stat.get('cache') ?? NaN,
          peakBytes: numberIn(join(dir, 'memory.max_usage_in_bytes')),
          limitHits: numberIn(join(dir, 'memory.failcnt')),
          oomKills: oom.get('oom_kill') ?? NaN,
        };
      }
      const stat = keyed(join(dir, 'memory.stat'));
      const events = keyed(join(dir, 'memory.events'));
      return {
        anonBytes: stat.get('anon') ?? NaN,
        fileBytes: stat.get('file') ?? NaN,
        peakBytes: existsSync(join(dir, 'memory.peak')) ? numberIn(join(dir, 'memory.peak')) : NaN,
        limitHits: events.get('max') ?? NaN,
        oomKills: events.get('oom_kill') ?? NaN,
      };
    },
    remove(): void {
      rmdirSync(dir);
      unlinkSync(execPath);
    },
  };
}
