// Usage counted by tiergate when the server reported none (no usage chunk, a cancelled stream, an error
// mid-stream): the prompt and the generated text through the tokenizer. Rows say `usage_source: "estimated"`.
import { countTokens, countTokensOfAll } from '../llm/tokenizer.js';
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
 * The prompt a request carries beyond its messages: tool definitions and the legacy `functions`, as JSON; ''
 * when it has neither. Counted by the budget stage's reservation and by estimates.
 */
export function promptDefinitions(body: { tools?: unknown; functions?: unknown }): string {
  const { tools, functions } = body;
  if (tools == null) return functions == null ? '' : JSON.stringify(functions);
  return functions == null ? JSON.stringify(tools) : `${JSON.stringify(tools)}\n${JSON.stringify(functions)}`;
}

export interface PromptForCount {
  /** Each message's text (or a completions prompt as one). */
  texts: readonly string[];
  /** Tool definitions and other prompt-side JSON the model also reads. */
  extra: string;
  chat: boolean;
  /** Tokens for what the tokenizer cannot count: content parts that are not text (budgets.mediaPartEstimate each). */
  mediaTokens: number;
}

export async function estimateUsage(prompt: PromptForCount | undefined, outputText: string, outputChars: number): Promise<Usage> {
  let input = 0;
  if (prompt) {
    input += await countTokensOfAll([...prompt.texts, prompt.extra]);
    if (prompt.chat) input += chatFramingTokens(prompt.texts.length);
    input += prompt.mediaTokens;
  }
  let output = await countTokens(outputText);
  // Text beyond the kept maximum is scaled from the kept part's tokens per character.
  if (outputChars > outputText.length && outputText.length > 0) output = Math.round((output * outputChars) / outputText.length);
  return sumUsage(input, output);
}
