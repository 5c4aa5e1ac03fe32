// The rollup's sums, in process: the CLI suite (test/integration/ledger-rollup.test.ts) checks a hand-worked day
// through `tiergate ledger rollup` in a child process; this one holds each figure's rule on its own rows, so a
// change to one rule fails here by name (and Stryker, which cannot see into a child process, can try them).
import { describe, expect, it } from 'vitest';
import { daysOf, rollup, type Period } from '../../src/ledger/rollup.js';
import type { LedgerRow } from '../../src/ledger/row.js';
import { sampleRow } from '../helpers/ledger-rows.js';

const cost = (total: number, extra: Record<string, number> = {}) => ({ input: 0, output: total, total, price_table_version: 't', ...extra });
const lat = (total: number) => ({ gateway: 0.1, cache_lookup: null, provider: null, total, ttft: null });

async function* each(rows: readonly LedgerRow[]): AsyncGenerator<LedgerRow> {
  yield* rows;
}
/** The rollup of `rows`, read whole (no period) or day by day as the CLI reads a directory. */
const sum = (rows: readonly LedgerRow[], opts: Parameters<typeof rollup>[1] = {}) => rollup(() => each(rows), opts);

describe('rollup: counting each request once', () => {
  it('a row sent twice counts once and is named a duplicate; a reused request id is another request', async () => {
    const a = sampleRow({ request_id: 'same' });
    const b = sampleRow({ request_id: 'same' });
    const r = await sum([a, b, a, a]);
    expect([r.requests, r.duplicates]).toEqual([2, 2]);
  });

  it('a period reads each of its days on its own and leaves out rows of other days', async () => {
    const asked: Array<string | undefined> = [];
    const rows = [
      sampleRow({ timestamp: '2026-11-21T23:59:59.999Z', cost_usd: cost(1) }),
      sampleRow({ timestamp: '2026-11-22T00:00:00.000Z', cost_usd: cost(2) }),
      sampleRow({ timestamp: '2026-11-23T12:00:00.000Z', cost_usd: cost(4) }),
      sampleRow({ timestamp: '2026-11-24T00:00:00.000Z', cost_usd: cost(8) }),
    ];
    const r = await rollup(
      (day) => {
        asked.push(day);
        return each(rows);
      },
      { period: { from: '2026-11-22', to: '2026-11-23' } },
    );
    expect(asked).toEqual(['2026-11-22', '2026-11-23']);
    // Each day sees only its own rows of the four the reader hands it: not counted as duplicates either.
    expect([r.requests, r.duplicates, r.cost_usd]).toEqual([2, 0, 6]);
    expect([r.day, r.from, r.to]).toEqual([null, '2026-11-22', '2026-11-23']);
  });

  it('one day names itself; no period names nothing, and reads every row once', async () => {
    const asked: Array<string | undefined> = [];
    const one = await rollup(() => each([sampleRow()]), { period: { from: '2026-11-22', to: '2026-11-22' } });
    expect([one.day, one.from, one.to]).toEqual(['2026-11-22', '2026-11-22', '2026-11-22']);
    const all = await rollup(
      (day) => {
        asked.push(day);
        return each([sampleRow({ timestamp: '2020-01-01T00:00:00.000Z' }), sampleRow()]);
      },
      {},
    );
    expect(asked).toEqual([undefined]);
    expect([all.day, all.from, all.to, all.requests]).toEqual([null, null, null, 2]);
  });

  it('passes on what the reader skipped and where a stream was trimmed', async () => {
    const r = await sum([sampleRow()], { invalidSkipped: () => 3, trimmedBefore: '2026-11-22T01:00:00.000Z' });
    expect([r.invalid_skipped, r.trimmed_before]).toEqual([3, '2026-11-22T01:00:00.000Z']);
    const plain = await sum([sampleRow()]);
    expect([plain.invalid_skipped, plain.trimmed_before]).toEqual([0, null]);
  });
});

describe('rollup: the gateway-wide figures', () => {
  it('no rows: zero counts, and every ratio null rather than a division by zero', async () => {
    const r = await sum([]);
    expect(r).toMatchObject({ requests: 0, duplicates: 0, cost_usd: 0, weak_tier_share: null, cost_per_1000_requests: null, error_rate: null, p95_latency_ms: null, shadow: null });
    expect([r.groups, r.versions, r.service_tiers, r.tool_calls]).toEqual([[], [], [], []]);
  });

  it('errors are upstream errors and tiergate\'s own 5xx; a 4xx refusal is rejected, not an error', async () => {
    const r = await sum([
      sampleRow({ status: 'upstream_error', http_status: 502 }),
      sampleRow({ status: 'upstream_error', http_status: 200 }), // an error event inside a 200 stream
      sampleRow({ status: 'rejected', http_status: 500 }),
      sampleRow({ status: 'rejected', http_status: 499 }),
      sampleRow({ status: 'rejected', http_status: 429 }),
      sampleRow({ status: 'rejected', http_status: null }),
      sampleRow({ status: 'cancelled', http_status: null }),
      sampleRow({ status: 'success' }),
      sampleRow({ status: 'cache_hit' }),
    ]);
    expect([r.error_rate, r.rejected, r.cancelled]).toEqual([3 / 9, 4, 1]);
  });

  it('the weak share is over tier-routed rows only, by the configured weak tier\'s name', async () => {
    const rows = [
      sampleRow({ tier: 'weak' }),
      sampleRow({ tier: 'small' }),
      sampleRow({ tier: 'strong' }),
      sampleRow({ tier: null, classifier_version: null, classifier_rule: null }), // a refused request: never routed
    ];
    expect((await sum(rows)).weak_tier_share).toBe(1 / 3);
    expect((await sum(rows, { weakTier: 'small' })).weak_tier_share).toBe(1 / 3);
    expect((await sum(rows, { weakTier: 'strong' })).weak_tier_share).toBe(1 / 3);
    expect((await sum([sampleRow({ tier: null })])).weak_tier_share).toBeNull();
    expect((await sum([sampleRow({ tier: 'weak' }), sampleRow({ tier: 'weak' })])).weak_tier_share).toBe(1);
  });

  it('cost and cost per 1,000 requests: unpriced rows add nothing but count as requests', async () => {
    const r = await sum([sampleRow({ cost_usd: cost(0.003) }), sampleRow({ cost_usd: cost(0.001) }), sampleRow({ cost_usd: null }), sampleRow({ cost_usd: cost(0) })]);
    expect([r.cost_usd, r.cost_per_1000_requests]).toEqual([0.004, 1]);
  });

  it('p95 is the nearest rank: the smallest latency with at least 95% at or below it, over every row', async () => {
    const latencies = (ms: number[]) => sum(ms.map((t) => sampleRow({ latency_ms: lat(t) })));
    expect((await latencies([7])).p95_latency_ms).toBe(7);
    // 20 values: rank ceil(0.95 × 20) = 19.
    expect((await latencies(Array.from({ length: 20 }, (_, i) => 20 - i))).p95_latency_ms).toBe(19);
    // 21 values: rank 20 (numerically sorted: 100 is not below 20).
    expect((await latencies([...Array.from({ length: 20 }, (_, i) => i + 1), 100])).p95_latency_ms).toBe(20);
    // More rows than the first buffer holds (1,024): none is lost when it grows.
    const many = Array.from({ length: 3000 }, (_, i) => i + 1);
    expect((await latencies(many)).p95_latency_ms).toBe(2850);
  });
});

describe('rollup: groups (tenant × feature)', () => {
  it('sums tokens, cost, savings, hits and unpriced rows per group, and sorts by cost, then tenant', async () => {
    const usage = (i: number, o: number) => ({ input_tokens: i, output_tokens: o, total_tokens: i + o + 1, cached_input_tokens: 0, reasoning_tokens: 0 });
    const r = await sum([
      sampleRow({ tenant_id: 'b', feature_id: 'x', usage: usage(10, 1), cost_usd: cost(0.5) }),
      sampleRow({ tenant_id: 'b', feature_id: 'x', usage: usage(20, 2), cost_usd: null }),
      sampleRow({ tenant_id: 'b', feature_id: 'x', usage: usage(0, 0), cost_usd: cost(0), cache_hit: true, status: 'cache_hit', saved_usd: 0.25 }),
      sampleRow({ tenant_id: 'b', feature_id: null, usage: usage(1, 1), cost_usd: cost(0.5) }),
      sampleRow({ tenant_id: 'b', feature_id: 'y', usage: usage(2, 2), cost_usd: cost(0.1) }),
      sampleRow({ tenant_id: 'a', feature_id: null, usage: usage(1, 1), cost_usd: cost(0.5) }),
      sampleRow({ tenant_id: 'c', feature_id: null, usage: usage(1, 1), cost_usd: cost(2) }),
    ]);
    expect(r.groups).toEqual([
      { tenant_id: 'c', feature_id: null, requests: 1, input_tokens: 1, output_tokens: 1, total_tokens: 3, cost_usd: 2, saved_usd: 0, cache_hits: 0, unpriced: 0 },
      { tenant_id: 'a', feature_id: null, requests: 1, input_tokens: 1, output_tokens: 1, total_tokens: 3, cost_usd: 0.5, saved_usd: 0, cache_hits: 0, unpriced: 0 },
      { tenant_id: 'b', feature_id: 'x', requests: 3, input_tokens: 30, output_tokens: 3, total_tokens: 36, cost_usd: 0.5, saved_usd: 0.25, cache_hits: 1, unpriced: 1 },
      { tenant_id: 'b', feature_id: null, requests: 1, input_tokens: 1, output_tokens: 1, total_tokens: 3, cost_usd: 0.5, saved_usd: 0, cache_hits: 0, unpriced: 0 },
      { tenant_id: 'b', feature_id: 'y', requests: 1, input_tokens: 2, output_tokens: 2, total_tokens: 5, cost_usd: 0.1, saved_usd: 0, cache_hits: 0, unpriced: 0 },
    ]);
  });

  it('a feature named "" (an empty header, in rows before 2026-12-04) is no feature, whichever row comes first', async () => {
    for (const first of ['', null]) {
      const r = await sum([sampleRow({ tenant_id: 't', feature_id: first }), sampleRow({ tenant_id: 't', feature_id: first === '' ? null : '' })]);
      expect(r.groups.map((g) => [g.feature_id, g.requests])).toEqual([[null, 2]]);
    }
  });

  it('group sums are rounded to whole micro-dollars once, at the end, not per row', async () => {
    const rows = Array.from({ length: 10 }, () => sampleRow({ cost_usd: cost(0.00000014), saved_usd: 0.00000014 }));
    const r = await sum(rows);
    expect([r.groups[0]?.cost_usd, r.groups[0]?.saved_usd, r.cost_usd]).toEqual([0.0000014, 0.0000014, 0.0000014]);
  });
});

describe('rollup: by tier and model', () => {
  it('per tier and answering model: requests, tokens, cost, savings, unpriced and cut answers, most costly first', async () => {
    const usage = (input: number, output: number) => ({ input_tokens: input, output_tokens: output, total_tokens: input + output, cached_input_tokens: 0, reasoning_tokens: 0 });
    const r = await sum([
      sampleRow({ tier: 'weak', model_resolved: 'weak-model', usage: usage(10, 5), cost_usd: cost(1), finish_reason: 'stop' }),
      sampleRow({ tier: 'weak', model_resolved: 'weak-model', usage: usage(20, 7), cost_usd: cost(2), finish_reason: 'length' }),
      // A Responses API turn cut by max_output_tokens; a row from before finish_reason existed is not cut.
      sampleRow({ tier: 'weak', model_resolved: 'weak-model', cost_usd: null, finish_reason: 'max_output_tokens' }),
      sampleRow({ tier: 'weak', model_resolved: 'weak-model', cost_usd: cost(0), cache_hit: true, saved_usd: 0.5, finish_reason: undefined }),
      // The strong tier answered by the weak model (Envoy's fallback): a row of its own.
      sampleRow({ tier: 'strong', model_resolved: 'weak-model', cost_usd: cost(4), finish_reason: 'content_filter' }),
      sampleRow({ tier: 'strong', model_resolved: 'strong-model', cost_usd: cost(4) }),
      // No tier (an unclassified path), and no model at all (refused before routing): the latter is left out.
      sampleRow({ tier: null, model_resolved: 'embedder', cost_usd: cost(0.5) }),
      sampleRow({ tier: null, model_resolved: null, cost_usd: cost(0), status: 'rejected', http_status: 401 }),
    ]);
    const base = { saved_usd: 0, unpriced: 0, cut_short: 0, input_tokens: 10, output_tokens: 5 };
    expect(r.models).toEqual([
      { ...base, tier: 'strong', model: 'strong-model', requests: 1, cost_usd: 4 },
      { ...base, tier: 'strong', model: 'weak-model', requests: 1, cost_usd: 4 },
      { tier: 'weak', model: 'weak-model', requests: 4, input_tokens: 10 + 20 + 10 + 10, output_tokens: 5 + 7 + 5 + 5, cost_usd: 3, saved_usd: 0.5, unpriced: 1, cut_short: 2 },
      { ...base, tier: null, model: 'embedder', requests: 1, cost_usd: 0.5 },
    ]);
  });
});

describe('rollup: service tiers, hosted tools, shadow and versions', () => {
  it('service tiers: requests, cost and unpriced rows per tier named, sorted by cost then name', async () => {
    const r = await sum([
      // The cheapest first, and two as dear as each other in the wrong order by name.
      sampleRow({ service_tier: 'flex', cost_usd: cost(1) }),
      sampleRow({ service_tier: 'default', cost_usd: cost(1) }),
      sampleRow({ service_tier: 'priority', cost_usd: cost(2) }),
      sampleRow({ service_tier: 'priority', cost_usd: null }),
      sampleRow({ service_tier: null, cost_usd: cost(9) }),
    ]);
    expect(r.service_tiers).toEqual([
      { service_tier: 'priority', requests: 2, cost_usd: 2, unpriced: 1 },
      { service_tier: 'default', requests: 1, cost_usd: 1, unpriced: 0 },
      { service_tier: 'flex', requests: 1, cost_usd: 1, unpriced: 0 },
    ]);
  });

  it('hosted tool calls: whole positive counts only, calls and requests per type, and their priced cost', async () => {
    const r = await sum([
      sampleRow({ tool_calls: { web_search_call: 2, file_search_call: 1 }, cost_usd: cost(0.05, { tool_calls: 0.02 }) }),
      sampleRow({ tool_calls: { web_search_call: 1 }, cost_usd: cost(0.01, { tool_calls: 0.01 }) }),
      // A hand-edited or foreign row: counts that are not whole positive numbers are left out; a negative or
      // absent tool cost adds nothing.
      sampleRow({ tool_calls: { web_search_call: 1.5, code_call: -1, x_call: 0, y_call: '3' as unknown as number, file_search_call: 1 }, cost_usd: cost(0.01, { tool_calls: -4 }) }),
      sampleRow({ tool_calls: ['web_search_call'] as unknown as Record<string, number> }),
      sampleRow({ tool_calls: { web_search_call: 0 }, cost_usd: cost(0.01, { tool_calls: 7 }) }),
      sampleRow({ tool_calls: { file_search_call: 1 }, cost_usd: null }),
    ]);
    expect(r.tool_calls).toEqual([
      { type: 'file_search_call', calls: 3, requests: 3 },
      { type: 'web_search_call', calls: 3, requests: 2 },
    ]);
    // A row whose only count is left out has no tool calls, and its tool cost is not counted either.
    expect(r.tool_calls_cost_usd).toBe(0.03);
  });

  it('tool call types are sorted by calls, then by name', async () => {
    const r = await sum([sampleRow({ tool_calls: { b_call: 1, a_call: 1, c_call: 2 } })]);
    expect(r.tool_calls.map((t) => t.type)).toEqual(['c_call', 'a_call', 'b_call']);
  });

  it('shadow: agreement, each direction of disagreement, and the weak share had the shadow decided', async () => {
    const r = await sum([
      sampleRow({ tier: 'weak', shadow_tier: 'weak' }),
      sampleRow({ tier: 'weak', shadow_tier: 'strong' }),
      sampleRow({ tier: 'strong', shadow_tier: 'weak' }),
      sampleRow({ tier: 'strong', shadow_tier: 'weak' }),
      sampleRow({ tier: 'strong', shadow_tier: null }),
      sampleRow({ tier: 'weak', shadow_tier: null }),
      sampleRow({ tier: null, shadow_tier: 'weak' }), // not routed: not in the shadow figures
    ]);
    expect(r.shadow).toEqual({ rows: 4, agreement_rate: 0.25, disagreements: { 'weak->strong': 1, 'strong->weak': 2 }, weak_tier_share: 4 / 6 });
    expect(r.weak_tier_share).toBe(3 / 6);
  });

  it('versions: classifier-decided rows only, each with its weak share, error rate and cost per 1,000, most used first', async () => {
    const r = await sum([
      sampleRow({ classifier_version: 'v7', tier: 'weak', cost_usd: cost(0.001) }),
      sampleRow({ classifier_version: 'v7', tier: 'strong', status: 'upstream_error', http_status: 500, cost_usd: cost(0.003) }),
      sampleRow({ classifier_version: 'v7', tier: 'weak', cost_usd: null }),
      sampleRow({ classifier_version: 'v8', tier: 'weak', cost_usd: cost(0.002) }),
      sampleRow({ classifier_version: 'a1', tier: 'strong', cost_usd: cost(0.002) }),
      // An alias or path route: no rule decided it, so it is no version's.
      sampleRow({ classifier_version: 'v7', classifier_rule: null, tier: 'strong', cost_usd: cost(5) }),
      sampleRow({ classifier_version: null, classifier_rule: 'default', tier: 'strong' }),
    ]);
    expect(r.versions).toEqual([
      { classifier_version: 'v7', requests: 3, weak_tier_share: 2 / 3, error_rate: 1 / 3, cost_per_1000_requests: 1.3333333333 },
      { classifier_version: 'a1', requests: 1, weak_tier_share: 0, error_rate: 0, cost_per_1000_requests: 2 },
      { classifier_version: 'v8', requests: 1, weak_tier_share: 1, error_rate: 0, cost_per_1000_requests: 2 },
    ]);
  });
});

describe('daysOf', () => {
  it.each<[Period, string[]]>([
    [{ from: '2026-11-22', to: '2026-11-22' }, ['2026-11-22']],
    [{ from: '2028-02-28', to: '2028-03-01' }, ['2028-02-28', '2028-02-29', '2028-03-01']],
    [{ from: '2026-12-31', to: '2027-01-01' }, ['2026-12-31', '2027-01-01']],
    [{ from: '2026-11-23', to: '2026-11-22' }, []],
  ])('%j', (p, days) => expect(daysOf(p)).toEqual(days));
});
