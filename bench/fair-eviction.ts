// What fair eviction costs the in-process stores (src/stores/memory/owners.ts): a store full at 10,000 entries,
// its entries spread over 1 to 10,000 tenants, takes stores round-robin from every tenant (each store past the
// bound takes one entry out, by a scan of the tenants), and reads of present keys. The baseline is the store
// before the change, a single least-recently-used order (copied below), in the same process. Also the heap per
// entry of each, after full collections. Prints, asserts nothing.
//
//   npm run bench:fair-eviction
import { MemoryTtlStore } from '../src/stores/memory/ttl-store.js';
import { nsPerCall } from './stats.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc (npm run bench:fair-eviction)');
const MAX = 10_000;
const HOUR = 3_600_000;

/** The store as it was before fair eviction: one Map in least-recently-used order for everyone. */
class PlainLru<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();
  constructor(private readonly maxEntries: number) {}
  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.value;
  }
  set(key: string, value: V, ttlMs: number): void {
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt: Date.now() + ttlMs });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }
}

type Store = { get(k: string): unknown; set(k: string, v: number, ttl: number, owner: string): void };
const key = (owner: number, i: number) => `tiergate:cache:{t:tenant-${owner}}:x:${i.toString(16).padStart(64, '0')}`;

function measure(make: () => Store, owners: number): { set: number; get: number; heapPerEntry: number } {
  gc!();
  gc!();
  const before = process.memoryUsage().heapUsed;
  const s = make();
  let i = 0;
  for (; i < MAX; i++) s.set(key(i % owners, i), i, HOUR, `tenant-${i % owners}`);
  gc!();
  gc!();
  const heapPerEntry = (process.memoryUsage().heapUsed - before) / MAX;
  // Keys made ahead, so the timing is the store's work and not the string building.
  const fresh = Array.from({ length: 50_000 }, (_, j) => key(j % owners, MAX + j));
  let n = 0;
  const set = nsPerCall(() => {
    const j = n++ % fresh.length;
    s.set(fresh[j] as string, j, HOUR, `tenant-${j % owners}`);
  }, 20_000);
  const present = fresh.slice(-MAX / 2);
  let m = 0;
  const get = nsPerCall(() => s.get(present[m++ % present.length] as string), 20_000);
  return { set, get, heapPerEntry };
}

console.log(`node ${process.version}; a store full at ${MAX.toLocaleString('en')} entries; median of 7 rounds of 20,000 calls; fair = this checkout, plain LRU = before`);
console.log(`${'tenants'.padStart(8)} ${'store, fair'.padStart(12)} ${'plain LRU'.padStart(10)} ${'ratio'.padStart(7)}   ${'read, fair'.padStart(11)} ${'plain LRU'.padStart(10)}   heap per entry, fair / plain`);
for (const owners of [1, 10, 100, 1_000, 10_000]) {
  const fair = measure(() => new MemoryTtlStore<number>(MAX), owners);
  const plain = measure(() => new PlainLru<number>(MAX), owners);
  console.log(
    `${owners.toLocaleString('en').padStart(8)} ${`${(fair.set / 1000).toFixed(2)} µs`.padStart(12)} ${`${(plain.set / 1000).toFixed(2)} µs`.padStart(10)} ${`${(fair.set / plain.set).toFixed(1)}x`.padStart(7)}   ${`${(fair.get / 1000).toFixed(2)} µs`.padStart(11)} ${`${(plain.get / 1000).toFixed(2)} µs`.padStart(10)}   ${fair.heapPerEntry.toFixed(0)} / ${plain.heapPerEntry.toFixed(0)} bytes`,
  );
}
