// Chat Completions and legacy Completions as the mock backends answer them: the greeting (or the JSON or the tool
// call the request asks for), `n` choices for each prompt of a batch, capped at the request's token limit, whole
// or streamed. What tiergate counts and caches depends on each of these, so the local stack shows it as vLLM would.
import type { ServerResponse } from 'node:http';
import { forcedToolCall, jsonAnswer } from './mock-json.js';
import { argumentPieces, badRequest, callId, capped, mockTokenCount, sendJson, sleep, textPieces, tokenCap } from './mock-wire.js';

export interface AnswerContext {
  /** The backend's name, as answers show it. */
  backend: string;
  /** The model the answer reports. */
  model: string;
  chunkDelayMs: number;
}

/** OpenAI's bound on `n` (vLLM sets none; the mock builds every choice in memory). */
const MAX_CHOICES = 128;

export async function complete(res: ServerResponse, body: Record<string, unknown>, ctx: AnswerContext, chat: boolean): Promise<void> {
  const n = body.n ?? 1;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_CHOICES) {
    return badRequest(res, `Invalid 'n': expected an integer from 1 to ${MAX_CHOICES}.`, 'n');
  }
  const prompts = chat ? [mockTokenCount(JSON.stringify(body.messages ?? []))] : promptTokens(body.prompt);
  if (prompts.length === 0) return badRequest(res, "Invalid 'prompt': a batch needs at least one prompt.", 'prompt');
  const nMessages = Array.isArray(body.messages) ? body.messages.length : 1;
  const greeting = `Hello from the ${ctx.backend} backend (model ${ctx.model}). You sent ${nMessages} message${nMessages === 1 ? '' : 's'}.`;
  // Structured outputs are JSON, as vLLM's guided decoding makes them (mock-json.ts).
  const answer = (chat ? jsonAnswer(body.response_format, greeting) : undefined) ?? greeting;
  // A call the request forces (tool_choice) instead of text, as a model constrained to it answers.
  const call = chat ? forcedToolCall(body.tools, body.tool_choice, greeting) : undefined;
  // The cap ends a call's arguments as it ends text: mid-way, with finish_reason "length".
  const out = capped(call ? call.arguments : answer, tokenCap(body, chat ? ['max_completion_tokens', 'max_tokens'] : ['max_tokens']));
  const finish = out.cut ? 'length' : call ? 'tool_calls' : 'stop';
  // Every choice is the same answer (the mock is deterministic), numbered prompt by prompt, n for each, as OpenAI
  // numbers a batch's choices; the prompt is billed once per prompt, the completion once per choice.
  const indexes = Array.from({ length: prompts.length * n }, (_, i) => i);
  const promptTokensTotal = prompts.reduce((a, b) => a + b, 0);
  const usage = { prompt_tokens: promptTokensTotal, completion_tokens: out.tokens * indexes.length, total_tokens: promptTokensTotal + out.tokens * indexes.length };
  const id = `${chat ? 'chatcmpl' : 'cmpl'}-mock-${ctx.backend}`;
  const created = 1_700_000_000;
  const model = ctx.model;
  // As OpenAI does when a request names one: the tier that served it (auto: the project's, default), on the body
  // and on every chunk. Nothing when none was asked, as vLLM answers.
  const serviceTier = servedTier(body.service_tier);
  const tier = serviceTier === undefined ? {} : { service_tier: serviceTier };
  const calls = call && indexes.map(() => callId(ctx.backend));

  if (body.stream !== true) {
    const choiceOf = (index: number) =>
      !chat
        ? { index, text: out.text, finish_reason: finish }
        : calls && call
          ? { index, message: { role: 'assistant', content: null, tool_calls: [{ id: calls[index], type: 'function', function: { name: call.name, arguments: out.text } }] }, finish_reason: finish }
          : { index, message: { role: 'assistant', content: out.text }, finish_reason: finish };
    return sendJson(res, 200, { id, object: chat ? 'chat.completion' : 'text_completion', created, model, ...tier, choices: indexes.map(choiceOf), usage });
  }

  const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const object = chat ? 'chat.completion.chunk' : 'text_completion';
  const frame = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    `data: ${JSON.stringify({ id, object, created, model, ...tier, choices, ...(includeUsage ? { usage: null } : {}), ...extra })}\n\n`;
  // One chunk per choice for each step, the choices taking turns, as OpenAI interleaves them.
  const each = (choice: (index: number) => Record<string, unknown>) => {
    for (const index of indexes) res.write(frame([{ index, ...choice(index) }]));
  };
  if (chat && calls && call) {
    // The call's id and name first, then its arguments in pieces, as OpenAI and vLLM stream one.
    each((i) => ({ delta: { role: 'assistant', content: null, tool_calls: [{ index: 0, id: calls[i], type: 'function', function: { name: call.name, arguments: '' } }] }, finish_reason: null }));
    for (const piece of argumentPieces(out.text)) {
      await sleep(ctx.chunkDelayMs);
      each(() => ({ delta: { tool_calls: [{ index: 0, function: { arguments: piece } }] }, finish_reason: null }));
    }
  } else {
    if (chat) each(() => ({ delta: { role: 'assistant', content: '' }, finish_reason: null }));
    for (const piece of textPieces(out.text)) {
      await sleep(ctx.chunkDelayMs);
      each(() => (chat ? { delta: { content: piece }, finish_reason: null } : { text: piece, finish_reason: null }));
    }
  }
  each(() => (chat ? { delta: {}, finish_reason: finish } : { text: '', finish_reason: finish }));
  if (includeUsage) res.write(frame([], { usage }));
  res.end('data: [DONE]\n\n');
}

/**
 * Each prompt's tokens. `prompt` comes four ways: a string, a batch of strings, one prompt of token ids, or a
 * batch of token-id prompts; ids are tokens as they are.
 */
function promptTokens(prompt: unknown): number[] {
  if (!Array.isArray(prompt)) return [mockTokenCount(String(prompt ?? ''))];
  if (prompt.length > 0 && prompt.every((p) => typeof p === 'number')) return [prompt.length];
  return prompt.map((p) => (Array.isArray(p) ? p.length : mockTokenCount(String(p))));
}

function servedTier(asked: unknown): string | undefined {
  if (typeof asked !== 'string') return undefined;
  return asked === 'flex' || asked === 'priority' ? asked : 'default';
}
