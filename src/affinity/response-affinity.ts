// Response affinity: which tier answered each stored Responses API response, so that a turn continuing it
// (previous_response_id), or a request about it (GET /v1/responses/{id}), reaches the backend that holds it.
// Keys are scoped by tenant: one tenant's ids never steer another's requests. Beside each, an owner record by
// id alone says which tenant stored the response: the backends behind tiergate hold every tenant's responses
// under one upstream credential, so without it any tenant holding an id could read, continue or delete
// another's (routing.affinity.isolation). It fails open: a store that is down or slow gives no answer (the
// turn goes to routing.statefulTier) and a lost write is a later miss; only isolation "strict" refuses then.
// Items a backend sealed (`encrypted_content`: reasoning, a compaction) are recorded the same way, under
// sealedItemId: a later turn sends them back, and they have to reach the tier that sealed them and be the
// tenant's own.
import { createHash } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { AffinityStore } from '../stores/affinity-store.js';
import { withDeadline } from '../deadline-timer.js';
import { TiergateError, type ErrorName } from '../errors.js';
import { boundedClientText } from '../ledger/client-text.js';
import { MemoryAffinityStore } from '../stores/memory/affinity-store.js';
import { RedisAffinityStore } from '../stores/redis/affinity-store.js';
import { StoreGuard, redisPing } from '../stores/store-guard.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';

export type AffinityConfig = Config['routing']['affinity'];

/** The configured store, or none when affinity is off. Built once from the startup config, like the others. */
export function createAffinityStore(cfg: AffinityConfig, now?: () => number): AffinityStore | undefined {
  if (cfg.store === 'redis' && cfg.redis) return new RedisAffinityStore(cfg.redis);
  if (cfg.store === 'memory') return new MemoryAffinityStore(cfg.maxEntries, now);
  return undefined;
}

/**
 * Response ids are short (OpenAI's and vLLM's are ~50 characters); a client-sent previous_response_id or path is
 * not looked up beyond this, so nobody can make tiergate build or send megabyte keys.
 */
const MAX_ID_LENGTH = 256;

/** What a call came to, for the metric, and its value. */
type Outcome<T> = [result: 'hit' | 'miss' | 'stored' | 'failed' | 'deadline', value: T | undefined];
const LATE: Outcome<never> = ['deadline', undefined];
/** What an owner record is about: the two kinds of state a Responses API backend keeps by id. */
export type IdKind = 'response' | 'conversation';
/** The metric's `op`: the tier under the tenant's key, the owner record by id alone, and the conversation's size. */
type Op = 'lookup' | 'remember' | 'owner_lookup' | 'owner_remember' | 'context_lookup' | 'context_remember';

/**
 * Whose a response id is, as far as tiergate knows. own: stored by this tenant (its tier, when still known);
 * foreign: stored by another tenant; unknown: never stored through tiergate, or its records expired;
 * unavailable: the store failed or was too slow to say.
 */
export type Holder = { readonly kind: 'own'; readonly tier: string | undefined } | { readonly kind: 'foreign'; readonly owner: string } | { readonly kind: 'unknown' | 'unavailable' };
const UNKNOWN: Holder = Object.freeze({ kind: 'unknown' });
const UNAVAILABLE: Holder = Object.freeze({ kind: 'unavailable' });
const OWN_TIER_UNKNOWN: Holder = Object.freeze({ kind: 'own', tier: undefined });

/**
 * How a caller uses a stored id: a turn's previous_response_id (`continuation`), a request about a stored
 * response (`response`), a turn's `conversation` (`conversation_turn`), a request about a conversation, or an
 * item the provider sealed, sent back in a turn's input (`sealed`, by sealedItemId).
 */
export type IdUse = 'continuation' | 'response' | 'conversation_turn' | 'conversation' | 'sealed';

/** The refusal of each use, and the param it names: OpenAI's own 400 for a continuation, which clients that
 * resend their whole history recognise; "not found" for the rest. */
const REFUSALS: Record<IdUse, { error: ErrorName; param: string | null; message: (id: string) => string }> = {
  continuation: { error: 'previous_response_not_found', param: 'previous_response_id', message: (id) => `Previous response with id '${id}' not found.` },
  response: { error: 'response_not_found', param: null, message: (id) => `Response with id '${id}' not found.` },
  conversation_turn: { error: 'conversation_not_found', param: 'conversation', message: (id) => `Conversation with id '${id}' not found.` },
  conversation: { error: 'conversation_not_found', param: null, message: (id) => `Conversation with id '${id}' not found.` },
  // OpenAI's answer to sealed content it cannot read. The id is tiergate's digest, which means nothing to the
  // client: the message names the item's kind instead.
  sealed: { error: 'invalid_encrypted_content', param: null, message: () => 'The encrypted content of an item in input could not be verified.' },
};

/**
 * The id an item the provider sealed (reasoning, a compaction) is recorded and looked up under: a digest of its
 * `encrypted_content`, which is what a backend reads (the item's own `id` is optional and the client's to
 * change). The prefix keeps these apart from response ids (`resp_…`) in the same keys.
 */
export function sealedItemId(sealed: string): string {
  return `sealed_${createHash('sha256').update(sealed).digest('base64url').slice(0, 22)}`;
}

/**
 * What isolation answers a caller for an id it may not use, or undefined when it may. It says only "not found",
 * as the backend does for an id that does not exist: another tenant's id is not confirmed to exist. Which
 * tenant holds it goes to the log, for the operator.
 */
export function isolationRefusal(holder: Holder, cfg: AffinityConfig, id: string, use: IdUse, log: Logger): TiergateError | undefined {
  if (holder.kind === 'own' || cfg.isolation === 'off') return undefined;
  const r = REFUSALS[use];
  if (holder.kind === 'foreign') log.warn({ event: 'affinity.foreign_id', owner: holder.owner, use });
  else if (cfg.isolation !== 'strict') return undefined;
  else if (holder.kind === 'unavailable') {
    return new TiergateError('dependency_unavailable', 'The gateway cannot check this id now (its affinity store is unavailable); retry shortly.', r.param);
  }
  return new TiergateError(r.error, r.message(boundedClientText(id)), r.param);
}

export class ResponseAffinity {
  private readonly guard: StoreGuard;

  constructor(
    readonly store: AffinityStore | undefined,
    private readonly prefix: string,
    private readonly metrics: Metrics,
    log: Logger,
    now: () => number = Date.now,
  ) {
    this.guard = new StoreGuard('affinity.store_failed', log, now, (open) => metrics.affinityStoreDegraded.set(open ? 1 : 0), redisPing(store));
  }

  /** Off unless the startup config named a store (and the live config still has it on). */
  on(cfg: AffinityConfig): boolean {
    return this.store !== undefined && cfg.store !== 'off';
  }

  /**
   * Whose this response is, and for the caller's own its tier. The tenant's key is read first: a hit is the
   * common case and costs one read. Only on a miss, and with isolation on, is the owner record read too.
   */
  holder(tenant: string, responseId: string, cfg: AffinityConfig): Holder | Promise<Holder> {
    const own = this.call('lookup', responseId, cfg, this.key(tenant, responseId), (store, key) => store.get(key), found);
    return own instanceof Promise ? own.then((o) => this.afterOwnLookup(tenant, responseId, cfg, o)) : this.afterOwnLookup(tenant, responseId, cfg, own);
  }

  private afterOwnLookup(tenant: string, responseId: string, cfg: AffinityConfig, [result, tier]: Outcome<string>): Holder | Promise<Holder> {
    if (result === 'hit') return { kind: 'own', tier };
    if (result !== 'miss') return UNAVAILABLE;
    if (cfg.isolation === 'off') return UNKNOWN;
    return this.ownerOf(tenant, 'response', responseId, cfg);
  }

  /**
   * Whose an id is by its owner record alone: a conversation's (it has no tier of its own: its turns go to the
   * stateful tier), or a response's once the tenant's own key missed.
   */
  ownerOf(tenant: string, kind: IdKind, id: string, cfg: AffinityConfig): Holder | Promise<Holder> {
    const owner = this.call('owner_lookup', id, cfg, this.ownerKey(kind, id), (store, key) => store.get(key), found);
    const whose = ([r, name]: Outcome<string>): Holder => {
      if (r === 'miss') return UNKNOWN;
      if (r !== 'hit' || name === undefined) return UNAVAILABLE;
      // A response whose tier key expired or was evicted before its owner record: its own, its tier unknown.
      return name === tenant ? OWN_TIER_UNKNOWN : { kind: 'foreign', owner: name };
    };
    return owner instanceof Promise ? owner.then(whose) : whose(owner);
  }

  /**
   * Records which tenant created a conversation (its id read from the answer to POST /v1/conversations); like
   * remember, the promise settles once stored or given up, and the answer carrying the id waits for it.
   */
  claim(tenant: string, kind: IdKind, id: string, cfg: AffinityConfig, ttlSeconds = cfg.ttlSeconds): void | Promise<void> {
    const set = this.call('owner_remember', id, cfg, this.ownerKey(kind, id), (store, key) => store.set(key, tenant, ttlSeconds * 1000, tenant), stored);
    return set instanceof Promise ? set.then(() => undefined) : undefined;
  }

  /**
   * Remembers the tier of a response, and which tenant stored it; the promise (if any) settles once both are
   * stored or given up, never rejects. The caller holds the answer that carries the response id until then, so
   * the client cannot continue the conversation (nor another tenant claim the id) before it is known. The owner
   * record is written whatever isolation says, so that turning isolation on covers the responses stored before.
   * `ttlSeconds`: a sealed item's are kept for routing.affinity.sealedTtlSeconds.
   */
  remember(tenant: string, responseId: string, tier: string, cfg: AffinityConfig, ttlSeconds = cfg.ttlSeconds): void | Promise<void> {
    const tierSet = this.call('remember', responseId, cfg, this.key(tenant, responseId), (store, key) => store.set(key, tier, ttlSeconds * 1000, tenant), stored);
    const ownerSet = this.claim(tenant, 'response', responseId, cfg, ttlSeconds);
    if (tierSet instanceof Promise || ownerSet instanceof Promise) return Promise.all([tierSet, ownerSet]).then(() => undefined);
    return undefined;
  }

  /**
   * Records what a stored response's conversation, or a conversation, came to: the input and output of its
   * latest turn as the backend reported them once it ended. A turn continuing it (previous_response_id, or the
   * same `conversation`) is billed for all of them though its request carries none, so the budget's reservation
   * adds them (stages/budget.ts). A key of its own beside the tier's, so that a version reading only the tier
   * (a rollback, a rolling upgrade) reads it as before.
   */
  recordContext(tenant: string, kind: IdKind, id: string, contextTokens: number, cfg: AffinityConfig): void | Promise<void> {
    const set = this.call('context_remember', id, cfg, this.contextKey(tenant, kind, id), (store, key) => store.set(key, String(contextTokens), cfg.ttlSeconds * 1000, tenant), stored);
    return set instanceof Promise ? set.then(() => undefined) : undefined;
  }

  /**
   * What one of the tenant's own stored responses or conversations came to, when recorded (the key is the
   * tenant's: another tenant's id finds nothing). Undefined when unknown, the store failing or late.
   */
  contextOf(tenant: string, kind: IdKind, id: string, cfg: AffinityConfig): number | undefined | Promise<number | undefined> {
    const got = this.call('context_lookup', id, cfg, this.contextKey(tenant, kind, id), (store, key) => store.get(key), found);
    return got instanceof Promise ? got.then(tokenCount) : tokenCount(got);
  }

  async close(): Promise<void> {
    this.guard.close();
    await this.store?.close();
  }

  /** Hash-tagged by tenant, as the cache's keys are: on a Redis Cluster a tenant's entries share a slot. */
  private key(tenant: string, responseId: string): string {
    return `${this.prefix}{t:${tenant}}:${responseId}`;
  }

  /**
   * What a response's or a conversation's history came to: "context:" after the prefix, where the tier keys have
   * "{t:", so none meet, then "conversation:" for a conversation's; hash-tagged by tenant like the tier keys.
   */
  private contextKey(tenant: string, kind: IdKind, id: string): string {
    return kind === 'response' ? `${this.prefix}context:{t:${tenant}}:${id}` : `${this.prefix}context:conversation:{t:${tenant}}:${id}`;
  }

  /**
   * Who stored a response or created a conversation, by its id alone. The tier keys go on with "{t:" after the
   * prefix, these with "owner:" or "conversation:", so none meet. No hash tag: on a Cluster these spread by id.
   */
  private ownerKey(kind: IdKind, id: string): string {
    return kind === 'response' ? `${this.prefix}owner:${id}` : `${this.prefix}conversation:${id}`;
  }

  /**
   * One store call, the same way for every operation: ids too long to be real are not sent, a store known to be
   * down is not called, a failure or a throw is the breaker's, a slow answer is abandoned at the deadline, and
   * the outcome is counted once.
   */
  private call<R, V>(
    op: Op,
    responseId: string,
    cfg: AffinityConfig,
    key: string,
    run: (store: AffinityStore, key: string) => R | Promise<R>,
    outcome: (r: R) => Outcome<V>,
  ): Outcome<V> | Promise<Outcome<V>> {
    const store = this.store;
    if (responseId.length > MAX_ID_LENGTH) return this.counted(op, [op.endsWith('lookup') ? 'miss' : 'failed', undefined]);
    if (!store || !this.guard.allows()) return this.counted(op, ['failed', undefined]);
    let got: R | Promise<R>;
    try {
      got = run(store, key);
    } catch (err) {
      return this.counted(op, this.failed(op, err, cfg));
    }
    if (!(got instanceof Promise)) return this.counted(op, outcome(got));
    const answer = got.then(
      (r) => {
        this.guard.succeeded();
        return outcome(r);
      },
      (err: unknown): Outcome<V> => this.failed(op, err, cfg),
    );
    return withDeadline(answer, cfg.deadlineMs, LATE as Outcome<V>).then((o) => this.counted(op, o));
  }

  private failed(op: Op, err: unknown, cfg: AffinityConfig): Outcome<never> {
    this.guard.failed(op, err, cfg.breaker);
    return ['failed', undefined];
  }

  /** Counted once per call, by what the caller got (a store answering after the deadline is not counted again). */
  private counted<T>(op: Op, o: Outcome<T>): Outcome<T> {
    this.metrics.responseAffinity.inc({ op, result: o[0] });
    return o;
  }
}

const found = (value: string | undefined): Outcome<string> => [value === undefined ? 'miss' : 'hit', value];
const stored = (): Outcome<never> => ['stored', undefined];
/** A recorded count: digits only, few enough to be exact; anything else (damaged, written by hand) is no count. */
const tokenCount = ([result, value]: Outcome<string>): number | undefined => (result === 'hit' && value !== undefined && /^\d{1,15}$/.test(value) ? Number(value) : undefined);
