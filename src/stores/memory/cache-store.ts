// In-process cache store: answers kept by MemoryTtlStore (least recently used go first past maxEntries).
import type { CacheEntry } from '../cache-store.js';
import { MemoryTtlStore } from './ttl-store.js';

export class MemoryCacheStore extends MemoryTtlStore<CacheEntry> {}
