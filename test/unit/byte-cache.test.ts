import { describe, expect, it } from 'vitest';
import { ByteCache } from '../../src/byte-cache.js';

describe('ByteCache', () => {
  it('encodes as asked, keeps what it encoded, and starts over at its limit', () => {
    const c = new ByteCache(3);
    expect(c.put('모델', 'utf8')).toEqual(Buffer.from('모델', 'utf8'));
    expect(c.put('A\u00ff', 'latin1')).toEqual(Buffer.from([0x41, 0xff]));
    // A lone surrogate becomes U+FFFD, as Buffer.from writes it.
    expect(c.put('x\ud800', 'utf8')).toEqual(Buffer.from('x\ud800', 'utf8'));
    expect(c.get('모델')).toEqual(Buffer.from('모델', 'utf8'));
    c.put('d', 'latin1');
    expect(c.get('모델')).toBeUndefined();
    expect(c.get('d')).toEqual(Buffer.from('d'));
  });

  it('packs small values into shared slabs that are never the pool, and gives a large value its own buffer', () => {
    const c = new ByteCache(100_000);
    const pool = Buffer.from('p').buffer;
    const small = Array.from({ length: 20_000 }, (_, i) => c.put(`value-${i}`, 'latin1'));
    const slabs = new Set(small.map((b) => b.buffer));
    // ~208 KB of values in 64 KiB slabs.
    expect(slabs.size).toBe(4);
    expect(slabs.has(pool)).toBe(false);
    expect(small.every((b, i) => b.toString('latin1') === `value-${i}`)).toBe(true);
    const large = c.put('L'.repeat(10_000), 'latin1');
    expect(large.buffer.byteLength).toBe(10_000);
    expect(large.toString('latin1')).toBe('L'.repeat(10_000));
    // Values written after it still go on in the current slab, untouched by it.
    expect(c.put('after', 'latin1').buffer).toBe(small[small.length - 1]!.buffer);
    expect(small[small.length - 1]!.toString('latin1')).toBe('value-19999');
  });
});
