// Storing a miss's answer at its response's end (src/cache/store-answer.ts). It runs on the answer path, so
// whatever goes wrong in it must not reach the transport (whose failure rule would turn the client's answer into
// a 500): it is counted and logged, once per interval, without the answer's text.
import { describe, expect, it } from 'vitest';
import type { ResponseCache } from '../../src/cache/response-cache.js';
import type { SemanticCache } from '../../src/cache/semantic-cache.js';
import { answerStore, type AnswerToStore } from '../../src/cache/store-answer.js';
import { configSchema } from '../../src/config/schema.js';
import type { CacheEntry } from '../../src/stores/cache-store.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { captureLogger, logEvents, metricValue } from '../helpers/tiergate.js';

const cfg = configSchema.parse({}).cache;
const ENTRY = { answer: { model: 'm', choices: [{ index: 0, content: 'The secret answer.' }] }, storedAt: 0 } as unknown as CacheEntry;
const SEED = { vector: [1, 0], features: { wordsKey: 'k' }, partition: 'p' } as unknown as NonNullable<AnswerToStore['semantic']>;

function setup(opts: { saveThrows?: boolean; addThrows?: boolean } = {}) {
  const saved: unknown[][] = [];
  const added: unknown[][] = [];
  const cache = {
    save: (...args: unknown[]) => {
      if (opts.saveThrows) throw new Error('save broke');
      saved.push(args);
    },
  } as unknown as ResponseCache;
  const semantic = {
    add: (...args: unknown[]) => {
      if (opts.addThrows) throw new Error('add broke');
      added.push(args);
    },
  } as unknown as SemanticCache;
  const metrics = createMetrics();
  const { log, logs } = captureLogger();
  const clock = { t: 0 };
  const store = answerStore(cache, () => semantic, metrics, log, () => clock.t);
  const count = (result: string) => metricValue({ metrics }, 'tiergate_cache_writes_total', { result });
  return { store, saved, added, logs, clock, count };
}

describe('storing an answer at its response end', () => {
  it('stores the entry for its tenant, and its vector when the lookup left a seed', () => {
    const s = setup();
    s.store('acme', { storeKey: 'k1', ttlMs: 5000, entry: ENTRY, semantic: SEED }, cfg);
    s.store('acme', { storeKey: 'k2', ttlMs: 5000, entry: ENTRY }, cfg);
    expect(s.saved).toEqual([
      ['acme', 'k1', ENTRY, 5000, cfg],
      ['acme', 'k2', ENTRY, 5000, cfg],
    ]);
    expect(s.added).toEqual([['acme', SEED, 'k1', 5000, cfg.semantic]]);
  });

  it('an answer that is not fit is counted as not storable, and nothing is stored', async () => {
    const s = setup();
    s.store('acme', { storeKey: 'k', ttlMs: 5000, entry: null, semantic: SEED }, cfg);
    expect([s.saved.length, s.added.length]).toEqual([0, 0]);
    expect(await s.count('not_storable')).toBe(1);
  });

  it.each([
    ['the exact store', 'save broke'],
    ['the semantic index', 'add broke'],
  ])('a throw from %s never leaves it: counted as failed, logged once per interval without the answer', async (name, error) => {
    const s = setup(name === 'the exact store' ? { saveThrows: true } : { addThrows: true });
    const save = { storeKey: 'k', ttlMs: 5000, entry: ENTRY, semantic: SEED };
    expect(() => s.store('acme', save, cfg)).not.toThrow();
    expect(() => s.store('acme', save, cfg)).not.toThrow();
    expect(await s.count('failed')).toBe(2);
    expect(logEvents(s.logs, 'cache.store_answer_failed')).toHaveLength(1);
    s.clock.t += 10_000;
    s.store('acme', save, cfg);
    const lines = logEvents(s.logs, 'cache.store_answer_failed');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ suppressed: 1, error });
    expect(s.logs.join('')).not.toContain('secret answer');
  });
});
