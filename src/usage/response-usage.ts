// Follows one response body, chunk by chunk, and keeps what the ledger needs: the usage the server reported,
// the model that answered, the finish reason, an error code, and the generated text (to estimate usage when
// none is reported). JSON bodies are kept until they end, or, when only their usage matters (embeddings), read
// for it as they pass; SSE bodies go through the incremental parser and only the text deltas are kept.
import { CLIENT_CALLS } from '../llm/client-tools.js';
import { SseParser, type SseEvent } from '../llm/sse-parser.js';
import type { BodyDecoder, StreamDecoder } from './content-encoding.js';
import type { ToolCalls } from './price-table.js';
import { readUsage, type Usage } from './usage.js';
import { boundedClientText } from '../ledger/client-text.js';
import { TopLevelMembers } from './top-level-members.js';

export type BodyKind = 'json' | 'sse' | 'other';

export interface ResponseFacts {
  usage: Usage | undefined;
  model: string | undefined;
  /** The service tier the response says served it (OpenAI's `service_tier`: default, flex, priority, scale). */
  serviceTier: string | undefined;
  /**
   * Why the answer ended, as it says: a choice's `finish_reason` (the last one named), or a Responses API
   * response's status, or for an incomplete one the reason it gives (`max_output_tokens`, `content_filter`).
   */
  finishReason: string | undefined;
  /** What an error body or an SSE error event calls its error (errorName), UNNAMED_ERROR when nothing. */
  errorCode: string | undefined;
  /** Generated text (content, reasoning, tool-call arguments), for estimating when no usage came. */
  outputText: string;
  /** Characters of generated text seen, including any beyond the kept maximum. */
  outputChars: number;
  /** JSON: the body parsed; SSE: `data: [DONE]` arrived (a Responses API stream: its final event). */
  complete: boolean;
  /** Hosted tool calls a Responses API answer made (web searches, file searches…), by output item type. */
  toolCalls: ToolCalls | undefined;
  /** The body was not read (too large, or in a coding that cannot be undone): what it generated is not known. */
  unread: boolean;
}

/** An error that names itself neither by code nor by type. */
export const UNNAMED_ERROR = 'upstream_error';

/**
 * An error's name for the row: its `code` when that is a string (OpenAI's codes, e.g. "rate_limit_exceeded"),
 * else its `type` (vLLM's `code` is the HTTP status as a number, its `type` says "BadRequestError").
 */
function errorName(e: Record<string, unknown>): string {
  for (const v of [e.code, e.type]) if (typeof v === 'string' && v.length > 0) return boundedClientText(v);
  return UNNAMED_ERROR;
}

/** More generated text than this is counted, not kept: the estimate scales from the kept part. */
const MAX_TEXT_CHARS = 4 * 1024 * 1024;

export function bodyKindOf(contentType: string | undefined): BodyKind {
  const ct = (contentType ?? '').toLowerCase();
  if (ct.includes('text/event-stream')) return 'sse';
  if (ct.includes('json')) return 'json';
  return 'other';
}

/** The bytes an SSE stream's first line can start with: a field (data, event, id, retry) or a comment. */
const SSE_FIRST_BYTES: ReadonlySet<number> = new Set([0x64, 0x65, 0x69, 0x72, 0x3a]);
const JSON_WHITESPACE: ReadonlySet<number> = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * The kind of an answer that came without its headers, from its first bytes: an object is JSON (a whole answer,
 * or a streamed request's error), and a request that asked for a stream gets SSE. Anything else, compressed
 * bytes included (gzip and zstd start with bytes no JSON or SSE body does), is not read. Undefined while the
 * bytes so far are only whitespace, which neither kind's reader needs.
 */
export function bodyKindFromBytes(chunk: Buffer, streamed: boolean): BodyKind | undefined {
  for (const b of chunk) {
    if (JSON_WHITESPACE.has(b)) continue;
    if (b === 0x7b) return 'json';
    return streamed && SSE_FIRST_BYTES.has(b) ? 'sse' : 'other';
  }
  return undefined;
}

/** Sees every object the collector parses (the response cache assembles its answer from them). */
export interface ResponseObserver {
  body(o: Record<string, unknown>): void;
  chunk(o: Record<string, unknown>): void;
  /** Something was not readable (a non-JSON event, a body too large to parse): the answer is not whole. */
  spoil(): void;
}

/** What the ledger reads from a JSON answer that is not kept whole (readCommon). */
const ROW_MEMBERS: ReadonlySet<string> = new Set(['usage', 'model', 'error']);

export class ResponseUsageCollector {
  private readonly sse: SseParser | undefined;
  /** A JSON answer read only for its top-level usage, model and error, as it streams past (`membersOnly`). */
  private readonly members: TopLevelMembers | undefined;
  /** The body's content codings, undone as it streams past; undefined for a plain body. */
  private readonly decoder: StreamDecoder | undefined;
  private chunks: Buffer[] = [];
  /** Plain bytes of the body read so far (after its codings are undone). */
  private bytes = 0;
  /** The body is not read (too large, or in a coding that cannot be undone). */
  private givenUp = false;
  private readonly text: string[] = [];
  private textChars = 0;
  private outputChars = 0;
  private usage: Usage | undefined;
  private model: string | undefined;
  private serviceTier: string | undefined;
  /** The service tier as the backend last sent it (serviceTier is its bounded form). */
  private serviceTierSent: string | undefined;
  private finishReason: string | undefined;
  private errorCode: string | undefined;
  private toolCalls: Record<string, number> | undefined;
  /** Output items the answer sealed (`encrypted_content`) not yet taken (takeSealedItems), and all seen. */
  private sealed: string[] | undefined;
  private sealedSeen: Set<string> | undefined;
  private done = false;
  private finished: ResponseFacts | undefined;
  /** A Responses API response's id, as soon as it is known (a stream's first event; a JSON body when whole). */
  responseId: string | undefined;

  constructor(
    readonly kind: BodyKind,
    /** JSON bodies and SSE events above this are not parsed (Envoy's own buffer limit bounds BUFFERED bodies anyway). */
    private readonly maxJsonBytes = 32 * 1024 * 1024,
    private readonly observer?: ResponseObserver,
    /**
     * The body's content codings (content-encoding.ts): undefined for a plain body; a decoder that undoes them
     * piece by piece, so the body is read as a plain one would be; null for a coding that cannot be undone,
     * whose body is not read at all.
     */
    decode?: BodyDecoder | null,
    /**
     * False: a JSON answer is kept and parsed whole (chat, completions, responses: their text and choices matter,
     * and Envoy's buffer bounds them). True: only its top-level usage, model and error are read as the bytes pass
     * (top-level-members.ts), whatever its size (an embeddings batch, tens of MB of vectors).
     */
    membersOnly = false,
  ) {
    // An event too large to keep is lost, and with it the answer's wholeness (and its usage, if it held it).
    if (kind === 'sse') this.sse = new SseParser((e) => this.onEvent(e), maxJsonBytes, () => this.observer?.spoil());
    if (kind === 'json' && membersOnly) {
      this.members = new TopLevelMembers(ROW_MEMBERS);
      this.observer?.spoil(); // never assembled into an answer to replay
    }
    if (decode === null) this.unreadable();
    // Corrupt input: what was read before it stands (a stream's text, a usage chunk already seen); the answer
    // is not whole, and a JSON body kept for parsing is not read.
    else if (decode) this.decoder = decode((plain) => this.read(plain, false), () => (this.kind === 'json' ? this.unreadable() : this.observer?.spoil()));
  }

  /** `last`: the body ends with this chunk, which is then read before push returns (so it is not copied). */
  push(chunk: Buffer, last = false): void {
    if (this.finished || chunk.length === 0 || this.givenUp) return;
    if (this.decoder) this.decoder.write(chunk);
    else this.read(chunk, last);
  }

  /**
   * Plain bytes of the body. `owned`: the buffer may be kept as it is (the last chunk, read before push returns);
   * the transport's buffers and the decompressors' output are copied when kept.
   */
  private read(plain: Buffer, owned: boolean): void {
    if (this.givenUp) return;
    this.bytes += plain.length;
    if (this.sse) this.sse.push(plain);
    else if (this.members) this.members.push(plain);
    else if (this.kind === 'json') this.keep(plain, owned);
  }

  /** Holds a chunk of a JSON body until the body ends. */
  private keep(chunk: Buffer, owned: boolean): void {
    if (this.bytes > this.maxJsonBytes) return this.unreadable();
    // Copied unless it is read right now or is ours: the transport's buffer is not ours to keep.
    this.chunks.push(owned ? chunk : Buffer.from(chunk));
  }

  /** The body cannot be read (too large, corrupt, or encoded in a way tiergate cannot undo): usage will be estimated. */
  private unreadable(): void {
    this.givenUp = true;
    this.observer?.spoil();
    this.chunks = [];
  }

  /** The body ended (or the stream did): returns what was learned. Idempotent. */
  finish(): ResponseFacts {
    if (this.finished) return this.finished;
    if (!this.givenUp) this.decoder?.end(); // what the decompressors still hold
    if (this.sse) this.sse.end();
    // An empty body showed nothing and hid nothing: it is not parsed, and not unread.
    else if (this.members && !this.givenUp && this.bytes > 0) this.onMembers(this.members.finish());
    else if (this.kind === 'json' && !this.givenUp && this.chunks.length > 0) {
      const body = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
      this.onJson(body.toString('utf8'));
    }
    this.chunks = [];
    this.finished = {
      usage: this.usage,
      model: this.model,
      serviceTier: this.serviceTier,
      finishReason: this.finishReason,
      errorCode: this.errorCode,
      outputText: this.text.join(''),
      outputChars: this.outputChars,
      complete: this.done,
      toolCalls: this.toolCalls,
      unread: this.givenUp,
    };
    return this.finished;
  }

  private onJson(text: string): void {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      // A JSON answer that does not parse (cut short by a proxy, a backend's bug) shows nothing of what was
      // generated: unread, as an HTML page would be, so its estimate is not priced as the prompt alone.
      return this.unreadable();
    }
    if (!isObject(body)) return this.unreadable();
    this.done = true;
    if (body.object === 'response') return this.onResponse(body);
    // A compaction's answer: its history replaced by items, one of them sealed.
    if (body.object === 'response.compaction') this.noteSealedItems(body.output);
    this.observer?.body(body);
    this.readCommon(body);
    // The generated text is only needed to estimate a missing usage.
    const wantText = this.usage === undefined;
    for (const choice of arrayOf(body.choices)) {
      if (!isObject(choice)) continue;
      this.noteFinish(choice);
      if (!wantText) continue;
      if (typeof choice.text === 'string') this.addText(choice.text);
      if (isObject(choice.message)) this.addMessageText(choice.message);
    }
  }

  /** The top-level members of a JSON answer not kept whole; undefined when it was not a whole JSON object. */
  private onMembers(members: Record<string, unknown> | undefined): void {
    if (!members) return this.unreadable();
    this.done = true;
    this.readCommon(members);
  }

  private onEvent(e: SseEvent): void {
    if (e.data === '[DONE]') {
      this.done = true;
      return;
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(e.data);
    } catch {
      this.observer?.spoil();
      return; // not JSON: nothing to account for (the client still gets it unchanged)
    }
    if (!isObject(chunk)) return this.observer?.spoil();
    if (typeof chunk.type === 'string' && (chunk.type.startsWith('response.') || chunk.type === 'error')) return this.onResponsesEvent(chunk, chunk.type);
    this.observer?.chunk(chunk);
    this.readCommon(chunk);
    // A speech stream's last event (`stream_format: "sse"`): what it generated is the audio, reported as output
    // tokens without details (should details come, they say which part).
    const u = this.usage;
    if (chunk.type === 'speech.audio.done' && u && u.audioOutputTokens === 0) this.usage = { ...u, audioOutputTokens: u.outputTokens };
    for (const choice of arrayOf(chunk.choices)) {
      if (!isObject(choice)) continue;
      this.noteFinish(choice);
      if (typeof choice.text === 'string') this.addText(choice.text);
      if (isObject(choice.delta)) this.addMessageText(choice.delta);
    }
  }

  /**
   * A whole Responses API response (`object: "response"`): usage, model and error as in chat; the generated text
   * from its output items. Never stored in the response cache (the API keeps state on the backend).
   */
  private onResponse(body: Record<string, unknown>): void {
    this.observer?.spoil();
    if (typeof body.id === 'string') this.responseId = body.id;
    this.readCommon(body);
    this.countToolCalls(body.output);
    this.noteSealedItems(body.output);
    this.finishReason = endReason(body) ?? this.finishReason;
    if (this.usage !== undefined) return;
    for (const item of arrayOf(body.output)) {
      if (!isObject(item)) continue;
      if (typeof item.arguments === 'string') this.addText(item.arguments); // function calls
      for (const k of ['content', 'summary'] as const) {
        for (const part of arrayOf(item[k])) {
          if (!isObject(part)) continue;
          const text = part.text ?? part.refusal;
          if (typeof text === 'string') this.addText(text);
        }
      }
    }
  }

  /**
   * A Responses API stream event. Such a stream has no `[DONE]`: it ends with response.completed, .incomplete or
   * .failed, whose `response` carries the usage (and, when failed, the error). The text comes from the deltas.
   */
  private onResponsesEvent(e: Record<string, unknown>, type: string): void {
    this.observer?.spoil();
    if (type === 'error') {
      // Its `type` is the event's ("error"), not the error's: only the code names it.
      this.errorCode = errorName({ code: e.code });
      return;
    }
    if (isObject(e.response)) {
      if (this.responseId === undefined && typeof e.response.id === 'string') this.responseId = e.response.id;
      this.readCommon(e.response);
      if (RESPONSE_ENDS.has(type)) {
        this.done = true;
        this.finishReason = endReason(e.response) ?? this.finishReason;
        // The final event carries the whole response, its output items included.
        this.countToolCalls(e.response.output);
        this.noteSealedItems(e.response.output);
      }
      return;
    }
    // Each output item, whole, as it is done: a sealed one shows here before the stream ends.
    if (type === 'response.output_item.done') return this.noteSealedItems([e.item]);
    if (TEXT_DELTAS.has(type) && typeof e.delta === 'string') this.addText(e.delta);
  }

  /**
   * The calls a provider ran itself: output items whose type ends in `_call`, except the calls a client runs
   * (client-tools.ts). What each costs is the price table's (prices.toolCalls); the row shows them all. The
   * types are the backend's words, so they are bounded like its other strings, and so is how many are kept.
   */
  private countToolCalls(output: unknown): void {
    for (const item of arrayOf(output)) {
      if (!isObject(item) || typeof item.type !== 'string' || !item.type.endsWith('_call') || CLIENT_CALLS.has(item.type)) continue;
      const calls = (this.toolCalls ??= Object.create(null) as Record<string, number>);
      const type = boundedClientText(item.type);
      if (calls[type] === undefined && Object.keys(calls).length >= MAX_TOOL_CALL_TYPES) continue;
      calls[type] = (calls[type] ?? 0) + 1;
    }
  }

  /**
   * Output items the backend sealed (`encrypted_content`: reasoning when the request asked for it, a compaction's
   * item): a later turn sends them back, and only this tier's backend can read them (response affinity records
   * where they are). Each once, whether seen in its output_item.done event, the final response or both; at most
   * MAX_SEALED_ITEMS per answer.
   */
  private noteSealedItems(output: unknown): void {
    for (const item of arrayOf(output)) {
      if (!isObject(item) || typeof item.encrypted_content !== 'string' || item.encrypted_content.length === 0) continue;
      const seen = (this.sealedSeen ??= new Set());
      if (seen.has(item.encrypted_content) || seen.size >= MAX_SEALED_ITEMS) continue;
      seen.add(item.encrypted_content);
      (this.sealed ??= []).push(item.encrypted_content);
    }
  }

  /** Sealed output items read since the last call (in the answer's order), or undefined if none. */
  takeSealedItems(): string[] | undefined {
    const taken = this.sealed;
    this.sealed = undefined;
    return taken;
  }

  /** Fields chunks and whole bodies share: model, service tier and usage (the last non-null one wins), error. */
  private readCommon(o: Record<string, unknown>): void {
    // What the backend says goes into the row as it is, bounded like a client's strings (client-text.ts).
    if (this.model === undefined && typeof o.model === 'string' && o.model.length > 0) this.model = boundedClientText(o.model);
    // The last one: a Responses API stream's first event repeats what the request asked for (`auto`), its final
    // event names the tier that served it.
    // Compared as sent, so a stream that repeats it on every chunk bounds it once, not per chunk.
    const tier = o.service_tier;
    if (typeof tier === 'string' && tier.length > 0 && tier !== this.serviceTierSent) {
      this.serviceTierSent = tier;
      this.serviceTier = boundedClientText(tier);
    }
    if (o.usage != null) this.usage = readUsage(o.usage) ?? this.usage;
    // OpenAI's shape nests the error; older vLLM (and servers copied from it) send it as the body itself.
    const error = isObject(o.error) ? o.error : o.object === 'error' ? o : undefined;
    if (error) this.errorCode = errorName(error);
  }

  private noteFinish(choice: Record<string, unknown>): void {
    // The backend's words, bounded as its model and error code are: they reach the row and the span.
    if (typeof choice.finish_reason === 'string') this.finishReason = boundedClientText(choice.finish_reason);
  }

  /** A chat message or delta: content (string or parts), reasoning, refusal, tool-call arguments. */
  private addMessageText(m: Record<string, unknown>): void {
    const c = m.content;
    if (typeof c === 'string') this.addText(c);
    else for (const p of arrayOf(c)) if (isObject(p) && typeof p.text === 'string') this.addText(p.text);
    // vLLM sends its thinking as `reasoning` and, while the old name is deprecated, the same text again as
    // `reasoning_content`: counted once, or an estimate would bill the thinking twice.
    const reasoning = m.reasoning;
    if (typeof reasoning === 'string') this.addText(reasoning);
    if (typeof m.reasoning_content === 'string' && m.reasoning_content !== reasoning) this.addText(m.reasoning_content);
    if (typeof m.refusal === 'string') this.addText(m.refusal);
    for (const call of arrayOf(m.tool_calls)) {
      if (!isObject(call) || !isObject(call.function)) continue;
      const f = call.function;
      if (typeof f.name === 'string') this.addText(f.name);
      if (typeof f.arguments === 'string') this.addText(f.arguments);
    }
  }

  private addText(s: string): void {
    if (s.length === 0) return;
    this.outputChars += s.length;
    if (this.textChars + s.length > MAX_TEXT_CHARS) return;
    this.textChars += s.length;
    this.text.push(s);
  }
}

/** Sealed items recorded per answer: a reasoning item per model call in it (a turn with tool calls has several). */
const MAX_SEALED_ITEMS = 64;
/** Distinct hosted tool call types kept per answer (OpenAI has a handful). */
const MAX_TOOL_CALL_TYPES = 16;
/** The events that end a Responses API stream. */
const RESPONSE_ENDS: ReadonlySet<string> = new Set(['response.completed', 'response.incomplete', 'response.failed']);
/** Responses API events whose `delta` is generated text (not audio or images, whose deltas are base64 data). */
const TEXT_DELTAS: ReadonlySet<string> = new Set([
  'response.output_text.delta',
  'response.refusal.delta',
  'response.function_call_arguments.delta',
  'response.custom_tool_call_input.delta',
  'response.reasoning_text.delta',
  'response.reasoning_summary_text.delta',
]);

/**
 * Why a Responses API response ended: its status, or for an incomplete one the reason it gives, which is what
 * says the output was cut (`max_output_tokens`) or withheld (`content_filter`).
 */
function endReason(response: Record<string, unknown>): string | undefined {
  const { status, incomplete_details: details } = response;
  if (status === 'incomplete' && isObject(details) && typeof details.reason === 'string') return boundedClientText(details.reason);
  return typeof status === 'string' ? boundedClientText(status) : undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function arrayOf(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : [];
}
