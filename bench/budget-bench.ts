// What limits cost. Four tiergate servers in the same run, driven alike: no limits (the embedded default),
// limits on the memory store, limits on a Redis store (a private redis-server), the same plus a limit on
// requests in flight (a slot held and freed per request), and the no-op baseline.
// Prints Redis round trips per request (from INFO commandstats), the budget stage's time p50/p99 (the
// tiergate_stage_seconds histogram), and server CPU per request with each ratio. Never asserts on time.
//   npm run bench:budget [-- ROUNDS]
import { Redis } from 'ioredis';
import { ExtProcPool } from '../src/dev/envoy-client.js';
import { RedisServer } from '../test/helpers/redis-server.js';
import { startChild, type Child } from './children.js';
import { bucketQuantile, runPlain } from './extproc-driver.js';
import { median } from './stats.js';

const ROUNDS = Number(process.argv[2] ?? 5);
const PLAIN = { requests: 3000, rate: 1000 };

const redis = await RedisServer.start();
const admin = new Redis(redis.url);
type Kind = 'noop' | 'none' | 'memory' | 'redis' | 'slots';
const KINDS: Kind[] = ['noop', 'none', 'memory', 'redis', 'slots'];
type Limited = 'memory' | 'redis' | 'slots';
const limited = (k: Kind): k is Limited => k === 'memory' || k === 'redis' || k === 'slots';
const onRedis = (k: Kind): k is 'redis' | 'slots' => k === 'redis' || k === 'slots';
const children: Record<Kind, Child> = {
  noop: await startChild('noop'),
  none: await startChild('tiergate'),
  memory: await startChild('tiergate', [], { TIERGATE_BENCH_BUDGETS: 'memory' }),
  redis: await startChild('tiergate', [], { TIERGATE_BENCH_BUDGETS: redis.url }),
  slots: await startChild('tiergate', [], { TIERGATE_BENCH_BUDGETS: redis.url, TIERGATE_BENCH_SLOTS: '1' }),
};
const pools = Object.fromEntries(KINDS.map((k) => [k, new ExtProcPool(children[k].target, 500)])) as Record<Kind, ExtProcPool>;
for (const k of KINDS) await runPlain(children[k], pools[k], 1000, 1000); // warm-up (JIT, script cache)

const cpu: Record<Kind, number[]> = { noop: [], none: [], memory: [], redis: [], slots: [] };
const stageP50: Record<Limited, number[]> = { memory: [], redis: [], slots: [] };
const stageP99: Record<Limited, number[]> = { memory: [], redis: [], slots: [] };
const roundTrips: Record<'redis' | 'slots', Record<string, number>> = { redis: {}, slots: {} };
for (let r = 0; r < ROUNDS; r++) {
  for (const k of KINDS.map((_, i) => KINDS[(i + r) % KINDS.length] as Kind)) {
    const before = limited(k) ? await children[k].stageBuckets('budget') : [];
    if (onRedis(k)) await admin.config('RESETSTAT');
    const res = await runPlain(children[k], pools[k], PLAIN.requests, PLAIN.rate);
    cpu[k].push(res.cpuPerRequestUs);
    // A slot's release goes out when its stream ends: give the last ones time to land before counting.
    if (onRedis(k)) await new Promise((r) => setTimeout(r, 200));
    if (onRedis(k)) roundTrips[k] = commandStats(await admin.info('commandstats'));
    if (limited(k)) {
      const after = await children[k].stageBuckets('budget');
      stageP50[k].push(bucketQuantile(before, after, 0.5));
      stageP99[k].push(bucketQuantile(before, after, 0.99));
    }
  }
}
for (const p of Object.values(pools)) p.close();
for (const c of Object.values(children)) c.stop();
admin.disconnect();
await redis.down();

/** Commands the tiergate client sent (scripts count once; the commands a script runs are listed apart). */
function commandStats(info: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) out[m[1] as string] = Number(m[2]);
  return out;
}

const paired = (a: number[], b: number[]) => median(a.map((x, i) => x / (b[i] as number)));
const clientCommands = ['evalsha', 'eval', 'script|load'];

console.log(`node ${process.version}; ${ROUNDS} rounds of ${PLAIN.requests} four-phase requests at ${PLAIN.rate}/s; medians, ratios paired per round`);
console.log('limits on: requests/minute + daily budget + tokens/minute for every request (never refusing), so each request counts its prompt, admits, reserves and reconciles');
for (const k of ['redis', 'slots'] as const) {
  const perRequest = (name: string) => (roundTrips[k][name] ?? 0) / PLAIN.requests;
  const scripted = Object.entries(roundTrips[k]).filter(([c]) => !clientCommands.includes(c) && c !== 'config|resetstat' && c !== 'info');
  console.log(`Redis round trips per request (${k}): ${clientCommands.map((c) => `${c} ${perRequest(c).toFixed(3)}`).join(', ')}; total ${clientCommands.reduce((s, c) => s + perRequest(c), 0).toFixed(3)}`);
  console.log(`  (commands run inside those scripts, per request: ${scripted.map(([c, n]) => `${c} ${(n / PLAIN.requests).toFixed(2)}`).join(', ')})`);
}
for (const k of ['memory', 'redis', 'slots'] as const) {
  console.log(`budget stage time, ${k.padEnd(6)}: p50 ${median(stageP50[k]).toFixed(3)} ms, p99 ${median(stageP99[k]).toFixed(3)} ms`);
}
console.log(`${'server CPU per request'.padEnd(34)} ${KINDS.map((k) => `${k} ${median(cpu[k]).toFixed(0)} us`).join(', ')}`);
console.log(`${'  vs no-op'.padEnd(34)} no limits ${paired(cpu.none, cpu.noop).toFixed(2)}x, memory ${paired(cpu.memory, cpu.noop).toFixed(2)}x, redis ${paired(cpu.redis, cpu.noop).toFixed(2)}x, redis + slots ${paired(cpu.slots, cpu.noop).toFixed(2)}x`);
console.log(`${'  vs tiergate without limits'.padEnd(34)} memory ${paired(cpu.memory, cpu.none).toFixed(2)}x, redis ${paired(cpu.redis, cpu.none).toFixed(2)}x, redis + slots ${paired(cpu.slots, cpu.none).toFixed(2)}x`);
console.log(`${'  redis + slots vs redis'.padEnd(34)} ${paired(cpu.slots, cpu.redis).toFixed(2)}x`);
