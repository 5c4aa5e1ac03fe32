// OpenAI's Responses API request (`/v1/responses`), as far as tiergate reads it: the model, whether it streams,
// what may be generated, whether the turn keeps state on the backend, and its input presented as chat messages
// so that classification, the token reservation and usage estimates work on it unchanged. Unknown fields and
// item types are kept and reach the backend as sent; the backend validates what tiergate does not read.
import { z } from 'zod';
import type { ChatMessage } from './openai-request.js';

const item = z.looseObject({ type: z.string().optional(), role: z.string().optional() });

export const responsesRequest = z.looseObject({
  model: z.string().min(1).optional(),
  // Optional: a turn may carry all its context in previous_response_id or conversation.
  input: z.union([z.string(), z.array(item)]).optional(),
  instructions: z.string().nullable().optional(),
  stream: z.boolean().nullable().optional(),
  max_output_tokens: z.number().int().nonnegative().nullable().optional(),
  previous_response_id: z.string().nullable().optional(),
  conversation: z.union([z.string(), z.looseObject({})]).nullable().optional(),
  store: z.boolean().nullable().optional(),
  background: z.boolean().nullable().optional(),
});

export type ResponsesRequest = z.infer<typeof responsesRequest>;

/**
 * Whether the turn leaves or reads state on the backend that answers it: it continues a stored response or a
 * conversation, runs in the background (fetched later by id), or is stored, which the API does unless `store`
 * is false. Such a turn must go where the rest of its conversation goes, so it is never classified on its own.
 */
export function keepsBackendState(r: ResponsesRequest): boolean {
  return r.previous_response_id != null || r.conversation != null || r.background === true || r.store !== false;
}

const CHAT_ROLES: ReadonlySet<string> = new Set(['system', 'developer', 'user', 'assistant']);

/**
 * The input as chat messages: instructions first (as a system message), then one message per input item. A
 * message item keeps its role, its text parts (input_text, output_text, refusal) and the types of its other
 * parts; a tool's output becomes a tool message; any other item (a function call, reasoning, a hosted tool's
 * call) counts as an assistant message with no text, as an assistant message with tool calls does in chat.
 */
export function responsesMessages(r: ResponsesRequest): ChatMessage[] {
  const out: ChatMessage[] = [];
  if (r.instructions) out.push({ role: 'system', content: r.instructions });
  const input = r.input;
  if (typeof input === 'string') {
    out.push({ role: 'user', content: input });
    return out;
  }
  for (const it of input ?? []) {
    if (it.role !== undefined && CHAT_ROLES.has(it.role) && (it.type === undefined || it.type === 'message')) {
      out.push({ role: it.role as ChatMessage['role'], content: textOf(it.content) });
    } else if (it.type === 'function_call_output' || it.type === 'custom_tool_call_output') {
      out.push({ role: 'tool', content: textOf(it.output) });
    } else {
      out.push({ role: 'assistant', content: null });
    }
  }
  return out;
}

/**
 * A string as is; an array of parts → one text part per part that carries text, and every other part by its
 * type alone (`input_image`, `input_file`…: a classifier rule may route on it, nothing reads its payload).
 */
function textOf(v: unknown): ChatMessage['content'] {
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) return null;
  const parts: Array<{ type: string; text?: string }> = [];
  for (const p of v) {
    if (typeof p !== 'object' || p === null) continue;
    const text = (p as { text?: unknown }).text ?? (p as { refusal?: unknown }).refusal;
    const type = (p as { type?: unknown }).type;
    if (typeof text === 'string') parts.push({ type: 'text', text });
    else if (typeof type === 'string') parts.push({ type });
  }
  return parts;
}

/**
 * The `encrypted_content` of each input item that carries one, in order. The provider seals some of what it
 * generates: reasoning (an agent that keeps no state on the backend, `store: false` with `include:
 * ["reasoning.encrypted_content"]`: Codex, the Agents SDK, sends it back every turn) and the item a compaction
 * (`/v1/responses/compact`) returns in place of the history. Only a backend holding the same keys can read it
 * (response affinity keeps the turn there: README "Responses API").
 */
export function sealedItems(r: ResponsesRequest): string[] {
  const out: string[] = [];
  if (!Array.isArray(r.input)) return out;
  for (const it of r.input) {
    const sealed = (it as { encrypted_content?: unknown }).encrypted_content;
    if (typeof sealed === 'string' && sealed.length > 0) out.push(sealed);
  }
  return out;
}
