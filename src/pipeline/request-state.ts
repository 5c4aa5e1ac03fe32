// Per-request state: what the stages read and decide. Plain data, no protobuf (architecture.md §2).
import type { Context } from '@opentelemetry/api';
import type { ClassifierDecision } from '../classify/engine.js';
import type { Runtime, TierRuntime } from '../config/runtime.js';
import type { HeaderMap } from '../extproc/types.js';
import type { LlmRequest } from '../llm/parse-request.js';
import type { Admission } from '../budget/budgets.js';
import { NO_POLICY, type TenantPolicy } from '../policy/tenant-policy.js';
import type { Logger } from '../telemetry/logger.js';
import { traceLogFields } from '../telemetry/tracing.js';
import type { CacheEntry } from '../stores/cache-store.js';
import type { PendingSeed } from '../cache/semantic-cache.js';
import { newId } from '../ids.js';
import { boundedClientText } from '../ledger/client-text.js';
import { H } from './contract-headers.js';

export type RouteSource = 'classifier' | 'alias' | 'stateful' | 'affinity';

export interface RouteDecision {
  tier: TierRuntime;
  source: RouteSource;
  /** Set when the classifier decided (source 'classifier'). */
  classification?: ClassifierDecision;
  /** The shadow version's decision (classifier routes only, when a shadow is configured); never routes. */
  shadow?: ClassifierDecision;
}

/** What the response cache did for this request (set only when the tenant's policy turns the cache on). */
export interface RequestCache {
  /** The x-cache header value. */
  status: 'hit-exact' | 'hit-semantic' | 'miss' | 'bypass';
  /** Why a miss or bypass: not_found, deadline, store_down, client, tools, … */
  reason: string | undefined;
  /** The entry that answers this request (hits). */
  hit?: CacheEntry;
  /** Where the upstream's answer goes once complete (absent when storing is not allowed). */
  save?: { storeKey: string; ttlMs: number; semantic?: PendingSeed };
  /** Time spent looking up (ms), 0 when no lookup ran. */
  lookupMs: number;
}

export interface RequestState {
  readonly requestId: string;
  readonly runtime: Runtime;
  readonly path: string;
  readonly method: string;
  readonly headers: HeaderMap;
  readonly log: Logger;
  /** Raw request body (the whole body; BUFFERED). */
  body: Buffer;
  llm?: LlmRequest;
  /** Resolved by authentication on the request headers; never the client's say alone. */
  tenant: string;
  policy: TenantPolicy;
  /** Set when limits applied and the request was admitted: what it reserved, until the response ends. */
  admission?: Admission;
  route?: RouteDecision;
  cache?: RequestCache;
  /** Request header changes for the upstream, applied in the request-body answer. */
  readonly setHeaders: Array<[string, string]>;
  readonly removeHeaders: string[];
  /** The rewritten body, when a stage changed it. */
  newBody?: Buffer;
  /** The stream span's context, which each stage's span starts in (undefined while tracing is off). */
  traceContext?: Context;
  /** The side stream's gRPC metadata, where Envoy's trace context is when it traces. */
  callMetadata?: HeaderMap;
}

const EMPTY = Buffer.alloc(0);

/**
 * The state of one stream's request. A class rather than an object literal: a literal with a getter (the lazy
 * logger) is created in V8's dictionary mode, which made every stage's read of it a hash lookup; a class
 * instance keeps fast properties, all declared here in one order.
 */
export class StreamRequestState implements RequestState {
  body: Buffer = EMPTY;
  llm: LlmRequest | undefined = undefined;
  tenant = '';
  policy: TenantPolicy = NO_POLICY;
  admission: Admission | undefined = undefined;
  route: RouteDecision | undefined = undefined;
  cache: RequestCache | undefined = undefined;
  readonly setHeaders: Array<[string, string]> = [];
  readonly removeHeaders: string[] = [];
  newBody: Buffer | undefined = undefined;
  traceContext: Context | undefined = undefined;
  callMetadata: HeaderMap | undefined = undefined;
  private childLog: Logger | undefined = undefined;

  constructor(
    readonly requestId: string,
    readonly runtime: Runtime,
    readonly path: string,
    readonly method: string,
    readonly headers: HeaderMap,
    private readonly parentLog: Logger,
  ) {}

  /**
   * Created on first use: most requests never log, and a pino child per request is measurable. Its lines carry
   * the request's trace (tracing.ts), so that a log line leads to the trace and back.
   */
  get log(): Logger {
    return (this.childLog ??= this.parentLog.child({ request_id: this.requestId, ...traceLogFields(this.traceContext, this.callMetadata, this.headers) }));
  }
}

/** The client's x-request-id, bounded (it goes into every log line, span and ledger row), else a new id. */
export function requestIdOf(headers: HeaderMap): string {
  return boundedClientText(headers.get(H.requestId) ?? null) || newId();
}

/**
 * The request's id for the backend, when the request came without one (Envoy with generate_request_id off, a
 * data plane that sets none): the id tiergate made is on the ledger row, the log lines and the client's
 * response, so the backend's logs (vLLM echoes and logs it with --enable-request-id-headers) name the same.
 * Undefined when the request has its own, which is left as it came.
 */
export function upstreamRequestId(state: Pick<RequestState, 'headers' | 'requestId'>): [string, string] | undefined {
  return state.headers.get(H.requestId) ? undefined : [H.requestId, state.requestId];
}
