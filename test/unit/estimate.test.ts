// Usage tiergate estimates when the server reported none (usage_source "estimated"): how the pieces add up.
// The tokenizer's own counts are its suites'; here each expected figure is built from countTokens, so what is
// held is the sum around it: chat framing, media parts, the prompt beyond the messages, and output past the kept text.
import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../src/llm/openai-request.js';
import { countTokens, countTokensOfAll } from '../../src/llm/tokenizer.js';
import { callText, chatFramingTokens, estimateUsage, promptExtra } from '../../src/usage/estimate.js';

const msgs = (...m: object[]) => m as ChatMessage[];

describe('estimateUsage', () => {
  const texts = ['You are terse.', 'Name three primes.'];

  it('a chat prompt: its texts and extra, 3 per message and 3 to prime the reply, then each media part', async () => {
    const u = await estimateUsage({ texts, extra: '[{"type":"function"}]', chat: true, uncountedTokens: 85 }, '2, 3, 5', 7);
    const input = (await countTokensOfAll([...texts, '[{"type":"function"}]'])) + 2 * 3 + 3 + 85;
    const output = await countTokens('2, 3, 5');
    expect(u).toMatchObject({ inputTokens: input, outputTokens: output, totalTokens: input + output });
    expect(chatFramingTokens(2)).toBe(9);
  });

  it('a completions prompt has no chat framing', async () => {
    const u = await estimateUsage({ texts: ['Once upon'], extra: '', chat: false, uncountedTokens: 0 }, '', 0);
    expect(u.inputTokens).toBe(await countTokensOfAll(['Once upon', '']));
  });

  it('no prompt (nothing was parsed): the output alone', async () => {
    expect(await estimateUsage(undefined, 'hello there', 11)).toMatchObject({ inputTokens: 0, outputTokens: await countTokens('hello there') });
  });

  it("output past the kept text is scaled by the kept part's tokens per character", async () => {
    const kept = 'one two three four five six seven eight';
    const perKept = await countTokens(kept);
    expect((await estimateUsage(undefined, kept, kept.length * 3)).outputTokens).toBe(Math.round((perKept * kept.length * 3) / kept.length));
    // Exactly the kept length: nothing to scale.
    expect((await estimateUsage(undefined, kept, kept.length)).outputTokens).toBe(perKept);
    // Nothing kept (only tool calls or a refusal were streamed): 0, never NaN from 0/0.
    expect((await estimateUsage(undefined, '', 500)).outputTokens).toBe(0);
  });
});

describe('promptExtra and callText', () => {
  it('tool definitions, legacy functions and the calls in the history, one per line', () => {
    const tools = [{ type: 'function', function: { name: 'f' } }];
    const functions = [{ name: 'g' }];
    const history = msgs({ role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] });
    expect(promptExtra({ tools, functions }, history)).toBe(`${JSON.stringify(tools)}\n${JSON.stringify(functions)}\nf\n{"a":1}`);
    expect(promptExtra({ tools }, msgs({ role: 'user', content: 'hi' }))).toBe(JSON.stringify(tools));
    expect(promptExtra({}, msgs({ role: 'user', content: 'hi' }))).toBe('');
    expect(promptExtra({ tools: null, functions: null }, [])).toBe('');
  });

  it("a custom tool's input, the legacy function_call, and nothing for empty or missing parts", () => {
    const history = msgs(
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'custom', custom: { name: 'sql', input: 'SELECT 1' } }] },
      { role: 'assistant', content: null, function_call: { name: 'lookup', arguments: '' } },
      { role: 'assistant', content: 'done', function_call: null },
    );
    expect(callText(history)).toBe('sql\nSELECT 1\nlookup');
    expect(callText(msgs({ role: 'user', content: 'hi' }))).toBe('');
  });
});
