// What makes two requests "the same question" for the cache. The exact key hashes everything that can change
// an answer: tenant, namespace version, tier and upstream model, the normalised conversation and the answer-
// changing parameters. The tenant and namespace are inside the hash *and* in the store key's prefix, so no
// lookup can ever reach another tenant's entries.
import { createHash } from 'node:crypto';
import type { ChatMessage } from '../llm/openai-request.js';
import type { LlmRequest } from '../llm/parse-request.js';
import { withoutTrailing } from '../trailing-run.js';

export interface CacheScope {
  tenant: string;
  /** The tenant's namespace version: bumping it (config) orphans every earlier entry. */
  namespace: string;
  tier: string;
  /** The upstream model id the request is routed to. */
  model: string;
}

/**
 * Request fields that cannot change the answer: how it is delivered (stream, stream_options), who asked and
 * how it is billed or logged (user, metadata, store, safety_identifier, service_tier), and hints to the
 * backend's scheduler and prefix cache (prompt_cache_key, priority, cache_salt, request_id). Every other field
 * is part of the key, including ones tiergate has never heard of: vLLM's `guided_choice`, `structured_outputs`,
 * `chat_template_kwargs` or `top_k` change the answer as surely as `temperature` does, and a key that left an
 * unknown field out would serve one request the answer to another. An unknown field that does not matter costs
 * a miss; one left out that does would cost a wrong answer. `model` is the scope's routed model, `messages` is
 * keyed normalised.
 */
const NOT_ANSWER_PARAMS = new Set([
  'model', 'messages', 'stream', 'stream_options', 'user', 'metadata', 'store', 'safety_identifier', 'service_tier',
  'prompt_cache_key', 'prompt_cache_retention', 'priority', 'cache_salt', 'request_id',
]);

export type Uncacheable = 'endpoint' | 'tools' | 'unsupported';

/** Why a request cannot use the cache at all, or undefined when it can. */
export function uncacheable(llm: LlmRequest, allowTools: boolean): Uncacheable | undefined {
  if (llm.endpoint !== 'chat') return 'endpoint';
  const j = llm.json;
  if (!allowTools && (j.tools != null || j.functions != null)) return 'tools';
  // Log probabilities and audio are not kept with an answer, so a replay could not reproduce them.
  if (j.logprobs === true || j.top_logprobs != null || j.audio != null) return 'unsupported';
  if (Array.isArray(j.modalities) && j.modalities.some((m) => m !== 'text')) return 'unsupported';
  return undefined;
}

/**
 * A message as the key sees it. Content as text parts (a string and a one-part text array are the same
 * question); other parts verbatim. Tool-call ids are renamed by order of appearance: backends mint them at
 * random, and two conversations that differ only in those ids ask the same thing.
 */
function normalised(messages: readonly ChatMessage[], raw: readonly unknown[]): unknown[] {
  const ids = new Map<string, string>();
  const rename = (id: unknown) => {
    if (typeof id !== 'string') return null;
    let n = ids.get(id);
    if (n === undefined) ids.set(id, (n = `#${ids.size}`));
    return n;
  };
  return messages.map((m, i) => {
    const c = m.content;
    const content = typeof c === 'string' ? [['text', c]] : Array.isArray(c) ? c.map((p) => (p.type === 'text' && typeof p.text === 'string' ? ['text', p.text] : ['part', p])) : null;
    const r = raw[i] as { tool_calls?: unknown } | undefined;
    const toolCalls = Array.isArray(r?.tool_calls) ? r.tool_calls : m.tool_calls;
    const calls = Array.isArray(toolCalls) ? toolCalls.map((t) => callOf(t, rename)) : null;
    return [m.role, content, m.name ?? null, calls, m.tool_call_id === undefined ? null : rename(m.tool_call_id), extrasOf(raw[i])];
  });
}

/**
 * A tool call as the key sees it: its id renamed, every other field verbatim. Not only `function`'s name and
 * arguments: a custom tool's call carries its input in `custom`, and providers add fields of their own (Gemini's
 * thought signatures in `extra_content`), each part of what the model is shown. A call without a type is a
 * function call, as the API reads it.
 */
function callOf(t: unknown, rename: (id: unknown) => string | null): unknown {
  if (typeof t !== 'object' || t === null || Array.isArray(t)) return t;
  const rest = fields();
  for (const [k, v] of Object.entries(t)) if (k !== 'id' && v != null) rest[k] = v;
  rest.type ??= 'function';
  return [rename((t as { id?: unknown }).id), rest];
}

/** The message fields normalised() reads itself; extrasOf() keeps the rest. */
const READ_MESSAGE_FIELDS = new Set(['role', 'content', 'name', 'tool_calls', 'tool_call_id']);

/**
 * A message's other fields, verbatim: an assistant turn's `reasoning` (vLLM passes it back into the chat
 * template for interleaved thinking), a legacy `function_call`, or anything else a backend may read. Nulls and
 * empty arrays are left out: an SDK that echoes a response's message back sends `refusal: null` and
 * `annotations: []`, which say nothing, where another client sends nothing.
 */
function extrasOf(m: unknown): Record<string, unknown> | null {
  if (typeof m !== 'object' || m === null) return null;
  let out: Record<string, unknown> | null = null;
  for (const k of Object.keys(m)) {
    const v = (m as Record<string, unknown>)[k];
    if (READ_MESSAGE_FIELDS.has(k) || v == null || (Array.isArray(v) && v.length === 0)) continue;
    (out ??= fields())[k] = v;
  }
  return out;
}

/**
 * JSON with object keys sorted at every depth: equal values always serialise alike. One native JSON.stringify of
 * the value with its objects' keys put in order: built as a string piece by piece instead, it cost 300-380 ms for
 * a conversation of 200,000 short messages (7 MB), twice per request with the semantic cache on, while every
 * other stream of the process waited (`npm run bench:large-bodies`).
 */
export function canonical(v: unknown): string {
  return JSON.stringify(keysInOrder(v)) ?? 'null';
}

/**
 * `v` with every object's keys in sorted order: the value itself where that is already so (the usual case: the
 * key's own arrays, a client's objects written in order), a copy only of the objects that were not and of the
 * arrays and objects holding them. JSON.stringify writes keys in the order Object.keys gives them, which is
 * insertion order except for array-index keys ("2", "10"), always first and in numeric order: an object with
 * such keys (a `logit_bias`) comes out in that order whatever order the client wrote, which is just as canonical.
 */
function keysInOrder(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const e: unknown = v[i];
      if (e === null || typeof e !== 'object') continue;
      const ordered = keysInOrder(e);
      if (ordered !== e) (copy ??= v.slice())[i] = ordered;
    }
    return copy ?? v;
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  let inOrder = true;
  let values: unknown[] | undefined;
  for (let i = 0; i < keys.length; i++) {
    const value = o[keys[i] as string];
    const ordered = keysInOrder(value);
    if (ordered !== value) (values ??= keys.map((k) => o[k]))[i] = ordered;
    if (i > 0 && (keys[i - 1] as string) > (keys[i] as string)) inOrder = false;
  }
  if (inOrder && values === undefined) return o;
  const at = new Map(keys.map((k, i) => [k, values ? values[i] : o[k]]));
  // No prototype: a `__proto__` key (JSON.parse makes it an own key) is copied as a field like any other.
  const copy = fields();
  for (const k of keys.sort()) copy[k] = at.get(k);
  return copy;
}

/**
 * An object for copied request fields: without a prototype, so a `__proto__` key (JSON.parse makes it an own
 * key) is copied as a field like any other instead of setting the prototype and dropping out of the key.
 */
const fields = (): Record<string, unknown> => Object.create(null) as Record<string, unknown>;

function params(llm: LlmRequest): Record<string, unknown> {
  const out = fields();
  // Integers beyond 2^53 as the client wrote them (parse-request.ts `exact`): two seeds that differ only in
  // digits JSON.parse drops are different questions.
  const j = llm.exact ?? llm.json;
  for (const k of Object.keys(j)) if (!NOT_ANSWER_PARAMS.has(k) && j[k] != null) out[k] = j[k];
  return out;
}

/**
 * The chat messages as the client sent them (integers beyond 2^53 digit for digit), for the fields the schema's
 * copy leaves out (zod does not copy a `__proto__` key; the backend gets it all the same).
 */
function rawMessages(llm: LlmRequest): readonly unknown[] {
  const m = (llm.exact ?? llm.json).messages;
  return Array.isArray(m) && m.length === llm.messages.length ? m : [];
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex');

/** A JSON array of parts already serialised: what canonical() gives for the array of their values. */
const jsonArray = (parts: readonly string[]) => `[${parts.join(',')}]`;

export interface SemanticParts {
  partition: string;
  question: string;
}

/**
 * A request's exact key, and its semantic partition when asked for (on an exact miss, in semantic mode). The
 * two take the same normalised conversation, the partition all of it but the last message, so it is built and
 * serialised once: for an agent's 44 KB conversation, the two took 374 µs in a warm loop before, 267 µs now
 * (`npm run bench:large-bodies` for large bodies).
 */
export function requestKeys(scope: CacheScope, llm: LlmRequest): { exact: string; semantic: () => SemanticParts | undefined } {
  const raw = rawMessages(llm);
  const conversation = normalised(llm.messages, raw);
  // Each message serialised once: the partition's context (all but the last), then the last one after it.
  // Tool-call ids are renamed in order of appearance, so the earlier messages read the same with or without it.
  const context = canonical(conversation.slice(0, -1));
  const all = conversation.length === 0 ? context : `${context.slice(0, -1)}${conversation.length > 1 ? ',' : ''}${canonical(conversation[conversation.length - 1])}]`;
  const paramsJson = canonical(params(llm));
  const exact = hash(jsonArray([canonical(['tiergate-cache-v3', scope.tenant, scope.namespace, scope.tier, scope.model]).slice(1, -1), all, paramsJson]));
  const semantic = (): SemanticParts | undefined => {
    const msgs = llm.messages;
    const last = msgs[msgs.length - 1];
    if (!last || last.role !== 'user') return undefined;
    const c = last.content;
    const question = typeof c === 'string' ? c : Array.isArray(c) && c.every((p) => p.type === 'text') ? c.map((p) => (p as { text: string }).text).join(' ') : undefined;
    if (question === undefined || !EMBEDDABLE.test(question)) return undefined;
    const head = canonical(['tiergate-semantic-v3', scope.tenant, scope.namespace, scope.tier, scope.model]).slice(1, -1);
    const tail = canonical([last.name ?? null, extrasOf(raw[msgs.length - 1])]).slice(1, -1);
    return { partition: hash(jsonArray([head, context, paramsJson, tail])).slice(0, 32), question };
  };
  return { exact, semantic };
}

/** What embeddingText() takes off a question's end: spacing and end punctuation. */
const END = '\\s.?!。？！';
const QUESTION_END = new RegExp(`^[${END}]$`, 'u');
/**
 * A question with something to embed: a character embeddingText() keeps. "?" or "..." (a follow-up such as
 * "??") embeds as the empty string, which the local model refuses with an error (and an embeddings API with a
 * 400); such a question goes without the semantic half, as one with no text does.
 */
const EMBEDDABLE = new RegExp(`[^${END}]`, 'u');

/**
 * What is embedded: case, spacing and trailing punctuation carry no meaning for the cache, but move a small
 * model's vectors ("Say hi" and "say hi!" are 0.83 apart in USE-lite; normalised, they are one question).
 */
export function embeddingText(question: string): string {
  return withoutTrailing(question.toLowerCase().replace(/\s+/g, ' ').trim(), QUESTION_END);
}
