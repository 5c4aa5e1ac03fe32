// A Map that starts over when full. The memo caches on the request path (header names and values, answer
// strings, tenant policies) see a handful of keys again and again, and occasionally keys that never repeat:
// clearing at the limit keeps the common keys one lookup away and bounds what the rare ones can hold.
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(private readonly limit: number) {
    super();
  }

  override set(key: K, value: V): this {
    if (this.size >= this.limit && !this.has(key)) this.clear();
    return super.set(key, value);
  }
}
