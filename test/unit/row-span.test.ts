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
import { sampleRecord } from '../helpers/ledger-rows.js';

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

describe('the settle step ends the span', () => {
  it('with the row it built', async () => {
    const { span, calls } = fakeSpan();
    const { settle, recorded } = settleInto();
    settle(record(rowSpan(span, 7, 'chat', 'weak-model'), () => ({ texts: ['hello'], extra: '', chat: true, mediaTokens: 0 })), runtimeFor());
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
    settle(record(rowSpan(span, 7, 'chat', 'weak-model'), () => ({ texts: null as unknown as string[], extra: '', chat: true, mediaTokens: 0 })), runtimeFor());
    expect(await Promise.all(recorded)).toEqual(['failed']);
    expect(calls.ends).toEqual([7]);
    expect(calls.attributes).toEqual([]);
  });
});
