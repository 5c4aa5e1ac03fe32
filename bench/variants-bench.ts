// Several server variants side by side, in the same run and the same moments: server CPU per request of each
// (and its user and system parts), with the Envoy-faithful client sending plain four-phase requests to them in
// turn (1,000 requests/s in all), and each one's median difference from the first. Each round runs on new
// processes (freshRound in extproc-driver.ts). A variant is a server kind of bench/server-child.ts with
// environment settings, e.g. to see what the file sink or the request stages cost:
//   npm run bench:variants -- tiergate tiergate:TIERGATE_BENCH_SINK=memory tiergate:TIERGATE_BENCH_STAGES=parse,classify noop
// NODE_FLAGS="--a --b" gives one variant Node or V8 flags:   npm run bench:variants -- noop 'noop:NODE_FLAGS=--single-threaded-gc'
// Never asserts on time.   ROUNDS (default 6) and PER (requests per server per round, default 1500) from the env.
import { startChild } from './children.js';
import { freshRound, type CpuPerRequest, type Starter } from './extproc-driver.js';
import { median } from './stats.js';

const KINDS = ['tiergate', 'noop', 'echo'] as const;
type Kind = (typeof KINDS)[number];

function parseVariant(spec: string): { kind: Kind; env: Record<string, string> } {
  const [kind, settings = ''] = spec.split(':', 2) as [string, string?];
  if (!KINDS.includes(kind as Kind)) throw new Error(`unknown server kind "${kind}" in "${spec}" (one of ${KINDS.join(', ')})`);
  const env: Record<string, string> = {};
  let last: string | undefined;
  // Settings are separated by commas; a piece with no "=" continues the previous value (STAGES=parse,classify).
  for (const piece of settings.split(',').filter(Boolean)) {
    const eq = piece.indexOf('=');
    if (eq > 0) env[(last = piece.slice(0, eq))] = piece.slice(eq + 1);
    else if (last !== undefined) env[last] += `,${piece}`;
    else throw new Error(`"${piece}" in "${spec}" is not NAME=VALUE`);
  }
  return { kind: kind as Kind, env };
}

const USAGE = 'usage: npm run bench:variants -- KIND[:NAME=VALUE,...] KIND[:...] ...   (KIND: tiergate, noop or echo)';
const specs = process.argv.slice(2);
if (specs.length < 2) {
  console.error(USAGE);
  process.exit(2);
}
let variants: Array<ReturnType<typeof parseVariant>> = [];
try {
  variants = specs.map(parseVariant);
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
const ROUNDS = Number(process.env.ROUNDS ?? 6);
const PER = Number(process.env.PER ?? 1500);

// NODE_FLAGS is not passed on as an environment variable but as the server's Node flags: V8's GC flags
// (e.g. --single-threaded-gc) are refused in NODE_OPTIONS.
const starters: Starter[] = variants.map(({ kind, env: { NODE_FLAGS: flags = '', ...env } }) => () => startChild(kind, flags.split(' ').filter(Boolean), env));
const rounds: CpuPerRequest[][] = [];
for (let r = 0; r < ROUNDS; r++) rounds.push(await freshRound(starters, PER));
console.log(`node ${process.version}; ${ROUNDS} rounds x ${PER} plain requests per server, sent in turn (1,000/s in all), each round on new processes; medians`);
const width = Math.max(...specs.map((s) => s.length));
const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(1)}`;
specs.forEach((spec, j) => {
  const of = (x: CpuPerRequest[]) => x[j] as CpuPerRequest;
  const own = (k: keyof CpuPerRequest) => median(rounds.map((x) => of(x)[k])).toFixed(0);
  const split = `(user ${own('user')}, system ${own('system')}; main-thread GC ${own('gc')})`;
  const diffs = (k: keyof CpuPerRequest) => rounds.map((x) => of(x)[k] - (x[0] as CpuPerRequest)[k]);
  const vsFirst =
    j === 0
      ? ''
      : `  ${signed(median(diffs('total')))} us vs the first (user ${signed(median(diffs('user')))}, system ${signed(median(diffs('system')))}); per round: ${diffs('total').map((d) => d.toFixed(0)).join(' ')}`;
  console.log(`${spec.padEnd(width)}  ${own('total').padStart(5)} us per request ${split}${vsFirst}`);
});
