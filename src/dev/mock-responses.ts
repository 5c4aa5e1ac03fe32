// The Responses API as the mock backends answer it: a response object, or its stream of typed events ending in
// response.completed (no [DONE]); response.incomplete when max_output_tokens cut the output short. Stored
// responses stay on the backend that answered, as vLLM's in-memory store keeps them, and so do conversations: a
// turn in one adds its input and output to it (mock-conversations.ts).
import type { ServerResponse } from 'node:http';
import type { AnswerContext } from './mock-completions.js';
import { forcedToolCall, jsonAnswer } from './mock-json.js';
import { itemTokens, type Conversation, type MockStore } from './mock-conversations.js';
import { argumentPieces, badRequest, capped, mockTokenCount, notFound, sendJson, sleep, textPieces, tokenCap } from './mock-wire.js';

let responseCount = 0;

export async function respond(res: ServerResponse, body: Record<string, unknown>, ctx: AnswerContext, store: MockStore): Promise<void> {
  // A continuation only works on the backend that stored what it continues: what routing must get right.
  const previous = body.previous_response_id;
  if (typeof previous === 'string' && !store.responses.has(previous)) return notFound(res, `Previous response with id '${previous}' not found.`);
  // A turn in a conversation: `conversation` is its id, or an object holding it.
  const named = body.conversation;
  const conversationId: unknown = typeof named === 'object' && named !== null ? (named as { id?: unknown }).id : named;
  let conversation: Conversation | undefined;
  if (conversationId != null) {
    if (typeof conversationId !== 'string') return badRequest(res, 'conversation must be a conversation id, or an object with its id', 'conversation');
    if (previous != null) return badRequest(res, "Mutually exclusive parameters: give only one of 'previous_response_id' and 'conversation'.", 'conversation');
    conversation = store.conversation(conversationId);
    if (!conversation) return notFound(res, `Conversation with id '${conversationId}' not found.`);
  }
  const items = Array.isArray(body.input) ? body.input.length : 1;
  const greeting = `Hello from the ${ctx.backend} backend (model ${ctx.model}). You sent ${items} input item${items === 1 ? '' : 's'}.`;
  const answer = jsonAnswer((body.text as { format?: unknown } | undefined)?.format, greeting) ?? greeting;
  const call = forcedToolCall(body.tools, body.tool_choice, greeting);
  const out = capped(call ? call.arguments : answer, tokenCap(body, ['max_output_tokens']));
  // A response the cap ended is `incomplete`, and says why, as OpenAI's does.
  const status = out.cut ? 'incomplete' : 'completed';
  // A continuation is billed for the conversation it continues, read back whole: the previous turn's input and
  // output, as OpenAI and vLLM bill it. So the token reservation of a continuation can be watched locally.
  // A conversation's turn, likewise for the items the conversation holds.
  const history = typeof previous === 'string' ? conversationTokens(store.responses.get(previous)) : conversation ? itemTokens(conversation.items) : 0;
  const inputTokens = history + mockTokenCount(JSON.stringify(body.input ?? '') + String(body.instructions ?? ''));
  const usage = {
    input_tokens: inputTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: out.tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: inputTokens + out.tokens,
  };
  const id = `resp_mock_${ctx.backend}_${++responseCount}`;
  const message = (text: string, itemStatus: string) => ({ type: 'message', id: `msg_${id}`, status: itemStatus, role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] });
  const base = {
    id,
    object: 'response',
    created_at: 1_700_000_000,
    model: ctx.model,
    instructions: body.instructions ?? null,
    error: null,
    incomplete_details: null,
    ...(conversation ? { conversation: { id: conversation.id } } : {}),
  };
  const functionCall = (args: string, itemStatus: string) => ({ type: 'function_call', id: `fc_${id}`, call_id: `call_${id}`, name: call?.name, arguments: args, status: itemStatus });
  const done = {
    ...base,
    status,
    incomplete_details: out.cut ? { reason: 'max_output_tokens' } : null,
    output: [call ? functionCall(out.text, status) : message(out.text, status)],
    usage,
  };
  const input = store.itemsOf(body.input);
  if (body.store !== false) store.storeResponse(id, done, input);
  // The turn's input and output join its conversation once it is done (here at once: nothing can fail later).
  conversation?.items.push(...input, ...done.output);
  if (body.stream !== true) return sendJson(res, 200, done);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  // OpenAI's whole sequence of events, each part opened before its deltas and closed after them: the SDKs'
  // `responses.stream()` builds the response from these, and refuses a delta for a part never opened
  // ("missing content at index 0").
  let seq = 0;
  const send = (type: string, fields: Record<string, unknown>) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...fields })}\n\n`);
  const inProgress = { ...base, status: 'in_progress', output: [], usage: null };
  send('response.created', { response: inProgress });
  send('response.in_progress', { response: inProgress });
  if (call) {
    const item = { item_id: `fc_${id}`, output_index: 0 };
    send('response.output_item.added', { output_index: 0, item: functionCall('', 'in_progress') });
    for (const piece of argumentPieces(out.text)) {
      await sleep(ctx.chunkDelayMs);
      send('response.function_call_arguments.delta', { ...item, delta: piece });
    }
    send('response.function_call_arguments.done', { ...item, name: call.name, arguments: out.text });
  } else {
    const part = { item_id: `msg_${id}`, output_index: 0, content_index: 0 };
    send('response.output_item.added', { output_index: 0, item: { ...message('', 'in_progress'), content: [] } });
    send('response.content_part.added', { ...part, part: { type: 'output_text', text: '', annotations: [] } });
    for (const piece of textPieces(out.text)) {
      await sleep(ctx.chunkDelayMs);
      send('response.output_text.delta', { ...part, delta: piece, logprobs: [] });
    }
    send('response.output_text.done', { ...part, text: out.text, logprobs: [] });
    send('response.content_part.done', { ...part, part: { type: 'output_text', text: out.text, annotations: [] } });
  }
  send('response.output_item.done', { output_index: 0, item: done.output[0] });
  send(`response.${status}`, { response: done });
  res.end();
}

/** What a stored response's conversation came to: its input (all it continued) and its output. */
function conversationTokens(response: Record<string, unknown> | undefined): number {
  const usage = response?.usage as { input_tokens?: number; output_tokens?: number } | undefined;
  return (usage?.input_tokens ?? 0) + (usage?.output_tokens ?? 0);
}
