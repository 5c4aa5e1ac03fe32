// The settle step (src/ledger/settle.ts) beside the row it builds: the Prometheus counters a row adds (tokens by
// tier and kind, cost, fallbacks, usage source, unpriced requests by why), the budget reconcile with what was
// really used, and the unpriced warnings, once per model (or path) and bounded, so that a stream of unknown
// models cannot flood the log.
import { describe, expect, it } from 'vitest';
import type { Admission, Budgets } from '../../src/budget/budgets.js';
import type { RequestRecord } from '../../src/ledger/build-row.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import type { LedgerRow } from '../../src/ledger/row.js';
import { createSettle } from '../../src/ledger/settle.js';
import type { ResponseFacts } from '../../src/usage/response-usage.js';
import { sumUsage, type Usage } from '../../src/usage/usage.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { sampleRecord } from '../helpers/ledger-rows.js';
import { captureLogger, logEvents, metricValue, runtimeFor } from '../helpers/tiergate.js';

const PRICES = {
  version: 'settle-1',
  models: {
    // USD per million tokens.
    'weak-model': { input: 1, output: 2, cachedInput: 0.5, audioInput: 4, audioOutput: 8, imageInput: 1, imageOutput: 16 },
    'tiered-model': { input: 1, output: 2, serviceTiers: { flex: { input: 0.5, output: 1 } } },
  },
};

function harness() {
  // A row may be built later (an estimate waits for the tokenizer): the harness waits for each.
  const recorded: Array<Promise<LedgerRow>> = [];
  const ledger = { record: (r: LedgerRow | Promise<LedgerRow>) => void recorded.push(Promise.resolve(r)) } as unknown as Ledger;
  const reconciled: Array<[Admission, number, number | undefined]> = [];
  const budgets = { reconcile: (a: Admission, tokens: number, microUsd: number | undefined) => void reconciled.push([a, tokens, microUsd]) } as unknown as Budgets;
  const metrics = createMetrics();
  const { log, logs } = captureLogger();
  const settle = createSettle(ledger, metrics, log, budgets);
  const runtime = runtimeFor({ prices: PRICES });
  const lines = (event: string) => logEvents(logs, event);
  return {
    rows: () => Promise.all(recorded),
    reconciled,
    metrics,
    lines,
    value: (name: string, labels: Record<string, string>) => metricValue({ metrics }, name, labels),
    settle: (over: Partial<RequestRecord>) => settle(sampleRecord(over), runtime),
  };
}

/** Text usage (sumUsage, with its total) plus the parts given. */
const usage = (over: Partial<Usage>): Usage => ({ ...sumUsage(over.inputTokens ?? 0, over.outputTokens ?? 0), ...over });

function facts(over: Partial<ResponseFacts>): ResponseFacts {
  return { usage: undefined, model: undefined, serviceTier: undefined, finishReason: 'stop', errorCode: undefined, outputText: '', outputChars: 0, complete: true, toolCalls: undefined, unread: false, ...over };
}

const KINDS = ['input', 'output', 'cached_input', 'reasoning', 'audio_input', 'audio_output', 'image_input', 'image_output'];

describe('settle: the counters a row adds', () => {
  it('tokens of every kind by tier, the cost, a fallback and the usage source; a kind with none adds no series', async () => {
    const h = harness();
    const all = usage({ inputTokens: 1000, outputTokens: 500, cachedInputTokens: 200, reasoningTokens: 120, audioInputTokens: 30, audioOutputTokens: 40, imageInputTokens: 50, imageOutputTokens: 60 });
    h.settle({ tier: 'strong', trailerUsage: all, fallbackUsed: true });
    await h.rows();
    const tokens = async (tier: string) => Promise.all(KINDS.map(async (kind) => [kind, await h.value('tiergate_tokens_total', { tier, kind })]));
    expect(await tokens('strong')).toEqual([
      ['input', 1000],
      ['output', 500],
      ['cached_input', 200],
      ['reasoning', 120],
      ['audio_input', 30],
      ['audio_output', 40],
      ['image_input', 50],
      ['image_output', 60],
    ]);
    const row = (await h.rows())[0] as LedgerRow;
    expect(row.cost_usd?.total).toBeGreaterThan(0);
    expect(await h.value('tiergate_cost_usd_total', { tier: 'strong' })).toBeCloseTo(row.cost_usd?.total as number, 12);
    expect(await h.value('tiergate_fallback_total', { tier: 'strong' })).toBe(1);
    expect(await h.value('tiergate_usage_total', { source: 'reported' })).toBe(1);

    // A row with input and output only, no fallback, on a request never routed (no tier): counted under "none".
    h.settle({ tier: null, trailerUsage: usage({ inputTokens: 7, outputTokens: 3 }) });
    await h.rows();
    expect(await tokens('none')).toEqual(KINDS.map((k) => [k, k === 'input' ? 7 : k === 'output' ? 3 : 0]));
    const series = (await h.metrics.registry.getSingleMetric('tiergate_tokens_total')?.get())?.values.filter((v) => v.labels.tier === 'none').map((v) => v.labels.kind);
    expect(series).toEqual(['input', 'output']);
    expect(await h.value('tiergate_fallback_total', { tier: 'none' })).toBe(0);
    // A request that cost nothing adds no cost series.
    h.settle({ tier: 'free', trailerUsage: usage({}) });
    await h.rows();
    expect((await h.metrics.registry.getSingleMetric('tiergate_cost_usd_total')?.get())?.values.map((v) => v.labels.tier)).not.toContain('free');
    expect((await h.metrics.registry.getSingleMetric('tiergate_tokens_total')?.get())?.values.map((v) => v.labels.tier)).not.toContain('free');
  });

  it('reconciles the admission with the tokens and the cost really used, in micro-dollars; no admission, no reconcile', async () => {
    const h = harness();
    const admission = { id: 'adm-1' } as unknown as Admission;
    h.settle({ admission, trailerUsage: usage({ inputTokens: 1000, outputTokens: 500 }) });
    // 1,000 input at $1/M and 500 output at $2/M: $0.002, 2,000 micro-dollars.
    await h.rows();
    expect(h.reconciled).toEqual([[admission, 1500, 2000]]);
    h.settle({ trailerUsage: usage({ inputTokens: 1000, outputTokens: 500 }) });
    expect(await h.rows()).toHaveLength(2);
    expect(h.reconciled).toHaveLength(1);
    // An unpriced model: no cost to settle with, so the reservation's stands (Budgets.reconcile), never $0.
    h.settle({ admission, routedModel: 'unknown-model', trailerUsage: usage({ inputTokens: 10, outputTokens: 5 }) });
    await h.rows();
    expect(h.reconciled[1]).toEqual([admission, 15, undefined]);
  });
});

describe('settle: unpriced requests', () => {
  it('counted by why (a price missing, or usage nobody measured), each warned once per model, tier and audio', async () => {
    const h = harness();
    const text = usage({ inputTokens: 10, outputTokens: 5 });
    for (let i = 0; i < 3; i++) h.settle({ routedModel: 'unknown-model', trailerUsage: text });
    h.settle({ routedModel: 'unknown-model', trailerUsage: usage({ inputTokens: 10, outputTokens: 5, audioOutputTokens: 5 }) });
    for (const tier of ['priority', 'scale', 'priority']) h.settle({ routedModel: 'tiered-model', facts: facts({ usage: text, serviceTier: tier }) });
    h.settle({ routedModel: 'tiered-model', facts: facts({ usage: text, serviceTier: 'flex' }) }); // listed: priced
    await h.rows();
    expect(h.lines('ledger.unpriced_model').map(({ model, service_tier, audio, price_table_version }) => ({ model, service_tier, audio, price_table_version }))).toEqual([
      { model: 'unknown-model', service_tier: undefined, audio: undefined, price_table_version: 'settle-1' },
      { model: 'unknown-model', service_tier: undefined, audio: true, price_table_version: 'settle-1' },
      { model: 'tiered-model', service_tier: 'priority', audio: undefined, price_table_version: 'settle-1' },
      { model: 'tiered-model', service_tier: 'scale', audio: undefined, price_table_version: 'settle-1' },
    ]);
    expect(await h.value('tiergate_unpriced_requests_total', { reason: 'price' })).toBe(7);
    expect(await h.value('tiergate_unpriced_requests_total', { reason: 'unmeasured' })).toBe(0);
    expect(h.lines('ledger.unmeasured_usage')).toEqual([]);
  });

  it('usage nobody measured: warned once per path, model and which side was not seen, and counted apart', async () => {
    const h = harness();
    const embeddings = '/v1/embeddings';
    h.settle({ requestUnread: true, answerUnread: true });
    h.settle({ requestUnread: true, answerUnread: true });
    h.settle({ requestUnread: true });
    h.settle({ answerUnread: true });
    h.settle({ path: embeddings, requestUnread: true });
    await h.rows();
    expect(h.lines('ledger.unmeasured_usage').map(({ path, model, unmeasured }) => [path, model, unmeasured])).toEqual([
      ['/v1/chat/completions', 'weak-model', 'request_and_answer'],
      ['/v1/chat/completions', 'weak-model', 'request'],
      ['/v1/chat/completions', 'weak-model', 'answer'],
      [embeddings, 'weak-model', 'request'],
    ]);
    expect(await h.value('tiergate_unpriced_requests_total', { reason: 'unmeasured' })).toBe(5);
    expect(await h.value('tiergate_unpriced_requests_total', { reason: 'price' })).toBe(0);
    expect(h.lines('ledger.unpriced_model')).toEqual([]);
  });

  it('warns for the first 100 of them, then only counts: a stream of made-up model names cannot flood the log', async () => {
    const h = harness();
    const text = usage({ inputTokens: 10, outputTokens: 5 });
    for (let i = 0; i < 150; i++) h.settle({ routedModel: `made-up-${i}`, trailerUsage: text });
    h.settle({ routedModel: 'made-up-0', trailerUsage: text });
    await h.rows();
    const warned = h.lines('ledger.unpriced_model').map((l) => l.model);
    expect(warned).toEqual(Array.from({ length: 100 }, (_, i) => `made-up-${i}`));
    expect(await h.value('tiergate_unpriced_requests_total', { reason: 'price' })).toBe(151);
    expect(await h.rows()).toHaveLength(151);
  });
});
