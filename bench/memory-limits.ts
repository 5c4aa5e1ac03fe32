// What V8 sizes itself to under a pod's memory limit, with and without the image's young-generation flag.
//
// Node reads the cgroup's limit at start and V8 derives its heap ceiling and the young generation's largest size
// from it, so the same binary behaves differently in a 512Mi pod, a 1Gi pod and on a developer's machine. For
// each limit this starts a Node process in a memory cgroup with that limit (bench/memory-cgroup.ts; needs root),
// lets it allocate short-lived objects until the young generation has grown as far as V8 lets it, and prints V8's
// heap limit and that size. Prints, asserts nothing.
//
//   npm run bench:memory-limits -- [MiB ...]     (default: 384 512 768 1024 1536 2048 4096, and no limit)
//   Run it with the Node the image ships (PATH=/path/to/node24/bin:$PATH) to see the pod's figures.
import { execFile } from 'node:child_process';
import { totalmem } from 'node:os';
import { promisify } from 'node:util';
import { createMemoryCgroup } from './memory-cgroup.js';

const run = promisify(execFile);
const FLAG = '--max-semi-space-size=16';
const limits = process.argv.slice(2).map(Number);
if (limits.some((n) => !(n > 0))) {
  console.error('usage: npm run bench:memory-limits -- [MiB ...]');
  process.exit(2);
}

// Allocates ~2 GB of short-lived objects, a few of which live a while (so some survive a young collection, as a
// server's do), then reports. V8 grows the young generation while collections keep finding survivors.
const PROBE = `
const v8 = require('node:v8');
let keep = [];
for (let i = 0; i < 3e7; i++) {
  const o = { a: i, b: [i, i + 1], c: 'x' + (i % 1000) };
  if (i % 50 === 0) { keep.push(o); if (keep.length > 200000) keep = []; }
}
const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
console.log(JSON.stringify({ heap: v8.getHeapStatistics().heap_size_limit, young: young.space_size, seen: process.constrainedMemory() }));
`;

interface Sized {
  heap: number;
  young: number;
  seen: number;
}

async function probe(limitMiB: number | undefined, flags: string[]): Promise<Sized> {
  const cgroup = limitMiB ? createMemoryCgroup(limitMiB) : undefined;
  try {
    const { stdout } = await run(cgroup?.execPath ?? process.execPath, [...flags, '-e', PROBE]);
    const sized = JSON.parse(stdout) as Sized;
    if (cgroup && sized.seen !== cgroup.limitBytes) throw new Error(`Node saw ${sized.seen} bytes, not the cgroup's ${cgroup.limitBytes}`);
    return sized;
  } finally {
    cgroup?.remove();
  }
}

const mb = (n: number) => `${Math.round(n / 1024 / 1024)} MB`;

console.log(`node ${process.version}: V8's heap limit and young generation (new space, grown) by the memory limit Node sees`);
console.log(`${'limit'.padEnd(20)} | heap limit | young generation | with ${FLAG}: heap limit | young generation`);
for (const limit of limits.length > 0 ? limits : [384, 512, 768, 1024, 1536, 2048, 4096, undefined]) {
  const plain = await probe(limit, []);
  const flagged = await probe(limit, [FLAG]);
  const name = limit ? `${limit} MiB` : `none, ${Math.round(totalmem() / 2 ** 30)} GiB machine`;
  console.log(`${name.padEnd(20)} | ${mb(plain.heap).padStart(10)} | ${mb(plain.young).padStart(16)} | ${mb(flagged.heap).padStart(43)} | ${mb(flagged.young).padStart(16)}`);
}
