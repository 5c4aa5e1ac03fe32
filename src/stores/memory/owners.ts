// Fair eviction for the in-process stores: past a bound, entries go from the owner (tenant) that holds the
// most, its least recently used first. One tenant then cannot empty the store of everyone else's entries by
// storing many of its own: it can only take space from a tenant holding more than it, and each tenant keeps
// at least an equal share of what it asks to keep. With one owner it is plain least-recently-used.
//
// Each owner's entries are a linked list, least recently used first: taking the first entry of a Map or Set
// after many deletions at its head walks past every deleted slot V8 has not yet compacted (~8 µs per store in
// a full store of 10,000 before, 0.5–2.5 µs now: bench/fair-eviction.ts). Owners sit in a max-heap per measure
// (count, weight), so finding the largest does not scan every tenant.

/** An entry as an owner's list holds it. */
export interface Linked<E> {
  prev: E | undefined;
  next: E | undefined;
}

/** One owner's entries, least recently used first, and what they come to. */
export class Holdings<E extends Linked<E>> {
  first: E | undefined;
  last: E | undefined;
  count = 0;
  weight = 0;
  /** When it last stored or read an entry, by the store's use counter: among equals, the least recent gives first. */
  used = 0;

  constructor(readonly name: string) {}

  /** A new entry, most recently used. */
  add(e: E, weight: number): void {
    this.append(e);
    this.count++;
    this.weight += weight;
  }

  remove(e: E, weight: number): void {
    this.unlink(e);
    this.count--;
    this.weight -= weight;
  }

  /** `e` was used: it goes last. */
  touch(e: E): void {
    this.unlink(e);
    this.append(e);
  }

  private append(e: E): void {
    e.prev = this.last;
    e.next = undefined;
    if (this.last) this.last.next = e;
    else this.first = e;
    this.last = e;
  }

  private unlink(e: E): void {
    if (e.prev) e.prev.next = e.next;
    else this.first = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.last = e.prev;
    e.prev = e.next = undefined;
  }
}

/**
 * Owners by one measure, the largest on top; among equals the one that used the store longest ago, so an owner
 * that has just stored gives last and, with owners holding alike, the least recently used entry goes, as in a
 * plain LRU. Each owner's place is kept, so a change re-sorts it in O(log owners).
 */
export class OwnerHeap<H extends { used: number }> {
  private readonly items: H[] = [];
  private readonly place = new Map<H, number>();

  constructor(private readonly measure: (h: H) => number) {}

  top(): H | undefined {
    return this.items[0];
  }

  /** Adds `h`, or re-sorts it after its measure or its last use changed. */
  update(h: H): void {
    let i = this.place.get(h);
    if (i === undefined) {
      i = this.items.length;
      this.items.push(h);
      this.place.set(h, i);
    }
    this.down(this.up(i));
  }

  remove(h: H): void {
    const i = this.place.get(h);
    if (i === undefined) return;
    this.place.delete(h);
    const last = this.items.pop() as H;
    if (i === this.items.length) return;
    this.items[i] = last;
    this.place.set(last, i);
    this.down(this.up(i));
  }

  clear(): void {
    this.items.length = 0;
    this.place.clear();
  }

  private above(a: H, b: H): boolean {
    const d = this.measure(a) - this.measure(b);
    return d > 0 || (d === 0 && a.used < b.used);
  }

  private up(i: number): number {
    const items = this.items;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.above(items[i] as H, items[parent] as H)) break;
      this.swap(i, parent);
      i = parent;
    }
    return i;
  }

  private down(i: number): void {
    const items = this.items;
    for (;;) {
      const l = 2 * i + 1;
      let best = i;
      if (l < items.length && this.above(items[l] as H, items[best] as H)) best = l;
      if (l + 1 < items.length && this.above(items[l + 1] as H, items[best] as H)) best = l + 1;
      if (best === i) return;
      this.swap(i, best);
      i = best;
    }
  }

  private swap(i: number, j: number): void {
    const items = this.items;
    const [a, b] = [items[i] as H, items[j] as H];
    items[i] = b;
    items[j] = a;
    this.place.set(b, i);
    this.place.set(a, j);
  }
}
