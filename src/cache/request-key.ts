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

/** JSON with object keys sorted at every depth: equal values always serialise alike. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
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

export function exactKey(scope: CacheScope, llm: LlmRequest): string {
  return hash(canonical(['tiergate-cache-v3', scope.tenant, scope.namespace, scope.tier, scope.model, normalised(llm.messages, rawMessages(llm)), params(llm)]));
}

/**
 * The semantic cache's partition: everything but the last user message's text must match exactly (system
 * prompt, earlier turns, parameters, tenant, tier), so similarity never crosses a tenant or a context.
 * Undefined when the conversation does not end with a user message carrying text.
 */
export function semanticParts(scope: CacheScope, llm: LlmRequest): { partition: string; question: string } | undefined {
  const msgs = llm.messages;
  const last = msgs[msgs.length - 1];
  if (!last || last.role !== 'user') return undefined;
  const c = last.content;
  const question = typeof c === 'string' ? c : Array.isArray(c) && c.every((p) => p.type === 'text') ? c.map((p) => (p as { text: string }).text).join(' ') : undefined;
  if (question === undefined || !EMBEDDABLE.test(question)) return undefined;
  const raw = rawMessages(llm);
  const context = normalised(msgs.slice(0, -1), raw);
  return { partition: hash(canonical(['tiergate-semantic-v3', scope.tenant, scope.namespace, scope.tier, scope.model, context, params(llm), last.name ?? null, extrasOf(raw[msgs.length - 1])])).slice(0, 32), question };
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
