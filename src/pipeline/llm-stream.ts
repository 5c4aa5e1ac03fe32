// One HTTP request as tiergate sees it: decides per phase, runs the request pipeline once the body is
// complete, and decorates the response. Implements the transport's StreamHandler with plain types only.
import type { Runtime, TierRuntime } from '../config/runtime.js';
import type { RequestRecord } from '../ledger/build-row.js';
import { TiergateError } from '../errors.js';
import {
  CONTINUE,
  type ContinueDecision,
  type Decision,
  type HeaderMap,
  type ReplyDecision,
  type StreamEnd,
  type StreamHandler,
  type StreamInfo,
} from '../extproc/types.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { ThrottledWarnings } from '../telemetry/throttled-log.js';
import type { BodyNotSent, FilterModeRefused } from '../telemetry/start-at-zero.js';
import { requestTraceId, startStreamSpan, type StreamSpan } from '../telemetry/tracing.js';
import { genAiOperation, rowSpan, type RowSpan } from '../telemetry/row-span.js';
import type { Span } from '@opentelemetry/api';
import { endpointOf } from '../stages/parse.js';
import type { Budgets } from '../budget/budgets.js';
import type { ResponseAffinity } from '../affinity/response-affinity.js';
import { ExpiredKeyError, UNAUTHENTICATED, authenticate, type Caller } from '../stages/authenticate.js';
import { boundedClientText } from '../ledger/client-text.js';
import { H } from './contract-headers.js';
import { clientRoutingHeaders, credentials, replyFor } from './header-rules.js';
import { StreamRequestState, requestIdOf, type RequestState } from './request-state.js';
import type { CacheEntry } from '../stores/cache-store.js';
import { cacheHitReply } from './cache-reply.js';
import { createsConversation, disguisedPath, otherPath, otherPathTenant, routeFixedPath } from './fixed-path-route.js';
import { ConversationAnswer } from '../affinity/conversation-answer.js';
import { logRouted, routedAnswer } from './request-answers.js';
import { ResponseAccounting } from './response-accounting.js';
import { AdmissionWait } from './admission-wait.js';
import { RequestBody, TOO_LARGE, UNSEEN_REST } from './request-body.js';
import { ForcedUsageFilter } from '../usage/forced-usage-filter.js';
import { isEncoded } from '../usage/content-encoding.js';
import type { BodyKind } from '../usage/response-usage.js';
import { usageAsked, usageForced } from '../llm/parse-request.js';
import { finalAnswer, responseHeadersAnswer, withBody } from './response-answers.js';
import { countDecision } from '../stages/classify.js';
import { AnswerRecords } from './answer-records.js';
import type { StoreAnswer } from '../cache/store-answer.js';
import { runStages, type PipelineResult } from './runner.js';
import type { Stage } from './stage.js';

export interface StreamDeps {
  runtime: () => Runtime;
  metrics: Metrics;
  log: Logger;
  requestStages: readonly Stage[];
  /** Request limits for paths routed without a pipeline run (e.g. embeddings). */
  budgets: Budgets;
  /** Which tier holds each stored Responses API response (README "Responses API"). */
  affinity: ResponseAffinity;
  /**
   * Called once per LLM request when its stream is over, with a function that assembles its record; the row is
   * built from it later, batched with other requests' (Ledger.later). Must not throw.
   */
  settle(record: () => RequestRecord, runtime: Runtime): void;
  /** Stores a cache miss's answer (and its vector) for its tenant; never throws, never waits. */
  storeAnswer: StoreAnswer;
  /** Warns of an ext_proc filter set up so that tiergate cannot do its job, once per interval. */
  filterWarnings: ThrottledWarnings;
}

type PathKind = 'classify' | 'unclassified' | 'other';

export class LlmStream implements StreamHandler {
  private readonly runtime: Runtime;
  /** Started on the request headers, whose trace context may be its parent (tracing.ts). */
  private traced: StreamSpan | undefined;
  /** The side stream's gRPC metadata: Envoy's trace context when Envoy traces. */
  private readonly callMetadata: HeaderMap;
  private state: RequestState | undefined;
  private pathKind: PathKind = 'other';
  private readonly body: RequestBody;
  private readonly acc: ResponseAccounting;
  /** The tier of a path routed without classification. */
  private pathTier: TierRuntime | undefined;
  private outcome: 'routed' | 'local_reply' | 'cache_hit' | 'passthrough' = 'passthrough';
  private status: number | undefined;
  /** A Responses API turn while affinity is on: what its answer tells affinity, recorded as it passes. */
  private records: AnswerRecords | undefined;
  /** A conversation being created: the tenant its id will be claimed for, and the answer read for that id. */
  private conversation: { tenant: string; answer: ConversationAnswer } | undefined;
  private readonly responseBuffered: boolean;
  /** Envoy 1.34+ said it sends no response body, and tiergate may not override that (envoy.allowModeOverride off). */
  private readonly responseUnsent: boolean;
  /** The client did not ask for the usage chunk tiergate asked for, and the config says to take it out. */
  private stripUsage = false;
  private usageFilter: ForcedUsageFilter | undefined;
  /** How the answer's body is read, once its headers (or, when Envoy skips them, its first bytes) tell. */
  private answerKind: BodyKind | undefined;
  private responseHeadersSkipped = false;
  /** Made when an admission (the pipeline's, or a fixed path's) is asynchronous: it may land after the stream ended. */
  private wait: AdmissionWait | undefined;

  constructor(
    private readonly deps: StreamDeps,
    info: StreamInfo,
  ) {
    // Captured once: a config reload never changes a request half-way.
    this.runtime = deps.runtime();
    this.callMetadata = info.callMetadata;
    this.body = new RequestBody(info.protocolConfig?.requestBodyMode, this.runtime.config.limits.maxRequestBodyBytes);
    this.responseBuffered = info.protocolConfig?.responseBodyMode === 'BUFFERED';
    this.responseUnsent = info.protocolConfig?.responseBodyMode === 'NONE' && !this.runtime.config.envoy.allowModeOverride;
    this.acc = new ResponseAccounting(this.runtime);
  }

  requestHeaders(headers: HeaderMap, endOfStream: boolean): Decision | Promise<Decision> {
    const rawPath = headers.get(':path') ?? '/';
    const q = rawPath.indexOf('?');
    const path = q === -1 ? rawPath : rawPath.slice(0, q);
    const requestId = requestIdOf(headers);
    const rt = this.runtime;
    this.pathKind = rt.llmPaths.has(path) ? 'classify' : rt.unclassifiedPaths.has(path) ? 'unclassified' : 'other';
    this.state = new StreamRequestState(requestId, rt, path, headers.get(':method') ?? 'GET', headers, this.deps.log);
    const { span, context } = this.spanFor(headers);
    this.state.traceContext = context;
    this.state.callMetadata = this.callMetadata;
    if (span.isRecording()) span.setAttributes({ 'tiergate.request_id': requestId, 'url.path': boundedClientText(path) });
    // A client must never pick its own tier or tenant: strip routing headers it sent, whatever the path.
    const spoofed = clientRoutingHeaders(headers, []);
    let caller: Caller | undefined;
    // With keys on, every path needs one unless the operator made it public: a path tiergate does not account
    // for (/v1/models, /v1/audio/…, …) still reaches a backend through Envoy's routes.
    if (this.pathKind !== 'other' || (rt.auth.mode !== 'none' && !rt.auth.isPublic(path))) {
      try {
        caller = authenticate(headers, rt);
      } catch (err) {
        if (!(err instanceof TiergateError)) throw err;
        // Recorded apart from every real tenant (the id cannot be a configured or x-tenant-id one), unless an
        // expired key's own fixed tenant is known.
        this.state.tenant = (err instanceof ExpiredKeyError && err.tenant) || UNAUTHENTICATED;
        return this.reply(err);
      }
      this.state.tenant = caller.tenant;
      this.state.policy = rt.tenants.policyFor(caller.tenant);
    }

    if (this.pathKind === 'other') {
      const meant = disguisedPath(rt, path);
      if (meant !== undefined) return this.reply(new TiergateError('invalid_path', `Send this request to ${meant}, written plainly.`));
      // A conversation created by a known tenant: the id its answer names is claimed for that tenant.
      const tenant = otherPathTenant(rt, caller);
      if (tenant !== undefined && this.deps.affinity.on(rt.config.routing.affinity) && createsConversation(rt, this.state.method, path)) {
        this.conversation = { tenant, answer: new ConversationAnswer() };
      }
      const other = otherPath(rt, this.state, caller, spoofed, this.deps.affinity, this.conversation !== undefined);
      const answer = (d: Decision | TiergateError): Decision => (d instanceof TiergateError ? this.reply(d) : d);
      return other instanceof Promise ? other.then(answer) : answer(other);
    }
    if (this.pathKind === 'unclassified') {
      const { tier, outcome } = routeFixedPath(rt, this.state, caller, this.deps.budgets, this.deps.metrics);
      this.pathTier = tier;
      this.acc.fixedPathRequest(tier, path, endOfStream);
      // Known at once: the ACL's refusal, or a limit's from the memory store (which countRefused leaves alone).
      if (outcome instanceof TiergateError) return this.refuse(this.state, outcome);
      const decide = (o: ContinueDecision | TiergateError): Decision => {
        if (o instanceof TiergateError) return this.reply(o);
        this.outcome = 'routed';
        return o;
      };
      return outcome instanceof Promise ? this.later().decide(outcome, decide) : decide(outcome);
    }
    if (this.state.method !== 'POST') {
      // Every LLM path takes a POST. Another method (a GET, a browser's OPTIONS preflight) would otherwise be
      // answered "missing body", or, sent with a body, routed and reserved for as if it were a POST.
      return this.reply(new TiergateError('method_not_allowed', `${path} takes POST requests only.`, null, [[H.allow, 'POST']]));
    }
    if (endOfStream) {
      // No body will follow (§2.3): answer now rather than wait for a message that never comes.
      return this.reply(new TiergateError('missing_body', `${path} requires a JSON request body.`));
    }
    if (this.body.notSent) {
      // Envoy said it will send no body (a filter or a route's processing_mode without request_body_mode, whose
      // default is NONE; kgateway's too). Answered on, the request would reach a backend unclassified, past every
      // limit and ACL, on whatever route matches without the tier header. A fault of the gateway's config, which
      // the operator must hear of, so it is a 500 whatever envoy.failureRule says: that rule is for a rare fault
      // in one request, this one holds for every request on the route.
      this.bodyNotSent(['request', 'refused'], path);
      return this.reply(new TiergateError('request_body_not_sent', `The gateway's proxy does not send request bodies to tiergate on ${path} (Envoy ext_proc request_body_mode NONE), so the request cannot be routed; its operator must set request_body_mode to BUFFERED.`));
    }
    if (this.body.streamed) {
      // STREAMED: Envoy releases the headers with this answer, and the route with them, before the body comes
      // (§2.2, §6): the tier header and clear_route_cache of the body's answer would be ignored. Answered on,
      // every request took the route that matches without a tier, its body rewritten for a tier it never reached.
      return this.refuseMode(
        'request_body_streamed',
        new TiergateError('request_body_streamed', `The gateway's proxy streams request bodies to tiergate on ${path} (Envoy ext_proc request_body_mode STREAMED), which fixes the route before the body is read, so the request cannot be routed; its operator must set request_body_mode to BUFFERED.`),
        { path },
      );
    }
    if (isEncoded(headers.get(H.contentEncoding))) {
      // The bytes would not parse as JSON, and "invalid JSON" would send the client looking in the wrong place.
      // Decompressing is the proxy's job (Envoy's decompressor filter, placed before ext_proc, decodes the body
      // and drops the header): done here, the plain body would have to replace the client's on its way upstream,
      // which a STREAMED body cannot, its headers being gone by then. Refused on the headers, before any is sent.
      return this.reply(
        new TiergateError('unsupported_content_encoding', 'Compressed request bodies are not supported: send the JSON body without content-encoding.', H.contentEncoding, [
          [H.acceptEncoding, 'identity'],
        ]),
      );
    }
    // A tenant whose requests-per-minute window is full is refused now, not after Envoy has buffered its body
    // and tiergate has read it: it could not be admitted whatever the body says (full-windows.ts).
    const full = this.deps.budgets.knownFull(rt, this.state.policy);
    if (full) return this.reply(full);
    // Gateway keys go no further than here, whatever happens to the request next. The routing headers come
    // with the body's decision (awaitBody: in FULL_DUPLEX_STREAMED mode they must travel in this answer).
    const remove = [...spoofed, ...credentials(caller, [])];
    return remove.length > 0 ? { kind: 'continue', headers: { remove }, clearRouteCache: true, awaitBody: true } : AWAIT_BODY;
  }

  requestBody(chunk: Buffer, endOfStream: boolean): Decision | Promise<Decision> {
    if (!this.state) return this.headersNotSent();
    if (this.pathKind !== 'classify') {
      // Only a fixed-tier path has a row to account for (a passed-through one has none).
      if (this.pathKind === 'unclassified') this.acc.unreadRequestBody(chunk, endOfStream);
      return CONTINUE;
    }
    const state = this.state;
    const whole = this.body.push(chunk, endOfStream);
    if (whole === TOO_LARGE) {
      const limit = this.runtime.config.limits.maxRequestBodyBytes;
      return this.refuse(state, new TiergateError('request_too_large', `Request body exceeds the gateway limit of ${limit} bytes.`));
    }
    if (whole === UNSEEN_REST) {
      // Passing it on would send a request nobody checked, past the limits, to the catch-all route.
      return this.refuse(state, new TiergateError('request_too_large', 'Request body exceeds the proxy buffer the gateway reads it through, so it cannot be checked.'));
    }
    if (!Buffer.isBuffer(whole)) return whole;
    state.body = whole;
    const started = performance.now();
    const result = runStages(this.deps.requestStages, state, this.deps.metrics);
    return result instanceof Promise ? this.later().decide(result, (r) => this.decide(state, r, started)) : this.decide(state, result, started);
  }

  private later(): AdmissionWait {
    this.wait ??= new AdmissionWait(
      () => this.state?.admission,
      (a) => {
        this.deps.metrics.budgetLateAdmissions.inc();
        this.deps.budgets.release(a);
      },
    );
    return this.wait;
  }

  private decide(state: RequestState, result: PipelineResult, started: number): Decision | Promise<Decision> {
    this.acc.requestDecided(state, started);
    if (result.kind === 'error') return this.refuse(state, result.error);
    if (state.cache?.hit) return this.cacheReply(state, state.cache.hit);
    const route = state.route;
    if (route) countDecision(this.deps.metrics, route);
    this.outcome = 'routed';
    this.acc.routed(route?.tier);
    const llm = state.llm;
    this.stripUsage = llm !== undefined && usageForced(llm) && !usageAsked(llm) && this.runtime.config.usage.forcedUsageChunk === 'strip';
    this.records = route && llm ? AnswerRecords.forTurn(this.deps.affinity, this.runtime, state, llm, route.tier.name) : undefined;
    // One message: replace it when the body changed. Several: only if we held the earlier ones back.
    const decision = routedAnswer(state, this.body.replaced(state.newBody !== undefined));
    if (this.deps.log.isLevelEnabled('debug')) logRouted(state, this.runtime.config.logging.logPrompts);
    this.releaseRequestData(state);
    return decision;
  }

  /** A refusal of what the request sent: counted against its tenant's minute first (Budgets.countRefused). */
  private refuse(state: RequestState, err: TiergateError): Decision | Promise<Decision> {
    const counted = this.deps.budgets.countRefused(state.runtime, state.policy, err, state.admission !== undefined);
    return counted instanceof Promise ? counted.then((e) => this.reply(e)) : this.reply(counted);
  }

  /** Answered from the cache: the model is never called. */
  private cacheReply(state: RequestState, entry: CacheEntry): ReplyDecision {
    this.outcome = 'cache_hit';
    this.acc.routed(state.route?.tier);
    if (this.deps.log.isLevelEnabled('debug')) state.log.debug({ event: 'cache.hit', kind: state.cache?.status, tier: state.route?.tier.name });
    const reply = cacheHitReply(state, entry, Date.now());
    this.releaseRequestData(state);
    return reply;
  }

  /**
   * The stream lives until the response ends, which for an SSE answer can be minutes; once routed only the
   * decision is needed, so the body (up to limits.maxRequestBodyBytes), the parsed JSON and the rewritten body
   * are not held that long.
   */
  private releaseRequestData(state: RequestState): void {
    state.body = EMPTY;
    state.newBody = undefined;
    state.llm = undefined;
  }

  requestTrailers(): Decision | Promise<Decision> {
    if (!this.state) return this.headersNotSent();
    // Trailers after the body mean its last piece came without end_of_stream (§2.4). In FULL_DUPLEX_STREAMED
    // mode the body is tiergate's to pass on, so it is whole now and decided here (the transport sends it with
    // the held headers answer, then the trailers' answer). Other modes answered every piece already.
    if (this.body.duplex && this.pathKind === 'classify' && this.body.open) return this.requestBody(EMPTY, true);
    return CONTINUE;
  }

  responseHeaders(headers: HeaderMap, endOfStream: boolean): Decision {
    this.status = Number(headers.get(':status') ?? 0) || undefined;
    // An Envoy before 1.34 does not say its body mode: a request body that never came is known only now, when the
    // request has already been answered upstream, unrouted and unchecked. The answer is the backend's to give.
    if (this.pathKind === 'classify' && this.outcome === 'passthrough' && this.state && !this.body.seen) this.bodyNotSent(['request', 'passed'], this.state.path);
    if (this.pathKind === 'other') {
      if (endOfStream) this.conversation = undefined;
      else this.conversation?.answer.headers(this.status, headers.get(H.contentEncoding));
      return CONTINUE;
    }
    // Envoy said it sends no response body, and no override can change that: the answer is over for tiergate once
    // its headers are in, its usage unmeasured. Left waiting, the row said "cancelled" for an answer served whole.
    const unsent = !endOfStream && this.responseUnsent;
    if (unsent && this.state) this.bodyNotSent(['response', 'unmeasured'], this.state.path);
    // Chat, completions and responses answers are read whole; an embeddings batch only for its usage.
    const kind = this.acc.responseHeaders(headers, endOfStream || unsent, this.pathKind === 'classify');
    this.answerKind = kind;
    const span = this.traced?.span;
    if (span?.isRecording()) {
      const ttft = this.acc.ttftMs();
      if (ttft !== null) span.setAttribute('tiergate.ttft_ms', ttft);
    }
    // The request's id, unless the backend answered with its own (OpenAI does; vLLM only echoes ours, and only when
    // asked to): the id a client's SDK shows is then the one on tiergate's ledger row and log lines.
    const requestId = headers.has(H.requestId) ? undefined : this.state?.requestId;
    const facts = { tier: this.state?.route?.tier ?? this.pathTier, limitHeaders: this.state?.admission?.responseHeaders, cacheStatus: this.state?.cache?.status, requestId };
    const { decision, buffered } = responseHeadersAnswer(facts, kind, this.runtime.config.envoy.allowModeOverride && !endOfStream, this.responseBuffered, this.pathKind === 'classify');
    this.acc.buffered = buffered;
    // A compressed stream's bytes have no events to cut between: its usage chunk goes through.
    if (this.stripUsage && kind === 'sse' && !isEncoded(headers.get(H.contentEncoding))) this.usageFilter = new ForcedUsageFilter();
    return decision;
  }

  responseBody(chunk: Buffer, endOfStream: boolean): Decision | Promise<Decision> {
    if (this.pathKind === 'other') return this.conversation ? this.claimConversation(this.conversation, chunk, endOfStream) : CONTINUE;
    if (this.answerKind === undefined) this.bodyWithoutHeaders(chunk);
    // (Whitespace before a headerless answer shows its kind is nothing either reader needs.)
    const usage = this.acc.responseBody(this.answerKind === undefined ? EMPTY : chunk, endOfStream);
    if (usage) this.responseEnded();
    let decision = usage ? finalAnswer(usage, this.acc.buffered) : CONTINUE;
    const replaced = this.usageFilter?.push(chunk, endOfStream);
    if (replaced) decision = withBody(decision, replaced, this.acc.buffered);
    // The chunk that shows a response id or a sealed item, or ends the answer, waits until it is recorded.
    const pending = this.records?.afterPiece(this.acc, usage !== undefined);
    return pending ? pending.then(() => decision) : decision;
  }

  /**
   * The answer's body came first: Envoy's filter skips the response headers on this route (response_header_mode
   * SKIP, on the filter or in a route's override; §2.2). The body is still read for its usage, its kind told by
   * its first bytes, and a forced usage chunk still taken out; what only the headers carry is lost: the status
   * (the row's http_status is null, and nothing is stored in the cache), the content coding, and the headers
   * tiergate adds for the client (x-llm-tier, x-ratelimit-*, …). Counted and logged, so the filter gets fixed.
   */
  private bodyWithoutHeaders(chunk: Buffer): void {
    this.headersSkipped();
    const kind = this.acc.headerlessBody(chunk, this.pathKind === 'classify');
    if (kind === undefined) return;
    this.answerKind = kind;
    // acc.buffered stays false: no header changes in the body's answers, whose headers' processing was skipped,
    // and a BUFFERED body's content-length with it (Envoy drops it then, processing_mode.proto).
    if (this.stripUsage && kind === 'sse') this.usageFilter = new ForcedUsageFilter();
  }

  /** Once per stream: the answer's first message was not its headers. */
  private headersSkipped(): void {
    if (this.responseHeadersSkipped) return;
    this.responseHeadersSkipped = true;
    this.deps.metrics.responseHeadersNotSent.inc();
    this.deps.filterWarnings.warn('response_headers', {
      event: 'extproc.response_headers_not_sent',
      path: this.state?.path ?? '',
      message:
        "Envoy's ext_proc filter sends response bodies without their headers (processing_mode.response_header_mode SKIP): usage is read, but the answer's status is unknown and the client gets none of tiergate's response headers; set it to SEND, as envoy/envoy.yaml and the kgateway manifests do",
    });
  }

  /**
   * The answer to a conversation's creation passes untouched; its last piece waits until the id it names is
   * claimed (bounded by the deadline), as a stored response's does for its tier: the client cannot use the
   * conversation before tiergate knows whose it is.
   */
  private claimConversation(c: { tenant: string; answer: ConversationAnswer }, chunk: Buffer, endOfStream: boolean): Decision | Promise<Decision> {
    const id = c.answer.push(chunk, endOfStream);
    if (endOfStream) this.conversation = undefined;
    if (id === undefined) return CONTINUE;
    const claimed = this.deps.affinity.claim(c.tenant, 'conversation', id, this.runtime.config.routing.affinity);
    return claimed instanceof Promise ? claimed.then(() => CONTINUE) : CONTINUE;
  }

  responseTrailers(trailers: HeaderMap): Decision | Promise<Decision> {
    if (this.pathKind === 'other') return CONTINUE;
    if (this.answerKind === undefined) this.headersSkipped();
    const usage = this.acc.responseTrailers(trailers);
    this.responseEnded();
    const decision = finalAnswer(usage, false);
    const pending = this.records?.afterPiece(this.acc, true);
    return pending ? pending.then(() => decision) : decision;
  }

  /**
   * The response is over, before Envoy passes its end on to the client: usage the backend reported settles the
   * tenant's reservation now, and a cache miss's answer is stored now. Waiting for the ledger row (a batch, up to
   * 5 × ledger.lingerMs after the stream ends) left a client that sends its next request at once charged for the
   * last one's whole reservation, refused near its limit for tokens it never used, and missing the cache.
   */
  private responseEnded(): void {
    const save = this.acc.takeCacheSave();
    if (save && this.state) this.deps.storeAnswer(this.state.tenant, save, this.runtime.config.cache);
    // (No admission can still be running here: the request reached a backend only once its answer was decided.)
    const admission = this.state?.admission;
    if (!admission || admission.tokenBuckets.length === 0) return;
    const charge = this.acc.reportedCharge();
    if (charge) this.deps.budgets.reconcile(admission, charge.tokens, charge.microUsd);
  }

  /** Not while the forced-usage filter holds back part of an event: those bytes are the client's. */
  detachable(): boolean {
    return this.usageFilter?.holding !== true;
  }

  end(reason: StreamEnd): void {
    this.wait?.streamEnded();
    // No response body, and no response headers either (SKIP): nothing of the answer comes, and an Envoy 1.37+
    // closes the stream once the request is answered (§2.6). Its usage goes unmeasured as surely as with headers.
    if (this.responseUnsent && this.outcome === 'routed' && this.answerKind === undefined && !this.responseHeadersSkipped && this.state) this.bodyNotSent(['response', 'unmeasured'], this.state.path);
    // A stream whose first message was not its request headers gets its span now.
    const span = this.spanFor(undefined).span;
    const tier = this.state?.route?.tier.name ?? this.pathTier?.name ?? 'none';
    const recording = span.isRecording();
    // Attribute objects are built only for a recording span: with tracing off this runs for nothing.
    if (recording) {
      span.setAttributes({ 'tiergate.tier': tier, 'tiergate.outcome': this.outcome, 'tiergate.stream_end': reason });
      if (this.status !== undefined) span.setAttribute('http.response.status_code', this.status);
    }
    // Passed-through paths leave no row; a request tiergate refused does, whatever its path.
    if (this.pathKind !== 'other' || this.outcome === 'local_reply') {
      this.deps.metrics.requests.inc({ tier, outcome: this.outcome });
      // What the record needs from this moment is taken now; the rest of it is read when the row is built.
      const acc = this.acc;
      const state = this.state;
      const routed = this.outcome === 'routed';
      const traceId = requestTraceId(this.callMetadata, this.state?.headers, span);
      const endedAt = performance.now();
      // An admission still running releases its own reservation when it lands (AdmissionWait).
      const admission = this.wait?.pending ? undefined : state?.admission;
      // A detached request goes on upstream: its concurrent-request slot is left to its lease, which no one renews
      // once this process has gone, rather than freed while the backend still works on it.
      const detached = reason === 'detached';
      if (admission && !detached) this.deps.budgets.streamEnded(admission);
      // A recorded span ends when the row is built, with what the row knows (row-span.ts).
      const rowEnd = recording ? this.spanForRow(span, endedAt) : undefined;
      this.deps.settle(() => acc.record(state, routed, traceId, endedAt, admission, rowEnd, detached), this.runtime);
      if (rowEnd) return;
    }
    span.end();
  }

  private spanForRow(span: Span, endedAt: number): RowSpan {
    const path = this.state?.path ?? '';
    const operation = this.pathKind === 'other' ? undefined : genAiOperation(this.pathKind === 'classify' ? endpointOf(path) : undefined, path);
    return rowSpan(span, endedAt, operation, (this.state?.route?.tier ?? this.pathTier)?.model ?? null);
  }

  /** Every reply tiergate makes, its failure rule's 500 included, names the request: see responseHeaders. */
  replyHeaders(): ReadonlyArray<readonly [string, string]> {
    return this.state ? [[H.requestId, this.state.requestId]] : [];
  }

  private spanFor(request: HeaderMap | undefined): StreamSpan {
    return (this.traced ??= startStreamSpan('ext_proc stream', this.callMetadata, request));
  }

  /**
   * The request's body or trailers came first: Envoy's filter skips the request's headers (processing_mode
   * request_header_mode SKIP, set on the filter or by a route's override; §2.2). Without them tiergate knows
   * neither the caller nor the path. Answered "continue", the request reached whatever route matches without
   * the tier header, carrying the client's own credentials and any routing headers it chose, unchecked and with
   * no row. Refused, as request_body_not_sent is, whatever envoy.failureRule says; the row names no tenant.
   */
  private headersNotSent(): ReplyDecision {
    const state = new StreamRequestState(requestIdOf(NO_HEADERS), this.runtime, '', '', NO_HEADERS, this.deps.log);
    state.tenant = UNAUTHENTICATED;
    this.state = state;
    return this.refuseMode(
      'request_headers_skipped',
      new TiergateError('request_headers_not_sent', "The gateway's proxy sends tiergate no request headers (Envoy ext_proc request_header_mode SKIP), so the request can be neither authenticated nor routed; its operator must set request_header_mode to SEND."),
    );
  }

  /**
   * A filter mode under which no request can be routed: refused whatever envoy.failureRule says (that rule is for
   * a rare fault in one request; this holds for every request on the route), counted, and logged at most once per
   * interval.
   */
  private refuseMode(mode: FilterModeRefused, err: TiergateError, fields: Record<string, unknown> = {}): ReplyDecision {
    this.deps.metrics.filterModeRefused.inc({ mode });
    this.deps.filterWarnings.warn(mode, { event: 'extproc.filter_mode_refused', mode, ...fields, message: FILTER_MODE_ADVICE[mode] });
    return this.reply(err);
  }

  /** Counted, and logged at most once per interval: it holds for every request on the misconfigured route. */
  private bodyNotSent([body, answer]: BodyNotSent, path: string): void {
    this.deps.metrics.bodyNotSent.inc({ body, answer });
    this.deps.filterWarnings.warn(body, {
      event: 'extproc.body_not_sent',
      path,
      body,
      answer,
      message:
        body === 'request'
          ? "Envoy's ext_proc filter sends no request body on this path (processing_mode.request_body_mode NONE); set it to BUFFERED, as envoy/envoy.yaml and the kgateway manifests do"
          : "Envoy's ext_proc filter sends no response body on this path (processing_mode.response_body_mode NONE), so usage goes unmeasured; set it to STREAMED, as envoy/envoy.yaml and the kgateway manifests do, or allow mode overrides (envoy.allowModeOverride)",
    });
  }

  private reply(err: TiergateError): ReplyDecision {
    this.outcome = 'local_reply';
    this.acc.rejected(err.entry.status, err.entry.code);
    this.deps.metrics.localReplies.inc({ status: String(err.entry.status), code: err.entry.code });
    this.state?.log.info({ event: 'request.rejected', status: err.entry.status, code: err.entry.code, param: err.param });
    return replyFor(err);
  }
}

const EMPTY = Buffer.alloc(0);
const FILTER_MODE_ADVICE: Record<FilterModeRefused, string> = {
  request_headers_skipped:
    "Envoy's ext_proc filter sends request bodies without their headers (processing_mode.request_header_mode SKIP); set it to SEND, as envoy/envoy.yaml and the kgateway manifests do",
  request_body_streamed:
    "Envoy's ext_proc filter streams request bodies on this path (processing_mode.request_body_mode STREAMED), which fixes the route before tiergate reads the body; set it to BUFFERED, as envoy/envoy.yaml and the kgateway manifests do, or FULL_DUPLEX_STREAMED",
};
const NO_HEADERS: HeaderMap = Object.freeze({ get: () => undefined, has: () => false });
const AWAIT_BODY: ContinueDecision = Object.freeze({ kind: 'continue', awaitBody: true });
