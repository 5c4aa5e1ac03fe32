// Redis Cluster's rule for which slot a key lives in.

/** The key's hash tag: what decides its Cluster slot (the whole key when it has none). */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  const close = open === -1 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}
