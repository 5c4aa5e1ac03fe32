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

/** Request fields that change the answer; everything else (user, metadata, stream, store…) does not. */
const ANSWER_PARAMS = [
  'temperature', 'top_p', 'max_tokens', 'max_completion_tokens', 'n', 'seed', 'stop', 'response_format', 'tools', 'tool_choice',
  'parallel_tool_calls', 'functions', 'function_call', 'presence_penalty', 'frequency_penalty', 'logit_bias', 'reasoning_effort',
  'verbosity', 'prediction', 'web_search_options', 'modalities',
] as const;

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
function normalised(messages: readonly ChatMessage[]): unknown[] {
  const ids = new Map<string, string>();
  const rename = (id: unknown) => {
    if (typeof id !== 'string') return null;
    let n = ids.get(id);
    if (n === undefined) ids.set(id, (n = `#${ids.size}`));
    return n;
  };
  return messages.map((m) => {
    const c = m.content;
    const content = typeof c === 'string' ? [['text', c]] : Array.isArray(c) ? c.map((p) => (p.type === 'text' && typeof p.text === 'string' ? ['text', p.text] : ['part', p])) : null;
    const calls = Array.isArray(m.tool_calls)
      ? m.tool_calls.map((t) => {
          const f = (t as { function?: { name?: unknown; arguments?: unknown } }).function;
          return [rename((t as { id?: unknown }).id), (t as { type?: unknown }).type ?? 'function', f?.name ?? null, f?.arguments ?? null];
        })
      : null;
    return [m.role, content, m.name ?? null, calls, m.tool_call_id === undefined ? null : rename(m.tool_call_id)];
  });
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

function params(llm: LlmRequest): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // Integers beyond 2^53 as the client wrote them (parse-request.ts `exact`): two seeds that differ only in
  // digits JSON.parse drops are different questions.
  const j = llm.exact ?? llm.json;
  for (const k of ANSWER_PARAMS) if (j[k] != null) out[k] = j[k];
  return out;
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex');

export function exactKey(scope: CacheScope, llm: LlmRequest): string {
  return hash(canonical(['tiergate-cache-v1', scope.tenant, scope.namespace, scope.tier, scope.model, normalised(llm.messages), params(llm)]));
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
  const context = normalised(msgs.slice(0, -1));
  return { partition: hash(canonical(['tiergate-semantic-v1', scope.tenant, scope.namespace, scope.tier, scope.model, context, params(llm), last.name ?? null])).slice(0, 32), question };
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
