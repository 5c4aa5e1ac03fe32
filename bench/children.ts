// Starts bench/server-child.ts processes and reads their CPU time over IPC.
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMemoryCgroup, type CgroupReading } from './memory-cgroup.js';

export interface Child {
  kind: string;
  target: string;
  /** Total user+system CPU microseconds the child has used so far. */
  cpuMicros(): Promise<number>;
  /** The same, split into user and system (kernel) time, with the main thread's GC pauses so far (ms). */
  cpuUsage(): Promise<Usage>;
  /** Cumulative server-side request_body answer-time buckets: [le, count] pairs. */
  bodyAnswerBuckets(): Promise<Array<[string, number]>>;
  /** Cumulative time buckets of one request pipeline stage (tiergate_stage_seconds). */
  stageBuckets(stage: string): Promise<Array<[string, number]>>;
  /** process.memoryUsage() after two full collections (the child needs --expose-gc). */
  heap(): Promise<NodeJS.MemoryUsage>;
  /** The memory limit the child found, V8's heap ceiling and its young generation's size now. */
  limits(): Promise<Limits>;
  /** The kernel's account of the child's memory cgroup; undefined unless BENCH_MEMORY_LIMIT_MIB is set. */
  cgroup(): CgroupReading | undefined;
  /** Writes a heap snapshot to `file`. */
  snapshot(file: string): Promise<void>;
  /** Asks the child to exit; resolves when it has. */
  stop(): Promise<void>;
}

export interface Limits {
  constrainedBytes: number;
  heapLimitBytes: number;
  youngBytes: number;
}

export interface Usage extends NodeJS.CpuUsage {
  gcMs: number;
}

/** `checkout`: start the server-child of another checkout of tiergate (bench/ab-bench.ts), else this one's. */
export async function startChild(kind: 'tiergate' | 'noop' | 'echo', extraExecArgv: string[] = [], env: NodeJS.ProcessEnv = {}, checkout?: string): Promise<Child> {
  const entry = checkout ? join(checkout, 'bench', 'server-child.ts') : fileURLToPath(new URL('./server-child.ts', import.meta.url));
  // BENCH_NODE_FLAGS (e.g. "--max-semi-space-size=16") applies the same runtime flags to every server.
  const flags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  // BENCH_MEMORY_LIMIT_MIB puts every server in a memory cgroup of its own with that limit, as a pod's.
  // (A variant of bench:variants can set its own: noop:BENCH_MEMORY_LIMIT_MIB=1024.)
  const limitMiB = Number(env.BENCH_MEMORY_LIMIT_MIB ?? process.env.BENCH_MEMORY_LIMIT_MIB ?? 0);
  const cgroup = limitMiB > 0 ? createMemoryCgroup(limitMiB) : undefined;
  const child: ChildProcess = fork(entry, [kind], {
    ...(cgroup ? { execPath: cgroup.execPath } : {}),
    ...(checkout ? { cwd: checkout } : {}), execArgv: ['--import', 'tsx', ...flags, ...extraExecArgv], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ...env } });
  // The cgroup goes with the child; its last reading is kept (an OOM kill is what one wants to read then).
  let lastReading: CgroupReading | undefined;
  child.once('exit', () => {
    if (!cgroup) return;
    lastReading = cgroup.read();
    try {
      cgroup.remove();
    } catch (err) {
      console.error(`memory cgroup ${cgroup.dir} left behind: ${(err as Error).message}`);
    }
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port?: number }) => (m.port ? resolve(m.port) : reject(new Error('no port'))));
    child.once('exit', (code) => reject(new Error(`${kind} exited ${code}`)));
  });
  const cpuUsage = (): Promise<Usage> =>
    new Promise((resolve) => {
      // gcMs is NaN for a server child older than GC reporting (bench:ab against an earlier commit).
      child.once('message', (m: { cpu: NodeJS.CpuUsage; gcMs?: number }) => resolve({ ...m.cpu, gcMs: m.gcMs ?? NaN }));
      child.send('cpu');
    });
  return {
    kind,
    target: `127.0.0.1:${port}`,
    cpuUsage,
    cpuMicros: async () => {
      const c = await cpuUsage();
      return c.user + c.system;
    },
    bodyAnswerBuckets: () =>
      new Promise((resolve) => {
        child.once('message', (m: { buckets: Array<[string, number]> }) => resolve(m.buckets));
        child.send('buckets');
      }),
    heap: () =>
      new Promise((resolve) => {
        child.once('message', (m: { heap: NodeJS.MemoryUsage }) => resolve(m.heap));
        child.send('heap');
      }),
    limits: () =>
      new Promise((resolve) => {
        child.once('message', (m: { limits: Limits }) => resolve(m.limits));
        child.send('limits');
      }),
    cgroup: () => lastReading ?? cgroup?.read(),
    snapshot: (file) =>
      new Promise((resolve) => {
        child.once('message', () => resolve());
        child.send({ snapshot: file });
      }),
    stageBuckets: (stage) =>
      new Promise((resolve) => {
        child.once('message', (m: { buckets: Array<[string, number]> }) => resolve(m.buckets));
        child.send({ stageBuckets: stage });
      }),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.send('exit');
      }),
  };
}
