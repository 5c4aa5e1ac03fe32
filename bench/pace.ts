// Sending at a steady rate, as clients do: the benches that load a server or an embedder share it.

/**
 * Calls `one(i)` for i = 0 … n−1, the i-th at i/rate seconds after the start (never earlier; late calls go at
 * once), without waiting for earlier calls to finish; resolves when every call's promise has settled.
 */
export async function paced(n: number, rate: number, one: (i: number) => Promise<void>): Promise<void> {
  const started = performance.now();
  const all: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const wait = started + (i * 1000) / rate - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    all.push(one(i));
  }
  await Promise.all(all);
}
