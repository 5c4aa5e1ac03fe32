// Usage counted by tiergate when the server reported none (no usage chunk, a cancelled stream, an error
// mid-stream): the prompt and the generated text through the tokenizer. Rows say `usage_source: "estimated"`.
import { countTokens, countTokensOfAll } from '../llm/tokenizer.js';
import type { ChatMessage } from '../llm/openai-request.js';
import { mediaParts } from '../classify/prompt-text.js';
import { sumUsage, type Usage } from './usage.js';

/**
 * Chat formats add a few tokens per message (role markers, separators) and prime the reply with a few more;
 * OpenAI's own counting guide uses 3 and 3.
 */
const PER_MESSAGE = 3;
const REPLY_PRIMING = 3;

/** The tokens a chat format adds around `messages` messages (also reserved by the budget stage). */
export function chatFramingTokens(messages: number): number {
  return messages * PER_MESSAGE + REPLY_PRIMING;
}

/**
 * The prompt's tokens the tokenizer does not count (also reserved by the budget stage): each image, audio or file
 * part at `mediaPartEstimate`, and a completions prompt's token ids, one each.
 */
export function uncountedPromptTokens(messages: readonly ChatMessage[], promptTokenIds: number | undefined, mediaPartEstimate: number): number {
  return mediaParts(messages) * mediaPartEstimate + (promptTokenIds ?? 0);
}

/**
 * The prompt a request carries beyond its messages' contents, one part per line: tool definitions and the legacy
 * `functions`, as JSON, then the tool calls in the history (callText); '' when it has none. Counted by the
 * budget stage's reservation and by estimates.
 */
export function promptExtra(body: { tools?: unknown; functions?: unknown }, messages: readonly ChatMessage[]): string {
  const { tools, functions } = body;
  const parts: string[] = [];
  if (tools != null) parts.push(JSON.stringify(tools));
  if (functions != null) parts.push(JSON.stringify(functions));
  const calls = callText(messages);
  if (calls) parts.push(calls);
  return parts.join('\n');
}

/**
 * What the messages ask tools to do: each tool call's name and arguments (a custom tool's input), and the
 * legacy `function_call`'s, one per line; '' when there are none. The model reads them back as prompt, so the
 * token reservation and estimates count them; classifiers do not (v7 reads contents only).
 */
export function callText(messages: readonly ChatMessage[]): string {
  let parts: string[] | undefined;
  const add = (call: unknown): void => {
    if (typeof call !== 'object' || call === null) return;
    const c = call as { name?: unknown; arguments?: unknown; input?: unknown };
    for (const v of [c.name, c.arguments, c.input]) if (typeof v === 'string' && v.length > 0) (parts ??= []).push(v);
  };
  for (const m of messages) {
    if (m.tool_calls) for (const call of m.tool_calls) add((call as { function?: unknown; custom?: unknown }).function ?? (call as { custom?: unknown }).custom);
    add((m as { function_call?: unknown }).function_call);
  }
  return parts ? parts.join('\n') : '';
}


export interface PromptForCount {
  /** Each message's text (or a completions prompt as one: a batch's prompts joined). */
  texts: readonly string[];
  /** Tool definitions and other prompt-side JSON the model also reads. */
  extra: string;
  chat: boolean;
  /**
   * Tokens the tokenizer does not count: content parts that are not text (budgets.mediaPartEstimate each), and a
   * completions prompt's token ids (one each).
   */
  uncountedTokens: number;
}

export async function estimateUsage(prompt: PromptForCount | undefined, outputText: string, outputChars: number): Promise<Usage> {
  let input = 0;
  if (prompt) {
    input += await countTokensOfAll([...prompt.texts, prompt.extra]);
    if (prompt.chat) input += chatFramingTokens(prompt.texts.length);
    input += prompt.uncountedTokens;
  }
  let output = await countTokens(outputText);
  // Text beyond the kept maximum is scaled from the kept part's tokens per character.
  if (outputChars > outputText.length && outputText.length > 0) output = Math.round((output * outputChars) / outputText.length);
  return sumUsage(input, output);
}
