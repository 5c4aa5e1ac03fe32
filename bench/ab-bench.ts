// This checkout against another commit, in the same run and the same moments: server CPU per request of
// tiergate at REF (a temporary git worktree), tiergate here, and the bare no-op, with the Envoy-faithful
// client sending plain four-phase requests to the three in turn (1,000 requests/s in all). Runs of
// bench/extproc-bench.ts a few minutes apart differ by more than most single changes, so a change is judged
// here, where machine drift hits all three alike; per-round differences are printed so the spread is visible.
// Every round starts new server processes (freshRound): the same code in two processes can differ by ~50 us
// per request for the processes' whole life, which a single set of processes would read as a code difference.
// Never asserts on time.     npm run bench:ab -- REF [ROUNDS [REQUESTS_PER_SERVER]]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startChild } from './children.js';
import { SAME_REGIME_US, freshRound, sameRegime, type CpuPerRequest, type Starter } from './extproc-driver.js';
import { median } from './stats.js';

const [ref, roundsArg, perArg] = process.argv.slice(2);
if (!ref) {
  console.error('usage: npm run bench:ab -- REF [ROUNDS [REQUESTS_PER_SERVER]]   (REF: a commit, branch or tag)');
  process.exit(2);
}
const ROUNDS = Number(roundsArg ?? 10);
const PER = Number(perArg ?? 3000);
const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

const base = join(mkdtempSync(join(tmpdir(), 'tiergate-ab-')), 'base');
execFileSync('git', ['-C', ROOT, 'worktree', 'add', '--detach', '--quiet', base, ref]);
// The dependencies of this checkout: REF is judged on its own code, not on a different install.
symlinkSync(join(ROOT, 'node_modules'), join(base, 'node_modules'));
try {
  const starters: Starter[] = [() => startChild('tiergate', [], {}, base), () => startChild('tiergate'), () => startChild('noop')];
  // The driver sends to the servers in turn, always in one order; with REF and this checkout in a fixed order,
  // the same commit measured against itself came out 6-12 us per request apart (2026-12-03, 4 runs). So the two
  // swap places every other round, and each result is put back in its place.
  const SWAPPED = [1, 0, 2];
  const rounds: CpuPerRequest[][] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) rounds.push(await freshRound(starters, PER));
    else {
      const got = await freshRound(SWAPPED.map((j) => starters[j] as Starter), PER);
      rounds.push(SWAPPED.map((j) => got[j] as CpuPerRequest)); // SWAPPED is its own inverse
    }
  }
  const totals = rounds.map((x) => x.map((c) => c.total));
  const med = (f: (x: number[]) => number) => median(totals.map(f)).toFixed(3);
  const [A, B, N] = [0, 1, 2].map((j) => median(totals.map((x) => x[j] as number)).toFixed(0));
  const [gA, gB, gN] = [0, 1, 2].map((j) => median(rounds.map((x) => (x[j] as CpuPerRequest).gc)).toFixed(0));
  console.log(`node ${process.version}; ${ROUNDS} rounds, each on new server processes, x ${PER} plain requests per server, sent in turn (1,000/s in all); medians`);
  console.log(`server CPU per request: ${ref} ${A} us, this checkout ${B} us, no-op ${N} us`);
  console.log(`of which main-thread GC pauses: ${ref} ${gA} us, this checkout ${gB} us, no-op ${gN} us`);
  console.log(`vs no-op: ${ref} ${med((x) => (x[0] as number) / (x[2] as number))}x, this checkout ${med((x) => (x[1] as number) / (x[2] as number))}x`);
  console.log(`main-thread GC per round (${ref}/this/no-op): ${rounds.map((x) => x.map((c) => c.gc.toFixed(0)).join('/')).join(' ')}`);
  const diffs = totals.map((x) => (x[1] as number) - (x[0] as number));
  console.log(`this checkout / ${ref}: ${med((x) => (x[1] as number) / (x[0] as number))}x, ${median(diffs).toFixed(1)} us per request; per round: ${diffs.map((d) => d.toFixed(0)).join(' ')}`);
  // Rounds where one of the two processes was in the costly GC regime and the other was not differ by ~50 us
  // for that reason alone; the rounds where both were in the same regime show the code's difference.
  const alike = rounds.flatMap((x, i) => (sameRegime((x[1] as CpuPerRequest).gc, (x[0] as CpuPerRequest).gc) ? [diffs[i] as number] : []));
  console.log(`  in the ${alike.length} rounds whose two processes' GC pauses were within ${SAME_REGIME_US} us: ${alike.length ? `${median(alike).toFixed(1)} us per request` : 'none'}`);
} finally {
  execFileSync('git', ['-C', ROOT, 'worktree', 'remove', '--force', base]);
  rmSync(join(base, '..'), { recursive: true, force: true });
}
