// Response affinity's store: which tier answered each stored Responses API response, by scoped key, each with
// a time to live. Memory and Redis implementations share the TTL stores' code; one contract suite
// (test/contract/affinity-store.test.ts).
import type { TtlStore } from './ttl-store.js';

export type AffinityStore = TtlStore<string>;
