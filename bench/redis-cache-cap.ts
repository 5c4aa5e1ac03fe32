// What the Redis cache's per-tenant cap (cache.redis.maxEntriesPerTenant) costs a store: the capped script (SET,
// the tenant's listing, the eviction past the cap) against a plain SET PX of the same entry, what the store did
// before, in the same process, on a private redis-server, rounds alternating. Both with a tenant at its cap, so
// that every capped store also evicts one entry. Prints the client's time per store (sequential round trips)
// and Redis's own CPU per call (INFO commandstats), medians of the rounds; asserts nothing.
//   npm run bench:redis-cache-cap -- [ROUNDS] [STORES_PER_ROUND] [CAP]
import { Redis } from 'ioredis';
import type { CacheEntry } from '../src/stores/cache-store.js';
import { RedisCacheStore } from '../src/stores/redis/cache-store.js';
import { RedisServer } from '../test/helpers/redis-server.js';
import { median } from './stats.js';

const ROUNDS = Number(process.argv[2] ?? 5);
const N = Number(process.argv[3] ?? 5000);
const CAP = Number(process.argv[4] ?? 1000);

const redis = await RedisServer.start();
const opts = { url: redis.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000 };
const capped = new RedisCacheStore(opts, CAP);
const plain = new Redis(redis.url);
const admin = new Redis(redis.url);
while (capped.redis.status !== 'ready') await new Promise((r) => setTimeout(r, 10));

// An answer of ~1 KB, as a short chat answer is stored.
const entry: CacheEntry = {
  storedAt: Date.now(),
  answer: {
    model: 'weak-model',
    systemFingerprint: null,
    usage: { prompt_tokens: 60, completion_tokens: 200, total_tokens: 260 },
    choices: [{ index: 0, content: 'The audit log is under the audit tab of the secrets console. '.repeat(14), refusal: null, toolCalls: [], finishReason: 'stop' }],
  },
};
const encoded = JSON.stringify(entry);
let serial = 0;
const key = () => `bench:cache:{t:acme}:x:${serial++}`;

/** Redis's CPU microseconds so far in the command that does the store (INFO commandstats). */
async function redisUsec(command: 'set' | 'evalsha'): Promise<{ usec: number; calls: number }> {
  const info = await admin.info('commandstats');
  const m = new RegExp(`cmdstat_${command}:calls=(\\d+),usec=(\\d+)`).exec(info);
  return { calls: Number(m?.[1] ?? 0), usec: Number(m?.[2] ?? 0) };
}

async function run(variant: 'capped' | 'plain'): Promise<{ clientUs: number; redisUs: number }> {
  const command = variant === 'capped' ? 'evalsha' : 'set';
  const before = await redisUsec(command);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    if (variant === 'capped') await capped.set(key(), entry, 3_600_000, 'acme');
    else await plain.set(key(), encoded, 'PX', 3_600_000);
  }
  const clientUs = ((performance.now() - t0) * 1000) / N;
  const after = await redisUsec(command);
  return { clientUs, redisUs: (after.usec - before.usec) / Math.max(1, after.calls - before.calls) };
}

// Fill the tenant to its cap first, so every capped store below evicts one.
for (let i = 0; i < CAP; i++) await capped.set(key(), entry, 3_600_000, 'acme');
const out: Record<'capped' | 'plain', Array<{ clientUs: number; redisUs: number }>> = { capped: [], plain: [] };
for (let r = 0; r < ROUNDS; r++) for (const v of r % 2 === 0 ? (['plain', 'capped'] as const) : (['capped', 'plain'] as const)) out[v].push(await run(v));

const med = (v: 'capped' | 'plain', f: 'clientUs' | 'redisUs') => median(out[v].map((x) => x[f]));
console.log(`${ROUNDS} rounds of ${N} stores of a ${encoded.length}-byte answer each way, the tenant at its cap of ${CAP}; medians`);
console.log(`plain SET PX (before):     ${med('plain', 'clientUs').toFixed(1)} us per store, client seen; Redis CPU ${med('plain', 'redisUs').toFixed(2)} us per call`);
console.log(`capped script (now):       ${med('capped', 'clientUs').toFixed(1)} us per store, client seen; Redis CPU ${med('capped', 'redisUs').toFixed(2)} us per call`);
console.log(`capped / plain:            ${(med('capped', 'clientUs') / med('plain', 'clientUs')).toFixed(2)}x client seen, ${(med('capped', 'redisUs') / med('plain', 'redisUs')).toFixed(2)}x Redis CPU`);
console.log(`per round, Redis CPU us (plain/capped): ${out.plain.map((p, i) => `${p.redisUs.toFixed(1)}/${(out.capped[i] as { redisUs: number }).redisUs.toFixed(1)}`).join(' ')}`);

await capped.close();
plain.disconnect();
admin.disconnect();
await redis.down();
