// The semantic half of the response cache: after an exact miss, the last user question is embedded, its
// partition (tenant, namespace, tier, model, everything else in the conversation, parameters, embedder) is
// searched, and the best candidate above the threshold whose guard features equal the question's answers the
// request. Similarity is never a boundary between tenants or contexts: those are the partition, matched exactly.
// Fails open like the exact cache: an embedder or index that is down or slow means the request goes upstream.
import type { Context } from '@opentelemetry/api';
import { withDeadline } from '../deadline-timer.js';
import { newId } from '../ids.js';
import type { Config } from '../config/schema.js';
import type { CacheEntry, CacheStore } from '../stores/cache-store.js';
import type { VectorIndex } from '../stores/vector-index.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { StoreGuard } from '../stores/store-guard.js';
import { EmbedderBusyError, EmbedderRefusedError, type Embedder } from './embedders/embedder.js';
import { guardMismatch, questionFeatures, type QuestionFeatures } from './guards.js';
import { bucketsFor } from './lsh.js';
import { embeddingText } from './request-key.js';

type SemanticConfig = Config['cache']['semantic'];

export interface SemanticQuery {
  tenant: string;
  /** From requestKeys().semantic(): the exact-match part of the request. */
  partition: string;
  question: string;
  threshold: number;
  /** The request's stream span context (tracing on): the embedder's call is traced under it. */
  trace?: Context | undefined;
}

/** What a miss leaves for storing the answer later: never the question's text. */
export interface SemanticSeed {
  partition: string;
  vector: Float32Array;
  features: QuestionFeatures;
}

/**
 * A miss past the deadline carries the embedding still under way: the answer fetched upstream is then indexed
 * once it arrives. Without it, an embedder slower than the deadline (a cold model, a busy machine) would leave
 * the index empty for as long as it stays slow, and the cache could never warm up.
 */
export type PendingSeed = SemanticSeed | Promise<SemanticSeed | undefined>;

export type SemanticLookup =
  | { result: 'hit'; entry: CacheEntry; score: number }
  | { result: 'miss'; reason: 'not_found' | 'guard'; seed: SemanticSeed }
  | { result: 'miss'; reason: 'deadline' | 'embedder_behind'; seed: Promise<SemanticSeed | undefined> }
  | { result: 'bypass'; reason: 'embedder_down' | 'embedder_busy' | 'question_refused' | 'embedder_error' | 'index_error' };

/** Candidates checked against the guards, best first. */
const CANDIDATES = 5;

export class SemanticCache {
  private readonly guard: StoreGuard;

  constructor(
    readonly embedder: Embedder,
    readonly index: VectorIndex,
    private readonly store: CacheStore,
    private readonly metrics: Metrics,
    log: Logger,
    now: () => number = Date.now,
  ) {
    this.guard = new StoreGuard('cache.semantic_failed', log, now, (open) => metrics.cacheStoreDegraded.set({ part: 'semantic' }, open ? 1 : 0));
  }

  /** The partition also names the embedder: vectors of two models are never compared. */
  partitionOf(partition: string): string {
    return `${partition}:${embedderKeyPart(this.embedder.id)}`;
  }

  lookup(q: SemanticQuery, cfg: Config['cache']): Promise<SemanticLookup> {
    if (!this.guard.allows()) return Promise.resolve(this.counted({ result: 'bypass', reason: 'embedder_down' }));
    const text = embeddingText(q.question);
    // Under a burst the embedder falls behind (the local model embeds ~80 questions a second), and every lookup
    // waited out its whole deadline for a vector that could not come in time: 60 ms more before the request went
    // upstream, for nothing. When what the embedder has under way and waiting puts this vector past the deadline
    // even at its fastest pace, the lookup is a miss at once. The question is still asked, as a late one is, so
    // the answer fetched upstream is indexed once its vector comes.
    const behind = (this.embedder.soonestMs?.(text, q.tenant) ?? 0) > cfg.semantic.lookupDeadlineMs;
    const seed = this.seedFor(q, text);
    const embedFailed = (err: unknown): SemanticLookup => {
      // A full queue is load, not a fault: bypassed, and not counted toward the breaker.
      if (err instanceof EmbedderBusyError) return { result: 'bypass', reason: 'embedder_busy' };
      // A question the endpoint will not take is this question's fault: not counted either (nor as a success),
      // but warned about, throttled, so an endpoint that refuses every question shows in the log.
      if (err instanceof EmbedderRefusedError) {
        this.guard.warn('embed', err);
        return { result: 'bypass', reason: 'question_refused' };
      }
      return this.failed('embed', err, cfg, 'embedder_error');
    };
    // The embedding's failure is handled below; the late answer's copy of it only ever resolves.
    const late: SemanticLookup = { result: 'miss', reason: behind ? 'embedder_behind' : 'deadline', seed: seed.catch(() => undefined) };
    // Behind, the deadline is 0 rather than none: a question the full queue refuses is still counted as
    // embedder_busy (the refusal settles before the deadline's turn of the loop), which its alert reads.
    // A vector that comes once the lookup has missed (late, or given up at once) is only for the answer's entry:
    // searching with it then was an index search and a fetch per such request, on the event loop, for an answer
    // nobody waited for.
    let missed = false;
    const work = seed.then((sd) => (missed ? late : this.search(q, sd, cfg)), embedFailed);
    return withDeadline(work, behind ? 0 : cfg.semantic.lookupDeadlineMs, late).then((r) => {
      missed ||= r === late;
      return this.counted(r);
    });
  }

  private async seedFor(q: SemanticQuery, text: string): Promise<SemanticSeed> {
    const [vector] = (await this.embedder.embed([text], q.tenant, q.trace)) as [Float32Array];
    return { partition: this.partitionOf(q.partition), vector, features: questionFeatures(q.question) };
  }

  private async search(q: SemanticQuery, seed: SemanticSeed, cfg: Config['cache']): Promise<SemanticLookup> {
    const s = cfg.semantic;
    const { partition, vector, features } = seed;
    let matches;
    try {
      matches = await this.index.search(q.tenant, partition, bucketsFor(vector, features.wordsKey, s.lexicalGuard), vector, Math.max(q.threshold, s.minThreshold), CANDIDATES);
    } catch (err) {
      return this.failed('search', err, cfg, 'index_error');
    }
    this.guard.succeeded();
    let guarded = false;
    for (const m of matches) {
      if (guardMismatch(features, m.features, s.lexicalGuard) !== undefined) {
        guarded = true;
        continue;
      }
      let entry: CacheEntry | undefined;
      try {
        entry = await this.store.get(m.storeKey);
      } catch (err) {
        return this.failed('get', err, cfg, 'index_error');
      }
      // The answer may have expired or been evicted before its vector: try the next candidate.
      if (entry) return { result: 'hit', entry, score: m.score };
    }
    return { result: 'miss', reason: guarded ? 'guard' : 'not_found', seed };
  }

  /** After the response, for a miss whose answer was stored under `storeKey`. Never throws. */
  add(tenant: string, seed: PendingSeed, storeKey: string, ttlMs: number, s: SemanticConfig): void {
    if (seed instanceof Promise) {
      // A late embedding: indexed when it arrives; one that failed was already counted by its lookup.
      void seed.then((sd) => sd && this.add(tenant, sd, storeKey, ttlMs, s));
      return;
    }
    if (!this.guard.allows()) return;
    const entry = { id: newId(), vector: seed.vector, features: seed.features, storeKey };
    const buckets = bucketsFor(seed.vector, seed.features.wordsKey, s.lexicalGuard);
    const fail = (err: unknown) => this.guard.failed('add', err, undefined);
    const evicted = (n: number) => void (n > 0 && this.metrics.cacheEvictions.inc({ kind: 'semantic' }, n));
    try {
      const r = this.index.add(tenant, seed.partition, buckets, entry, ttlMs, s.maxEntriesPerPartition);
      if (r instanceof Promise) r.then(evicted, fail);
      else evicted(r);
    } catch (err) {
      fail(err);
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.embedder.close(), this.index.close()]);
  }

  private failed(op: string, err: unknown, cfg: Config['cache'], reason: 'embedder_error' | 'index_error'): SemanticLookup {
    this.guard.failed(op, err, cfg.breaker);
    return { result: 'bypass', reason };
  }

  private counted(r: SemanticLookup): SemanticLookup {
    this.metrics.cacheLookups.inc({ kind: 'semantic', result: r.result, reason: r.result === 'hit' ? 'found' : r.reason });
    return r;
  }
}

/**
 * An embedder id as a part of a store key. Only [A-Za-z0-9.-] are kept as they are: a `{` in a Redis Cluster key
 * would move its slot, and a `:` would blur the key's parts. Every other character, `_` itself included, is written
 * `_<code point in hex>_`, so the encoding is one-to-one: two ids (`org/e5` and `org_e5`) never share a partition.
 */
export function embedderKeyPart(id: string): string {
  return id.replace(/[^A-Za-z0-9.-]/gu, (c) => `_${c.codePointAt(0)!.toString(16)}_`);
}
