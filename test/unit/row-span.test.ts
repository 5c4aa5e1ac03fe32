// The stream span is ended by the settle step with its ledger row; it must end exactly once, and also when the
// row cannot be built (else a request whose row failed would vanish from the traces too).
import type { Span } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import type { RequestRecord } from '../../src/ledger/build-row.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { createSettle } from '../../src/ledger/settle.js';
import { genAiOperation, rowSpan, type RowSpan } from '../../src/telemetry/row-span.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import type { Budgets } from '../../src/budget/budgets.js';
import { runtimeFor, captureLogger } from '../helpers/tiergate.js';
import { sampleRecord, sampleRow } from '../helpers/ledger-rows.js';
import type { ResponseFacts } from '../../src/usage/response-usage.js';

function fakeSpan() {
  const calls = { attributes: [] as unknown[], ends: [] as unknown[] };
  const span = { setAttributes: (a: unknown) => calls.attributes.push(a), end: (t: unknown) => calls.ends.push(t) } as unknown as Span;
  return { span, calls };
}

/** A routed request that reported no usage: its row needs an estimate, which `prompt` feeds. */
const record = (span: RowSpan, prompt: RequestRecord['prompt']): RequestRecord => sampleRecord({ span, prompt });

function settleInto() {
  const recorded: Array<Promise<unknown> | unknown> = [];
  const ledger = { record: (r: unknown) => recorded.push(r instanceof Promise ? r.catch(() => 'failed') : r) } as unknown as Ledger;
  const budgets = { reconcile: () => undefined } as unknown as Budgets;
  return { settle: createSettle(ledger, createMetrics(), captureLogger().log, budgets), recorded };
}

describe('rowSpan', () => {
  it('ends once, at the stream end it was given, with the row or without one', () => {
    const { span, calls } = fakeSpan();
    const rs = rowSpan(span, 123.5, 'chat', 'weak-model');
    rs.end(undefined, undefined);
    rs.end(undefined, undefined);
    expect(calls.ends).toEqual([123.5]);
    expect(calls.attributes).toEqual([]);
  });

  it.each([
    ['chat', '/v1/chat/completions', 'chat'],
    ['responses', '/v1/responses', 'chat'],
    ['completions', '/v1/completions', 'text_completion'],
    [undefined, '/v1/embeddings', 'embeddings'],
    [undefined, '/v1/audio/speech', undefined],
  ] as const)('operation of %s %s → %s', (endpoint, path, op) => {
    expect(genAiOperation(endpoint, path)).toBe(op);
  });
});

describe("the row's attributes", () => {
  /** The one setAttributes call a row makes, exactly as given (an attribute set to null or 0 is not one left out). */
  const attributesOf = (...args: Parameters<RowSpan['end']>) => (operation: string | undefined, requestModel: string | null) => {
    const { span, calls } = fakeSpan();
    rowSpan(span, 1, operation, requestModel).end(...args);
    expect(calls.attributes).toHaveLength(1);
    return calls.attributes[0];
  };
  const facts = (over: Partial<ResponseFacts>) => ({ model: undefined, finishReason: undefined, ...over }) as ResponseFacts;

  it('a reported answer: every attribute, cached and reasoning tokens among them', () => {
    const row = sampleRow({
      tenant_id: 'acme',
      usage: { input_tokens: 1000, output_tokens: 500, total_tokens: 1500, cached_input_tokens: 200, reasoning_tokens: 100 },
      status: 'upstream_error',
      error_code: 'rate_limit_exceeded',
    });
    expect(attributesOf(row, facts({ model: 'weak-model-2026', finishReason: 'length' }))('chat', 'weak-model')).toStrictEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai-compatible',
      'gen_ai.request.model': 'weak-model',
      'tiergate.model_alias': 'auto',
      'gen_ai.response.model': 'weak-model-2026',
      'gen_ai.response.finish_reasons': ['length'],
      'gen_ai.usage.input_tokens': 1000,
      'gen_ai.usage.output_tokens': 500,
      'gen_ai.usage.cache_read.input_tokens': 200,
      'gen_ai.usage.reasoning.output_tokens': 100,
      'tiergate.usage_source': 'reported',
      'tiergate.cost_usd': 0.000003,
      'error.type': 'rate_limit_exceeded',
      'tiergate.tenant': 'acme',
    });
  });

  it('what a row does not know is left out, not set empty: no zero token kinds, no nulls', () => {
    const row = sampleRow({ provider: null, model_alias: null, tenant_id: '', usage_source: 'none', cost_usd: null });
    expect(attributesOf(row, undefined)(undefined, null)).toStrictEqual({ 'tiergate.usage_source': 'none' });
    const zeros = sampleRow({ tenant_id: '', cost_usd: null });
    expect(attributesOf(zeros, facts({}))('chat', null)).toStrictEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai-compatible',
      'tiergate.model_alias': 'auto',
      'gen_ai.usage.input_tokens': 10,
      'gen_ai.usage.output_tokens': 5,
      'tiergate.usage_source': 'reported',
    });
  });

  it("a cache hit: the stored answer's model, and no finish reason (none was generated)", () => {
    const row = sampleRow({ cache_hit: true, model_resolved: 'strong-model', usage_source: 'none', cost_usd: null, tenant_id: '' });
    expect(attributesOf(row, facts({ finishReason: 'stop' }))('chat', 'strong-model')).toStrictEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai-compatible',
      'gen_ai.request.model': 'strong-model',
      'tiergate.model_alias': 'auto',
      'gen_ai.response.model': 'strong-model',
      'tiergate.usage_source': 'none',
    });
  });
});

describe('the settle step ends the span', () => {
  it('with the row it built', async () => {
    const { span, calls } = fakeSpan();
    const { settle, recorded } = settleInto();
    settle(record(rowSpan(span, 7, 'chat', 'weak-model'), () => ({ texts: ['hello'], extra: '', chat: true, uncountedTokens: 0 })), runtimeFor());
    await Promise.all(recorded);
    expect(calls.ends).toEqual([7]);
    expect(calls.attributes[0]).toMatchObject({ 'gen_ai.operation.name': 'chat', 'tiergate.usage_source': 'estimated' });
  });

  it('when building the row throws at once', () => {
    const { span, calls } = fakeSpan();
    const { settle, recorded } = settleInto();
    settle(
      record(rowSpan(span, 7, 'chat', 'weak-model'), () => {
        throw new Error('boom');
      }),
      runtimeFor(),
    );
    expect(recorded).toHaveLength(1);
    expect(calls.ends).toEqual([7]);
    expect(calls.attributes).toEqual([]);
  });

  it('when building the row fails later (the estimate rejects)', async () => {
    const { span, calls } = fakeSpan();
    const { settle, recorded } = settleInto();
    settle(record(rowSpan(span, 7, 'chat', 'weak-model'), () => ({ texts: null as unknown as string[], extra: '', chat: true, uncountedTokens: 0 })), runtimeFor());
    expect(await Promise.all(recorded)).toEqual(['failed']);
    expect(calls.ends).toEqual([7]);
    expect(calls.attributes).toEqual([]);
  });
});
