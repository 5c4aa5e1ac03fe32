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

/** A turn's conversation id: the string, or the object's `id` (both shapes the API takes). */
export function conversationId(c: unknown): string | undefined {
  if (typeof c === 'string') return c;
  if (c !== null && typeof c === 'object' && typeof (c as { id?: unknown }).id === 'string') return (c as { id: string }).id;
  return undefined;
}

const CHAT_ROLES: ReadonlySet<string> = new Set(['system', 'developer', 'user', 'assistant']);

/**
 * The input as chat messages: instructions first (as a system message), then one message per input item. A
 * message item keeps its role, its text parts (input_text, output_text, refusal) and the types of its other
 * parts. A tool's output (`function_call_output`, and every other `*_call_output`: a shell's, a patch's, a
 * computer's screenshot) becomes a tool message with its text, or its type for what is not text. A call
 * (`function_call`, `custom_tool_call`, a shell command, a patch, a hosted tool's call) becomes an assistant
 * message with no text and the call's arguments as a tool call, as in chat, so that what the model reads back
 * is counted. Any other item (reasoning, a compaction) is an assistant message with no text.
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
    const type = it.type;
    if (it.role !== undefined && CHAT_ROLES.has(it.role) && (type === undefined || type === 'message')) {
      out.push({ role: it.role as ChatMessage['role'], content: textOf(it.content) });
    } else if (type?.endsWith('_call_output')) {
      out.push({ role: 'tool', content: outputOf((it as { output?: unknown }).output) });
    } else if (type?.endsWith('_call')) {
      out.push({ role: 'assistant', content: null, tool_calls: [{ type: 'function', function: callOf(it, type) }] });
    } else {
      out.push({ role: 'assistant', content: null });
    }
  }
  return out;
}

/**
 * A call item as chat's tool call: its name (its type for a built-in tool) and what the model wrote for it:
 * arguments, a custom tool's input, code, or the action or operation (a shell command, a patch) as JSON.
 */
function callOf(it: Record<string, unknown>, type: string): { name: string; arguments: string } {
  const name = typeof it.name === 'string' ? it.name : type;
  for (const k of ['arguments', 'input', 'code'] as const) if (typeof it[k] === 'string') return { name, arguments: it[k] };
  const action = it.action ?? it.operation;
  return { name, arguments: action === undefined ? '' : JSON.stringify(action) };
}

/** A tool's output: text (a string, or text parts), a shell's stdout and stderr, or a screenshot's type alone. */
function outputOf(v: unknown): ChatMessage['content'] {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const type = (v as { type?: unknown }).type;
    return typeof type === 'string' ? [{ type }] : null;
  }
  return textOf(v);
}

/**
 * A string as is; an array of parts → one text part per part that carries text (a shell's result: its stdout and
 * stderr), and every other part by its type alone (`input_image`, `input_file`…: a classifier rule may route
 * on it, nothing reads its payload).
 */
function textOf(v: unknown): ChatMessage['content'] {
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) return null;
  const parts: Array<{ type: string; text?: string }> = [];
  for (const p of v) {
    if (typeof p !== 'object' || p === null) continue;
    const text = (p as { text?: unknown }).text ?? (p as { refusal?: unknown }).refusal ?? shellText(p as { stdout?: unknown; stderr?: unknown });
    const type = (p as { type?: unknown }).type;
    if (typeof text === 'string') parts.push({ type: 'text', text });
    else if (typeof type === 'string') parts.push({ type });
  }
  return parts;
}

/** A shell command's result (`shell_call_output`): stdout, then stderr; undefined when it has neither. */
function shellText(p: { stdout?: unknown; stderr?: unknown }): string | undefined {
  const streams = [p.stdout, p.stderr].filter((s): s is string => typeof s === 'string' && s.length > 0);
  return streams.length > 0 ? streams.join('\n') : undefined;
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

/**
 * Whether the input names stored items by id (`item_reference`): the backend reads them from a response it
 * stored, which tiergate keeps no record of item by item (README "Responses API", isolation).
 */
export function referencesItems(r: ResponsesRequest): boolean {
  return Array.isArray(r.input) && r.input.some((it) => it.type === 'item_reference');
}
