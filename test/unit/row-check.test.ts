// The check that a ledger line is a row the rollup can read (src/ledger/row-check.ts): its hand-written fast
// path may only ever be stricter than the schema, and real rows must take the fast path.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkedRow, InvalidRowError, plainlyReadable, readableBySchema } from '../../src/ledger/row-check.js';
import { fuzzRuns, fuzzTimeout } from '../helpers/generated.js';
import { sampleRow } from '../helpers/ledger-rows.js';

/** Values a field can be made to hold: right, wrong, and the edge cases in between. */
const anyValue = fc.oneof(
  fc.constantFrom(undefined, null, true, false, 0, -1, 1.5, 200, 2 ** 53, NaN, Infinity, -0, '', 'x', 'success', 'cancelled', '2026-11-22T01:00:00Z', '2026-11-22', 'weak'),
  fc.constantFrom({}, [], [1], { total: 1 }, { total: -1 }, { total: '1' }, { input_tokens: 1, output_tokens: 2, total_tokens: 3 }, { input_tokens: 1 }),
  fc.string(),
  fc.double(),
  fc.integer(),
);

const FIELDS = ['event_id', 'timestamp', 'request_id', 'tenant_id', 'feature_id', 'tier', 'service_tier', 'shadow_tier', 'classifier_version', 'classifier_rule', 'status', 'http_status', 'usage', 'cost_usd', 'saved_usd', 'cache_hit', 'latency_ms'] as const;
const NESTED = [
  ['usage', 'input_tokens'],
  ['usage', 'output_tokens'],
  ['usage', 'total_tokens'],
  ['cost_usd', 'total'],
  ['latency_ms', 'total'],
] as const;

/** A real row with a few of its fields (or fields of its fields) replaced or deleted. */
const mutatedRow = fc
  .tuple(
    fc.array(fc.tuple(fc.constantFrom(...FIELDS), anyValue), { maxLength: 3 }),
    fc.array(fc.tuple(fc.constantFrom(...NESTED), anyValue), { maxLength: 2 }),
    fc.boolean(),
  )
  .map(([top, nested, priced]) => {
    const row = JSON.parse(JSON.stringify(sampleRow(priced ? { cost_usd: { input: 0.1, output: 0.2, total: 0.3, price_table_version: 't' } } : {}))) as Record<string, unknown>;
    for (const [[outer, inner], v] of nested) {
      const o = row[outer];
      if (o && typeof o === 'object') (o as Record<string, unknown>)[inner] = v;
    }
    for (const [k, v] of top) {
      if (v === undefined) delete row[k];
      else row[k] = v;
    }
    return row;
  });

describe('ledger row check', () => {
  it('the fast path never takes what the schema refuses', () => {
    let fast = 0;
    let refused = 0;
    fc.assert(
      fc.property(fc.oneof(mutatedRow, anyValue), (v) => {
        const plain = plainlyReadable(v);
        const schema = readableBySchema(v);
        if (plain) fast++;
        if (!schema) refused++;
        expect(!plain || schema).toBe(true);
      }),
      { numRuns: fuzzRuns(3000) },
    );
    // Both sides were exercised: rows it passed, and rows the schema refused.
    expect(fast).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(100);
  }, fuzzTimeout(3000, 30_000));

  // The generated rows change up to three fields at once, so a field that is the only thing wrong is rare in them:
  // an empty event_id alone came up about 3 times in 3,000 runs, and a fast path that let it through survived the
  // property. Every field and every nested amount, each set alone to each edge value or deleted, is checked here.
  it('each field alone set to each edge value, or deleted: the fast path is never looser than the schema', () => {
    const edges: unknown[] = [undefined, null, true, false, 0, -1, -0, 1.5, 200, 2 ** 53, NaN, Infinity, '', 'x', '200', 'success', 'done', '2026-11-22T01:00:00Z', '2026-11-22', {}, [], { total: 1 }, { total: -1 }];
    let checked = 0;
    for (const priced of [false, true]) {
      const base = () => JSON.parse(JSON.stringify(sampleRow(priced ? { cost_usd: { input: 0.1, output: 0.2, total: 0.3, price_table_version: 't' } } : {}))) as Record<string, unknown>;
      for (const v of edges) {
        for (const field of FIELDS) {
          const row = base();
          if (v === undefined) delete row[field];
          else row[field] = v;
          expect(!plainlyReadable(row) || readableBySchema(row), `${field} = ${String(v)}`).toBe(true);
          checked++;
        }
        for (const [outer, inner] of NESTED) {
          const row = base();
          const o = row[outer] as Record<string, unknown> | null;
          if (o === null) continue;
          if (v === undefined) delete o[inner];
          else o[inner] = v;
          expect(!plainlyReadable(row) || readableBySchema(row), `${outer}.${inner} = ${String(v)}`).toBe(true);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(900);
  });

  it('real rows take the fast path; what it passes over the schema still decides', () => {
    for (const row of [sampleRow(), sampleRow({ cost_usd: null, saved_usd: 0.5, http_status: null, feature_id: 'f', shadow_tier: 'strong' })]) {
      expect(plainlyReadable(JSON.parse(JSON.stringify(row)))).toBe(true);
    }
    // An amount of -0 passes zod's nonnegative as it does the fast path; a row with an extra field passes both.
    expect(checkedRow({ ...sampleRow(), extra: 1 }, 'x')).toMatchObject({ extra: 1 });
    expect(() => checkedRow({ ...sampleRow(), status: 'done' }, 'f:3')).toThrow(InvalidRowError);
    expect(() => checkedRow({ ...sampleRow(), status: 'done' }, 'f:3')).toThrow(/^f:3: not a ledger row \(status: /);
    expect(() => checkedRow([1, 2], 'f:4')).toThrow(/^f:4: not a ledger row \(Invalid input: expected object, received array\)$/);
    // A nested field is named by its whole path.
    const usage = { ...sampleRow().usage, input_tokens: -1 };
    expect(() => checkedRow({ ...sampleRow(), usage }, 'f:5')).toThrow(/^f:5: not a ledger row \(usage\.input_tokens: /);
  });
});
