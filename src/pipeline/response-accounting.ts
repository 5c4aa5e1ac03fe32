// What one request costs: follows the response phases (status, TTFT, body kind, usage) and, when the stream
// is over, hands a plain RequestRecord to the settle step. Everything here is cheap and synchronous; the row
// itself (estimates, cost, sinks) is built after the last answer.
import type { Admission } from '../budget/budgets.js';
import type { Runtime, TierRuntime } from '../config/runtime.js';
import { costOfUsage, withCharacters, type RequestRecord } from '../ledger/build-row.js';
import type { LlmRequest } from '../llm/parse-request.js';
import { messageText } from '../classify/prompt-text.js';
import { bodyDecoder } from '../usage/content-encoding.js';
import { H } from './contract-headers.js';
import { promptExtra, uncountedPromptTokens, type PromptForCount } from '../usage/estimate.js';
import { ResponseUsageCollector, bodyKindFromBytes, bodyKindOf, type BodyKind, type ResponseFacts } from '../usage/response-usage.js';
import { readUsage, type Usage } from '../usage/usage.js';
import type { HeaderMap } from '../extproc/types.js';
import { DEFAULT_TENANT } from '../stages/authenticate.js';
import type { RequestCache, RequestState } from './request-state.js';
import { AnswerAssembler } from '../cache/answer.js';
import { boundedClientText } from '../ledger/client-text.js';
import { userIdHash } from '../ledger/user-hash.js';
import { headerText } from '../extproc/header-codec.js';
import { codePointLength } from '../classify/prompt-text.js';
import { SPEECH_PATH, SpeechRequest } from '../usage/speech-request.js';
import type { RowSpan } from '../telemetry/row-span.js';
import { microUsdOf, type Cost } from '../usage/price-table.js';

/** Values emitted to Envoy as dynamic metadata under the `tiergate` namespace on the final response answer. */
export type UsageMetadata = Record<string, string | number | boolean>;

/**
 * Every key tiergate may emit there: what %DYNAMIC_METADATA(tiergate:KEY)% can read. Kept to what Envoy-side
 * accounting needs (each key is a protobuf Value on every request); tier and tenant are request headers
 * (%REQ(X-LLM-TIER)%), and everything else is in the ledger row.
 */
export const USAGE_METADATA_KEYS = ['input_tokens', 'output_tokens', 'total_tokens', 'cost_usd', 'usage_source'] as const;

export class ResponseAccounting {
  private readonly startedAt = Date.now();
  private readonly startPerf = performance.now();
  private bodyAnsweredAt = 0;
  private gatewayMs = 0;
  private responseHeadersAt = 0;
  private responseEndedAt = 0;
  private httpStatus: number | null = null;
  private collector: ResponseUsageCollector | undefined;
  private facts: ResponseFacts | undefined;
  private trailerUsage: Usage | undefined;
  /** The reported usage's cost, once the response ended (reportedCost). */
  private priced: { cost: Cost | undefined } | undefined;
  /** The answer had a body that is neither JSON nor SSE (audio, a plain-text transcript): nothing in it is counted. */
  private opaqueBody = false;
  /** A text-to-speech request, read for the text it speaks (speech-request.ts). */
  private speech: SpeechRequest | undefined;
  private localReply: { status: number; code: string } | undefined;
  private request:
    | { model: string | null; stream: boolean; chat: boolean; messages: LlmRequest['messages']; promptTokenIds: number; tools: unknown; functions: unknown; user: unknown }
    | undefined;
  private routedTier: TierRuntime | undefined;
  private cache: RequestCache | undefined;
  /** Builds the answer to store, for a cache miss whose answer may be stored. */
  private assembler: AnswerAssembler | undefined;
  /** The response body arrives BUFFERED (whole), so header changes in the body answer still apply. */
  buffered = false;
  /** The request came without a body (a GET): it held nothing to be billed for. */
  private bodiless = false;

  constructor(private readonly runtime: Runtime) {}

  /** Keeps what the row needs from the request before the request data is released. */
  requestDecided(state: RequestState, bodyStartedAt: number): void {
    this.bodyAnsweredAt = performance.now();
    this.gatewayMs = this.bodyAnsweredAt - bodyStartedAt;
    this.cache = state.cache;
    if (state.cache?.save && !state.cache.hit) this.assembler = new AnswerAssembler(this.runtime.config.cache.maxAnswerChars);
    const llm = state.llm;
    if (!llm) return;
    const json = llm.json;
    this.request = {
      model: llm.model ?? null,
      stream: llm.stream,
      chat: llm.endpoint !== 'completions',
      // References, not copies: counted only if the response reports no usage.
      messages: llm.messages,
      promptTokenIds: llm.promptTokenIds ?? 0,
      tools: json.tools,
      functions: json.functions,
      user: json.user,
    };
  }

  /**
   * A request on a path routed without a pipeline run (a fixed tier per path), whose body tiergate does not parse.
   * A text-to-speech request's body is still kept as it passes, for the characters it asks to be spoken.
   */
  fixedPathRequest(tier: TierRuntime | undefined, path: string, bodiless: boolean): void {
    this.routedTier = tier;
    this.bodiless = bodiless;
    // The request is all sent once this is answered: the backend's timings (ttft, provider) start here.
    if (bodiless) this.bodyAnsweredAt = performance.now();
    if (path === SPEECH_PATH && !bodiless) this.speech = new SpeechRequest();
  }

  /**
   * A piece of a request body that was not parsed (fixedPathRequest): kept only for a speech request. Its last
   * piece, passed on, is where the backend's timings start, as a parsed body's answer is (requestDecided).
   */
  unreadRequestBody(chunk: Buffer, endOfStream: boolean): void {
    this.speech?.push(chunk);
    if (endOfStream) this.bodyAnsweredAt = performance.now();
  }

  rejected(status: number, code: string): void {
    this.bodyAnsweredAt ||= performance.now();
    this.localReply = { status, code };
  }

  /** `wholeJson`: a JSON answer is kept and parsed whole; else only its usage is read (ResponseUsageCollector). */
  responseHeaders(headers: HeaderMap, endOfStream: boolean, wholeJson = true): BodyKind {
    this.responseHeadersAt = performance.now();
    this.httpStatus = Number(headers.get(':status') ?? 0) || null;
    const kind = bodyKindOf(headers.get('content-type'));
    this.readAs(kind, bodyDecoder(headers.get(H.contentEncoding)), wholeJson);
    if (endOfStream) this.endResponse();
    return kind;
  }

  /**
   * The answer's body came without its headers (Envoy's response_header_mode SKIP): its kind is read from its
   * first bytes, and it is read as plain bytes (a content coding is not known; a compressed body is not read).
   * Its status stays unknown. Undefined while the bytes so far show no kind (see bodyKindFromBytes).
   */
  headerlessBody(chunk: Buffer, wholeJson: boolean): BodyKind | undefined {
    const kind = bodyKindFromBytes(chunk, this.request?.stream === true);
    if (kind !== undefined) this.readAs(kind, undefined, wholeJson);
    return kind;
  }

  /** Reads the body as `kind` says, JSON or SSE; a body of any other kind is not read (opaqueBody). */
  private readAs(kind: BodyKind, decode: ReturnType<typeof bodyDecoder>, wholeJson: boolean): void {
    if (kind !== 'other') this.collector = new ResponseUsageCollector(kind, undefined, this.assembler, decode, !wholeJson);
  }

  /** The Responses API response's id, once the body has shown it. */
  responseId(): string | undefined {
    return this.collector?.responseId;
  }

  /** Output items the answer sealed, read since the last call (ResponseUsageCollector.takeSealedItems). */
  takeSealedItems(): string[] | undefined {
    return this.collector?.takeSealedItems();
  }

  /** Returns the final answer's metadata when this chunk ends the response. */
  responseBody(chunk: Buffer, endOfStream: boolean): UsageMetadata | undefined {
    if (this.collector) this.collector.push(chunk, endOfStream);
    else if (chunk.length > 0) this.opaqueBody = true;
    if (!endOfStream) return undefined;
    this.endResponse();
    return this.metadata();
  }

  responseTrailers(trailers: HeaderMap): UsageMetadata {
    const name = this.runtime.config.usage.trailer;
    const value = name ? trailers.get(name) : undefined;
    if (value) {
      try {
        this.trailerUsage = readUsage(JSON.parse(value));
      } catch {
        // A malformed trailer is ignored: the body's usage (or an estimate) still counts.
      }
    }
    this.endResponse();
    return this.metadata();
  }

  ttftMs(): number | null {
    return this.responseHeadersAt > 0 && this.bodyAnsweredAt > 0 ? this.responseHeadersAt - this.bodyAnsweredAt : null;
  }

  /** Usage the upstream reported, once the response is over. */
  reportedUsage(): Usage | undefined {
    return this.trailerUsage ?? this.facts?.usage;
  }

  private endResponse(): void {
    this.responseEndedAt = performance.now();
    this.facts = this.collector?.finish();
  }

  /**
   * What the reported usage charges once the response is over, as its row will count it (build-row.ts): the
   * tenant's reservation is settled with it at once (LlmStream), not when the row is built a ledger batch later.
   * Undefined without reported usage: an estimate needs the tokenizer, and waits for the row.
   */
  reportedCharge(): { tokens: number; microUsd: number | undefined } | undefined {
    const usage = this.reportedUsage();
    return usage && { tokens: usage.totalTokens, microUsd: microUsdOf(this.reportedCost(usage)?.total) };
  }

  /** Priced once: the final answer's metadata and the budget's settle both read it, after the response ended. */
  private reportedCost(usage: Usage): Cost | undefined {
    this.priced ??= { cost: costOfUsage(this.runtime.prices, withCharacters(usage, this.inputCharacters()), this.facts, this.routedTier?.model ?? null) };
    return this.priced.cost;
  }

  /** Reported numbers only: an estimate needs the tokenizer, which never runs on the answer path. */
  private metadata(): UsageMetadata {
    const usage = this.reportedUsage();
    if (!usage) return { usage_source: 'none_reported' };
    const cost = this.reportedCost(usage);
    const md: UsageMetadata = {
      input_tokens: usage.inputTokens,
      output_tokens: usage.outputTokens,
      total_tokens: usage.totalTokens,
      usage_source: 'reported',
    };
    if (cost) md.cost_usd = cost.total;
    return md;
  }

  /** For paths routed without a pipeline run (a fixed tier per path). */
  routed(tier: TierRuntime | undefined): void {
    this.routedTier = tier;
  }

  /** The stream ended at `endedAt` (performance.now()): everything the ledger row needs, as plain values. */
  record(state: RequestState | undefined, upstreamCalled: boolean, traceId: string | null, endedAt: number, admission: Admission | undefined, span?: RowSpan, detached = false): RequestRecord {
    const route = state?.route;
    const tier = route?.tier ?? this.routedTier;
    const ledger = this.runtime.config.ledger;
    const c = route?.classification;
    const answeredTier = this.facts?.model === undefined ? undefined : this.tierOfModel(this.facts.model);
    const facts = this.facts ?? this.collector?.finish();
    return {
      requestId: state?.requestId ?? '',
      startedAt: this.startedAt,
      traceId,
      tenant: state?.tenant || DEFAULT_TENANT,
      // An empty header names no feature: null, as when it is absent.
      featureId: boundedClientText(headerText(state?.headers.get(state.policy.featureHeader)) || null),
      // The header's text, so that one user has one hash, whether named by the header or by the body's `user`.
      // An empty header names nobody: the body's `user`, if any, does.
      userIdHash: userIdHash(headerText(state?.headers.get(ledger.userHeader)) || this.request?.user, ledger.userHashKey),
      rateLimitTier: state?.policy.plan ?? null,
      modelAlias: boundedClientText(this.request?.model ?? null),
      // A refused request leaves a row whatever its path, and anyone can be refused: bounded like the rest.
      path: boundedClientText(state?.path ?? ''),
      stream: this.request?.stream ?? false,
      tier: tier?.name ?? null,
      routedModel: tier?.model ?? null,
      provider: tier?.provider ?? null,
      classifierVersion: c?.version ?? (route ? route.source : null),
      classifierRule: c?.rule ?? null,
      classifierReason: c?.reason ?? null,
      cache: this.cache ? { hit: this.cache.hit?.answer, lookupMs: this.cache.lookupMs } : undefined,
      cacheSave: this.cacheSave(),
      shadowTier: route?.shadow?.tier ?? null,
      shadowReason: route?.shadow ? `${route.shadow.version} ${route.shadow.reason}` : null,
      upstreamCalled,
      localReply: this.localReply,
      httpStatus: this.httpStatus,
      refusedWithoutStatus: this.responseHeadersAt === 0 && this.collector?.kind === 'json' && facts?.errorCode !== undefined,
      responseEnded: this.responseEndedAt > 0,
      detached,
      facts,
      requestUnread: this.request === undefined && !this.bodiless,
      answerUnread: this.opaqueBody || facts?.unread === true,
      inputCharacters: this.inputCharacters(),
      trailerUsage: this.trailerUsage,
      prompt: () => this.promptForCount(),
      admission,
      span,
      fallbackUsed: answeredTier !== undefined && tier !== undefined && answeredTier !== tier.name,
      timings: {
        gatewayMs: this.gatewayMs,
        ttftMs: this.ttftMs(),
        providerMs: this.responseEndedAt > 0 && this.bodyAnsweredAt > 0 ? this.responseEndedAt - this.bodyAnsweredAt : null,
        totalMs: endedAt - this.startPerf,
      },
    };
  }

  /**
   * A miss's answer to store, taken once its response has ended as a complete, normal 200: LlmStream stores it
   * then, before the end reaches the client, so that the same request sent the moment the answer arrives is a
   * hit. (Stored with the ledger row instead, a batch later, it was up to ~100 ms away: a script or an agent
   * repeating a request at once missed.) The row's record then has nothing more to store.
   */
  takeCacheSave(): RequestRecord['cacheSave'] {
    const save = this.cacheSave();
    if (!save?.entry) return undefined;
    // Its work is done: the record finds no assembler, so nothing to store, and the answer's parts are freed.
    this.assembler = undefined;
    return save;
  }

  /** A miss whose answer may be stored: the entry when the response was a complete, normal 200; else null. */
  private cacheSave(): RequestRecord['cacheSave'] {
    const save = this.cache?.save;
    if (!save || !this.assembler) return undefined;
    const facts = this.facts;
    const whole = this.httpStatus === 200 && this.responseEndedAt > 0 && facts?.complete === true && facts.errorCode === undefined;
    const answer = whole ? this.assembler.answer() : undefined;
    return { ...save, entry: answer ? { answer, storedAt: Date.now() } : null };
  }

  /** The tier whose model answered: exact, or a dated snapshot of it (gpt-4o-mini → gpt-4o-mini-2024-07-18). */
  private tierOfModel(model: string): string | undefined {
    for (const t of this.runtime.tiers.values()) if (model === t.model || model.startsWith(`${t.model}-`)) return t.name;
    return undefined;
  }

  private promptForCount(): PromptForCount | undefined {
    const r = this.request;
    if (!r) {
      // A speech request's text and instructions are its prompt (gpt-4o-mini-tts bills them as text tokens).
      const spoken = this.speech?.text();
      return spoken && { texts: spoken.instructions ? [spoken.input, spoken.instructions] : [spoken.input], extra: '', chat: false, uncountedTokens: 0 };
    }
    return { texts: r.messages.map(messageText), extra: promptExtra(r, r.messages), chat: r.chat, uncountedTokens: uncountedPromptTokens(r.messages, r.promptTokenIds, this.runtime.config.budgets.mediaPartEstimate) };
  }

  /** Characters of text a speech request asked to be spoken (0 for any other request). */
  private inputCharacters(): number {
    const spoken = this.speech?.text();
    return spoken ? codePointLength(spoken.input) : 0;
  }
}
