// The response cache on the same Redis server as a store that must keep its keys. Redis bounds memory per
// server (its databases share one maxmemory), and the cache wants eviction where budgets, affinity and the
// ledger need none (src/stores/redis/eviction-check.ts): under noeviction, cached answers fill the server and
// every budget write is then refused (budgets.onStoreFailure for every request); under an evicting policy,
// budget keys go. Nothing fails at start, so the config says so: a note in `tiergate config check`, a warning
// when tiergate starts.
import { clusterSeed } from '../stores/redis/connect.js';
import type { Config } from './schema.js';
import type { ConfigNote } from './config-note.js';


/** host:port of a Redis URL, read as connections read it (the database number does not separate memory). */
function serverOf(url: string): string | undefined {
  try {
    const node = clusterSeed(url).nodes[0];
    return node && `${node.host.toLowerCase()}:${node.port}`;
  } catch {
    return undefined;
  }
}

export function cacheSharesRedis(config: Config): ConfigNote[] {
  if (config.cache.store !== 'redis' || !config.cache.redis) return [];
  const cache = serverOf(config.cache.redis.url);
  if (cache === undefined) return [];
  const others: Array<[path: string, url: string | undefined]> = [
    ['budgets.redis', config.budgets.store === 'redis' ? config.budgets.redis?.url : undefined],
    ['routing.affinity.redis', config.routing.affinity.store === 'redis' ? config.routing.affinity.redis?.url : undefined],
    ...config.ledger.sinks.map((s, i): [string, string | undefined] => [`ledger.sinks[${i}] (${s.name})`, s.type === 'redis' ? s.url : undefined]),
  ];
  return others
    .filter(([, url]) => url !== undefined && serverOf(url) === cache)
    .map(([path]) => ({
      path: 'cache.redis',
      message: `the same Redis server as ${path} (${cache}; databases share one maxmemory): cached answers can fill it, and then its writes are refused (noeviction) or its keys evicted; give the cache a Redis of its own`,
    }));
}
