// Redis response affinity: the tier's name as the value (RedisTtlStore), shared by every replica on the same
// Redis, so a continuation finds its tier whichever replica it reaches.
import type { RedisConnectOptions } from './connect.js';
import { RedisTtlStore } from './ttl-store.js';

const TIER_NAME = { encode: (tier: string) => tier, decode: (text: string) => text };

export class RedisAffinityStore extends RedisTtlStore<string> {
  constructor(opts: RedisConnectOptions) {
    super(opts, TIER_NAME, 'affinity store');
  }
}
