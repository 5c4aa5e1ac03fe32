import { describe, expect, it } from 'vitest';
import { WireHeaders, encodeHeaderMutation, headerText, valueBytes } from '../../src/extproc/header-codec.js';

describe('WireHeaders', () => {
  it.each([
    ['raw_value bytes (Envoy ≥ 1.27)', [{ key: 'x-a', raw_value: Buffer.from('v1') }], 'v1'],
    ['value only (Envoy < 1.27)', [{ key: 'x-a', value: 'old' }], 'old'],
    // The loader decodes an absent bytes field as empty bytes: an old Envoy's value still counts.
    ['value only, raw_value decoded as empty bytes (Envoy < 1.27)', [{ key: 'x-a', value: 'old', raw_value: Buffer.alloc(0) }], 'old'],
    ['raw_value wins over an empty value', [{ key: 'x-a', value: '', raw_value: Buffer.from('raw') }], 'raw'],
    ['upper-case key lower-cased', [{ key: 'X-A', raw_value: Buffer.from('v') }], 'v'],
    ['repeated header joined', [{ key: 'x-a', raw_value: Buffer.from('1') }, { key: 'x-a', raw_value: Buffer.from('2') }], '1, 2'],
    ['non-UTF-8 byte kept one char per byte', [{ key: 'x-a', raw_value: Buffer.from([0x41, 0xff]) }], 'A\u00ff'],
  ])('%s', (_n, headers, want) => {
    const h = new WireHeaders({ headers });
    expect(h.get('x-a')).toBe(want);
    expect(h.has('x-a')).toBe(true);
  });

  it('handles an absent map and absent headers', () => {
    expect(new WireHeaders(undefined).get('x-a')).toBeUndefined();
    expect(new WireHeaders({ headers: [{ key: 'x-b', raw_value: Buffer.from('v') }] }).has('x-a')).toBe(false);
  });
});

describe('headerText', () => {
  it.each([
    ['ASCII, as it is', 'team-a', 'team-a'],
    ['UTF-8 bytes read as latin1 (curl, Go), decoded', Buffer.from('검색 팀', 'utf8').toString('latin1'), '검색 팀'],
    ['a real latin1 value, which is not UTF-8, kept as read', Buffer.from('café', 'latin1').toString('latin1'), 'café'],
    ['UTF-8 cut short, kept as read', Buffer.from('검', 'utf8').subarray(0, 2).toString('latin1'), '\u00ea\u00b2'],
  ])('%s', (_n, value, want) => {
    expect(headerText(value)).toBe(want);
  });

  it('absent stays absent', () => {
    expect(headerText(undefined)).toBeUndefined();
  });
});

describe('encodeHeaderMutation', () => {
  it('writes raw_value only, never value, and no append (absent = overwrite)', () => {
    const m = encodeHeaderMutation({ set: [['X-LLM-Tier', 'strong']], remove: ['Authorization'] });
    expect(m).toEqual({
      set_headers: [{ header: { key: 'x-llm-tier', raw_value: Buffer.from('strong') } }],
      remove_headers: ['authorization'],
    });
    expect(m?.set_headers?.[0]?.header).not.toHaveProperty('value');
  });

  it('returns undefined for an empty mutation', () => {
    expect(encodeHeaderMutation({ set: [], remove: [] })).toBeUndefined();
    expect(encodeHeaderMutation(undefined)).toBeUndefined();
  });

  it.each([
    ['CR LF in a value', [['x-a', 'v\r\nx-injected: 1']]],
    ['NUL in a value', [['x-a', 'v\0']]],
    ['space in a name', [['x a', 'v']]],
  ] as const)('refuses %s (Envoy would 500 the request)', (_n, set) => {
    expect(() => encodeHeaderMutation({ set })).toThrow();
  });

  it('keeps refusing bad names and values, and encoding good ones right, however many it has seen', () => {
    for (let i = 0; i < 10_000; i++) {
      const m = encodeHeaderMutation({ set: [[`X-N${i % 5000}`, `v${i}`]] });
      expect(m?.set_headers?.[0]?.header).toEqual({ key: `x-n${i % 5000}`, raw_value: Buffer.from(`v${i}`) });
      if (i % 1000 === 0) {
        expect(() => encodeHeaderMutation({ set: [['x-a', `v${i}\r\n`]] })).toThrow();
        expect(() => encodeHeaderMutation({ set: [[`x ${i}`, 'v']] })).toThrow();
      }
    }
  });

  it('encodes non-latin1 text as UTF-8 and latin1 byte-for-byte', () => {
    expect(valueBytes('x-model', '모델')).toEqual(Buffer.from('모델', 'utf8'));
    expect(valueBytes('x-model', 'A\u00ff')).toEqual(Buffer.from([0x41, 0xff]));
  });

  it('keeps the bytes of cached values in its own memory, not in slabs of the shared pool', () => {
    // Other traffic between two misses (request bodies, gRPC frames) used to leave each cached value holding
    // a pool slab of its own: 4,000 six-byte values kept 2,000 slabs of 8 KiB alive.
    const kept: Buffer[] = [];
    for (let i = 0; i < 4000; i++) {
      kept.push(valueBytes('content-length', String(200_000 + i)));
      Buffer.from('x'.repeat(3000));
    }
    expect(kept.map((b) => b.toString('latin1'))).toEqual(kept.map((_, i) => String(200_000 + i)));
    // 24 KB of values: one or two of the cache's 64 KiB slabs (a third if the cache started over meanwhile).
    expect(new Set(kept.map((b) => b.buffer)).size).toBeLessThanOrEqual(3);
  });
});
