// In-process response affinity: per instance only, so right for one replica; several replicas need the Redis
// store, or a continuation that reaches another replica would not find its conversation's tier.
import { MemoryTtlStore } from './ttl-store.js';

export class MemoryAffinityStore extends MemoryTtlStore<string> {}
