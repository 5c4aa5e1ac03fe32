// Does the memory cache store's byte estimate (cache.maxBytes) err high? Fills a MemoryCacheStore with answers
// of several kinds until their estimate reaches 60 MiB, and prints the heap they really hold after full
// collections, and the ratio. Answers are built by the AnswerAssembler as in the proxy (from a parsed JSON body,
// or from SSE deltas). Prints, asserts nothing.
//
//   npm run bench:cache-memory
import { MemoryCacheStore } from '../src/stores/memory/cache-store.js';
import { AnswerAssembler } from '../src/cache/answer.js';
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc (npm run bench:cache-memory)');
const KINDS = [
  ['JSON, 20,000 ASCII characters', 'abcd efgh ', 20_000],
  ['JSON, 20,000 Korean characters', '한국어 문장 ', 20_000],
  ['JSON, 300 ASCII characters', 'word ', 300],
  ['SSE, 2,000 characters in 500 deltas', 'tok ', 2000],
] as const;
for (const [name, unit, len] of KINDS) {
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const store = new MemoryCacheStore(1_000_000, 64 * 1024 * 1024);
  for (let i = 0; store.totalWeight < 60 * 1024 * 1024 && i < 1_000_000; i++) {
    const a = new AnswerAssembler(1e9);
    const text = (unit.repeat(Math.ceil(len / unit.length)).slice(0, len - 8)) + String(i).padStart(8, '0');
    if (name.startsWith('SSE')) {
      for (let p = 0; p < text.length; p += 4) a.chunk({ object: 'chat.completion.chunk', model: 'weak-model', choices: [{ index: 0, delta: { content: text.slice(p, p + 4) } }] });
      a.chunk({ object: 'chat.completion.chunk', model: 'weak-model', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 } });
    } else {
      a.body(JSON.parse(JSON.stringify({ object: 'chat.completion', model: 'weak-model', choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }], usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30, prompt_tokens_details: { cached_tokens: 0 } } })));
    }
    store.set(`tiergate:cache:{t:acme}:x:${'0'.repeat(56)}${String(i).padStart(8, '0')}`, { answer: a.answer()!, storedAt: Date.now() }, 3_600_000, 'acme');
  }
  gc();
  gc();
  const held = process.memoryUsage().heapUsed - before;
  console.log(`${name}: ${store.size} entries, estimated ${(store.totalWeight / 2 ** 20).toFixed(1)} MiB, heap held ${(held / 2 ** 20).toFixed(1)} MiB, estimate/actual ${(store.totalWeight / held).toFixed(2)}`);
  await store.close();
}
