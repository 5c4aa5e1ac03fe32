// Whether a Redis may evict what a store keeps there. Redis under `maxmemory` frees memory by its
// `maxmemory-policy`: the `volatile-*` policies take keys that have a TTL, the `allkeys-*` ones any key. Budget
// windows and reservations have TTLs, so either kind can drop them and hand a tenant a fresh window (spend past
// its limit); the ledger stream has none, but an `allkeys-*` policy can drop it with every row in it. Redis
// says nothing when it evicts. The README's cache advice (a `volatile-lru` Redis) is right for the cache and
// wrong for them; many deployments point every store at one REDIS_URL. So each store that must keep its keys
// checks the policy of every node it writes to when it connects, and says so, once per connection.
import { Cluster, type Redis } from 'ioredis';

/** What a store cannot lose: every key it writes, or only those without a TTL (a volatile policy is safe). */
export type MustKeep = 'every key' | 'keys without a TTL';

export interface EvictionRisk {
  /** The node, host:port (never credentials). */
  node: string;
  maxmemory: number;
  policy: string;
}

/**
 * From `INFO memory`: the policy when it can evict what `keep` names, else undefined. Without `maxmemory`
 * (0, the default) Redis evicts nothing whatever its policy.
 */
export function riskFromInfo(info: string, keep: MustKeep): Omit<EvictionRisk, 'node'> | undefined {
  const field = (name: string) => new RegExp(`^${name}:(.*?)\\r?$`, 'm').exec(info)?.[1];
  const maxmemory = Number(field('maxmemory') ?? '0');
  const policy = field('maxmemory_policy') ?? 'noeviction';
  if (!(maxmemory > 0) || policy === 'noeviction') return undefined;
  if (keep === 'keys without a TTL' && !policy.startsWith('allkeys-')) return undefined;
  return { maxmemory, policy };
}

/** Every node that could evict what the store keeps; a Cluster's every master, since keys spread over them. */
export async function evictionRisks(redis: Redis | Cluster, keep: MustKeep): Promise<EvictionRisk[]> {
  const nodes: Redis[] = redis instanceof Cluster ? redis.nodes('master') : [redis];
  const found: EvictionRisk[] = [];
  for (const node of nodes) {
    const risk = riskFromInfo(await node.info('memory'), keep);
    if (risk) found.push({ node: `${node.options.host ?? '?'}:${node.options.port ?? '?'}`, ...risk });
  }
  return found;
}

/**
 * Checks each time the connection becomes ready (a reconnect may reach a server configured otherwise, or a
 * failed-over replica). `report` gets the risks, none meaning safe, or the error when the server would not say
 * (INFO renamed away on some managed services).
 */
export function watchEviction(redis: Redis | Cluster, keep: MustKeep, report: (result: EvictionRisk[] | Error) => void): void {
  const check = () => {
    evictionRisks(redis, keep).then(report, (err: unknown) => report(err instanceof Error ? err : new Error(String(err))));
  };
  redis.on('ready', check);
  if (redis.status === 'ready') check();
}
