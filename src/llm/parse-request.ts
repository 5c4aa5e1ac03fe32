// Body bytes → a validated OpenAI request, or a catalogue error that names the offending field.
import { isUtf8 } from 'node:buffer';
import { TiergateError } from '../errors.js';
import { exactView } from './exact-numbers.js';
import { fieldError, outOfRange, paramName } from './field-error.js';
import { chatCompletionRequest, completionRequest, type ChatMessage } from './openai-request.js';
import { keepsBackendState, referencesItems, responsesMessages, responsesRequest, sealedItems } from './responses-request.js';

export type Endpoint = 'chat' | 'completions' | 'responses';

export interface LlmRequest {
  endpoint: Endpoint;
  /** The parsed JSON object, unknown fields kept; mutated copies are made by the route stage. */
  json: Record<string, unknown>;
  /**
   * The same body with each integer JSON.parse would round (beyond 2^53) kept as a marked string of its digits,
   * for the rewritten body and the cache key; undefined unless the body has such an integer (exact-numbers.ts).
   */
  exact: Record<string, unknown> | undefined;
  model: string | undefined;
  stream: boolean;
  /** Chat messages; a completions prompt is presented as one user message, a Responses input as messages. */
  messages: readonly ChatMessage[];
  /** A Responses API turn that keeps or reads state on its backend (responses-request.ts); never classified. */
  stateful: boolean;
  /** A Responses API turn's input items the provider sealed (`encrypted_content`), in order; undefined if none. */
  sealed?: readonly string[];
  /** A Responses API turn whose input names stored items by id (`item_reference`). */
  itemReferences?: true;
  /**
   * A completions request's prompts, when it sends a batch (an array of strings or of token arrays): the backend
   * answers each `n` times. Undefined for a single prompt.
   */
  prompts?: number;
  /** How many tokens a completions prompt gives as token ids, which are its tokens as they are; undefined if none. */
  promptTokenIds?: number;
}

/** limits.maxJsonDepth's default. */
export const DEFAULT_MAX_JSON_DEPTH = 128;

/** `maxDepth`: arrays and objects nested deeper than this (the body itself is level 1) are refused. */
export function parseLlmRequest(endpoint: Endpoint, raw: Buffer, maxDepth = DEFAULT_MAX_JSON_DEPTH): LlmRequest {
  const body = withoutBom(raw);
  // Decoding replaces bytes that are not UTF-8 with U+FFFD, so such a body would reach the backend with the
  // client's text changed, where the backend itself refuses it (JSON is UTF-8: RFC 8259 §8.1; Python's json.loads).
  if (!isUtf8(body)) throw new TiergateError('invalid_json', 'We could not parse the JSON body of your request. The body must be valid JSON, in UTF-8.');
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new TiergateError('invalid_json', 'We could not parse the JSON body of your request. The body must be valid JSON.');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new TiergateError('invalid_request', 'The request body must be a JSON object.');
  }
  // JSON.parse reads any depth, but serialising it again does not: at a few thousand levels JSON.stringify
  // (the body rewrite, the prompt's tool definitions) and the cache key's walk overflow the stack, which was a
  // 500. Refused here instead, once, before any stage walks the body.
  const found = walkBody(json, maxDepth);
  if (found === TOO_DEEP) {
    throw new TiergateError('invalid_request', `The request body nests arrays and objects more than ${maxDepth} levels deep.`);
  }
  const exact = exactView(body);
  // JSON.parse reads a number beyond a double's range (1e400) as Infinity, which the rewritten body would carry
  // as null: the backend would get its default instead of the value, which it would have refused (OpenAI does).
  // An integer of that many digits is kept digit for digit by the exact view, so only that view is judged.
  if (found === OUT_OF_RANGE) {
    const path = pathOfNonFinite(exact ?? json);
    if (path !== undefined) throw outOfRange(paramName(path));
  }
  const { model, stream, messages, stateful, sealed, itemReferences, prompts, promptTokenIds } = endpoint === 'chat' ? chatParts(json) : endpoint === 'completions' ? completionParts(json) : responsesParts(json);
  const request: LlmRequest = { endpoint, json: json as Record<string, unknown>, exact, model, stream: stream === true, messages, stateful: stateful === true };
  if (sealed !== undefined && sealed.length > 0) request.sealed = sealed;
  if (itemReferences === true) request.itemReferences = true;
  if (prompts !== undefined) request.prompts = prompts;
  if (promptTokenIds !== undefined) request.promptTokenIds = promptTokenIds;
  return request;
}

/**
 * The body after a leading UTF-8 byte order mark. JSON may not carry one (RFC 8259 §8.1), but a parser may ignore it,
 * and the backends behind tiergate do: vLLM and other FastAPI servers read bodies with Python's `json.loads`, which
 * takes it off. A body file saved by Windows PowerShell 5.1 (`Out-File -Encoding utf8`) and sent with `curl -d @file`
 * starts with one, as does one written by a .NET StreamWriter on Encoding.UTF8; refusing it would make tiergate
 * the one hop where such a client breaks. The rewritten body goes upstream without it.
 */
export function withoutBom(body: Buffer): Buffer {
  return body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? body.subarray(3) : body;
}

const TOO_DEEP = 1;
const OUT_OF_RANGE = 2;

/**
 * One walk over the parsed body, stopping at the first finding: arrays and objects nested more than `levels` deep
 * (a container is one level; the walk's own recursion is bounded by `levels`), or a number JSON.parse could only
 * read as ±Infinity. 0 when neither. ~3 µs for a 16 KB agent body of 50 messages and 10 tools, against ~37 µs
 * for its JSON.parse (Node 20, warm).
 */
function walkBody(v: unknown, levels: number): number {
  if (typeof v !== 'object' || v === null) return typeof v === 'number' && v - v !== 0 ? OUT_OF_RANGE : 0;
  if (levels === 0) return TOO_DEEP;
  if (Array.isArray(v)) {
    for (const e of v) {
      const found = walkBody(e, levels - 1);
      if (found !== 0) return found;
    }
    return 0;
  }
  for (const k in v) {
    const found = walkBody((v as Record<string, unknown>)[k], levels - 1);
    if (found !== 0) return found;
  }
  return 0;
}

/** Where the first non-finite number is (within the depth limit): its path; undefined if there is none. */
function pathOfNonFinite(v: unknown): PropertyKey[] | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? undefined : [];
  if (typeof v !== 'object' || v === null) return undefined;
  for (const [k, e] of Array.isArray(v) ? v.entries() : Object.entries(v)) {
    const below = pathOfNonFinite(e);
    if (below !== undefined) return [k, ...below];
  }
  return undefined;
}

type Parts = {
  model: string | undefined;
  stream: boolean | null | undefined;
  messages: readonly ChatMessage[];
  stateful?: boolean;
  sealed?: readonly string[];
  itemReferences?: boolean;
  prompts?: number;
  promptTokenIds?: number;
};

function chatParts(json: unknown): Parts {
  const r = chatCompletionRequest.safeParse(json);
  if (!r.success) throw fieldError(r.error, json);
  return { model: r.data.model, stream: r.data.stream, messages: r.data.messages };
}

/**
 * A completions prompt is presented as one user message: its text (a batch's prompts joined with a space), or
 * nothing for token ids, which are counted instead. OpenAI and vLLM read `prompt` four ways: a string, a batch of
 * strings, one prompt of token ids, and a batch of token-id prompts.
 */
function completionParts(json: unknown): Parts {
  const r = completionRequest.safeParse(json);
  if (!r.success) throw fieldError(r.error, json);
  const { model, stream, prompt } = r.data;
  const parts: Parts = { model, stream, messages: [{ role: 'user', content: '' }] };
  if (typeof prompt === 'string') {
    parts.messages = [{ role: 'user', content: prompt }];
  } else if (prompt.every((p) => typeof p === 'string')) {
    parts.messages = [{ role: 'user', content: prompt.join(' ') }];
    parts.prompts = prompt.length;
  } else if (prompt.every((p) => typeof p === 'number')) {
    parts.promptTokenIds = prompt.length;
  } else {
    parts.prompts = prompt.length;
    parts.promptTokenIds = prompt.reduce((sum, ids) => sum + ids.length, 0);
  }
  return parts;
}

function responsesParts(json: unknown): Parts {
  const r = responsesRequest.safeParse(json);
  if (!r.success) throw fieldError(r.error, json);
  return { model: r.data.model, stream: r.data.stream, messages: responsesMessages(r.data), stateful: keepsBackendState(r.data), sealed: sealedItems(r.data), itemReferences: referencesItems(r.data) };
}

/**
 * A chat or completions stream: tiergate asks the backend for its usage chunk (stream_options.include_usage),
 * since without it vLLM and OpenAI report no usage in streams (landscape.md "Streamed spend"). The Responses
 * API always reports usage in its last event and has no such option.
 */
export function usageForced(llm: LlmRequest): boolean {
  return llm.stream && llm.endpoint !== 'responses';
}

/** The client itself asked for the usage chunk (`stream_options.include_usage: true`). */
export function usageAsked(llm: LlmRequest): boolean {
  const opts = llm.json.stream_options;
  return typeof opts === 'object' && opts !== null && (opts as { include_usage?: unknown }).include_usage === true;
}

/**
 * The tools a request declares, for a classifier rule (`moreThanTools`): its `tools` (chat and the Responses
 * API, hosted tools included) plus chat's legacy `functions`. Entries are counted, not checked: the backend
 * judges their shape.
 */
export function declaredTools(llm: LlmRequest): number {
  const count = (v: unknown) => (Array.isArray(v) ? v.length : 0);
  return count(llm.json.tools) + (llm.endpoint === 'chat' ? count(llm.json.functions) : 0);
}
