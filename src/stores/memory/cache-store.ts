// In-process cache store: answers kept by MemoryTtlStore, least recently used first out past maxEntries or past
// maxBytes. The count alone does not bound memory: an answer may be up to cache.maxAnswerChars long, and 10,000
// long ones would outgrow the heap V8 gives a process in a 1 GiB pod (560 MB; README "Docker Compose").
import { answerBytes } from '../../cache/answer.js';
import type { CacheEntry } from '../cache-store.js';
import { MemoryTtlStore } from './ttl-store.js';

export class MemoryCacheStore extends MemoryTtlStore<CacheEntry> {
  constructor(maxEntries: number, maxBytes: number, now?: () => number) {
    super(maxEntries, now, { max: maxBytes, weigh: (key, entry) => 2 * key.length + answerBytes(entry.answer) });
  }
}
