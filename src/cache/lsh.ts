// Which buckets a vector falls in, so a lookup reads a handful of candidates instead of a whole partition.
// With the lexical guard on (the default), a candidate can only be served if its content words equal the new
// question's, so the bucket is that word set's hash: exact, one bucket, no candidate lost. Without it, random-
// hyperplane LSH: L tables of K sign bits; vectors closer than the threshold share a table with high probability
// (at cosine 0.9 and K=14, L=24: 94%; at 0.95: 99.8%), and every candidate is then scored exactly.
// The hyperplanes come from a fixed seed, so every tiergate instance computes the same buckets.

export const LSH_TABLES = 24;
export const LSH_BITS = 14;

/** mulberry32: a small, fast, seeded PRNG (the planes must be identical across processes, not secret). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const planesByDims = new Map<number, Float32Array>();

function planes(dims: number): Float32Array {
  let p = planesByDims.get(dims);
  if (!p) {
    const rand = prng(0x7e1a9a7e ^ dims);
    p = new Float32Array(LSH_TABLES * LSH_BITS * dims);
    // Gaussian components (Box–Muller) make the planes' directions uniform on the sphere.
    for (let i = 0; i < p.length; i++) p[i] = Math.sqrt(-2 * Math.log(rand() || 1e-12)) * Math.cos(2 * Math.PI * rand());
    planesByDims.set(dims, p);
  }
  return p;
}

/** One bucket name per table: `l<table>:<bits as hex>`. */
export function lshBuckets(v: Float32Array): string[] {
  const dims = v.length;
  const p = planes(dims);
  const out: string[] = [];
  for (let t = 0; t < LSH_TABLES; t++) {
    let sig = 0;
    for (let b = 0; b < LSH_BITS; b++) {
      const base = (t * LSH_BITS + b) * dims;
      let s = 0;
      for (let i = 0; i < dims; i++) s += (p[base + i] as number) * (v[i] as number);
      if (s >= 0) sig |= 1 << b;
    }
    out.push(`l${t}:${sig.toString(16)}`);
  }
  return out;
}

export function bucketsFor(v: Float32Array, words: string, lexical: boolean): string[] {
  return lexical ? [`w:${words}`] : lshBuckets(v);
}
