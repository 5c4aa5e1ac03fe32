// zod schemas for the OpenAI request bodies tiergate reads. They accept the real shapes (string or parts
// content, null content with tool_calls, tool/developer roles) and keep unknown fields: tiergate rewrites only
// `model` and `stream_options`, everything else reaches the backend as the client sent it.
import { z } from 'zod';

const textPart = z.looseObject({ type: z.literal('text'), text: z.string() });
const otherPart = z.looseObject({ type: z.string() });
export const contentPart = z.union([textPart, otherPart]);

export const chatMessage = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
  name: z.string().optional(),
  tool_calls: z.array(z.looseObject({})).optional(),
  tool_call_id: z.string().optional(),
});

const streamOptions = z.looseObject({ include_usage: z.boolean().optional() });
/**
 * How many completions the backend generates. Validated because the token reservation multiplies by it: a
 * backend that coerces "100" to 100 (pydantic does) would otherwise generate 100 on a reservation for one.
 */
const choiceCount = z.number().int().positive().nullable().optional();

export const chatCompletionRequest = z.looseObject({
  model: z.string().min(1).optional(),
  messages: z.array(chatMessage).min(1),
  stream: z.boolean().nullable().optional(),
  stream_options: streamOptions.nullable().optional(),
  max_tokens: z.number().int().nonnegative().nullable().optional(),
  max_completion_tokens: z.number().int().nonnegative().nullable().optional(),
  n: choiceCount,
});

export const completionRequest = z.looseObject({
  model: z.string().min(1).optional(),
  prompt: z.union([z.string(), z.array(z.string()), z.array(z.number().int()), z.array(z.array(z.number().int()))]),
  stream: z.boolean().nullable().optional(),
  stream_options: streamOptions.nullable().optional(),
  max_tokens: z.number().int().nonnegative().nullable().optional(),
  n: choiceCount,
  /** Completions generated server-side to return the best `n`, and billed: what the reservation counts. */
  best_of: choiceCount,
});

export type ChatMessage = z.infer<typeof chatMessage>;
export type ChatCompletionRequest = z.infer<typeof chatCompletionRequest>;
export type CompletionRequest = z.infer<typeof completionRequest>;
