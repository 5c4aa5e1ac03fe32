// Token counting for reservations and estimates (src/llm/tokenizer.ts): counts equal the tokenizer's own, and a
// long prompt never holds the event loop, whether it is one long text or many short messages.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { countTokens, countTokensNow, countTokensOfAll, loadTokenizer } from '../../src/llm/tokenizer.js';
import { estimateUsage } from '../../src/usage/estimate.js';
import { SHARED_DATA } from '../helpers/shared-data.js';

/** How many turns of the event loop pass while `work` runs. */
async function loopTurnsDuring<T>(work: () => Promise<T>): Promise<{ value: T; turns: number }> {
  let turns = 0;
  let done = false;
  const spin = () => {
    if (done) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  const value = await work();
  done = true;
  return { value, turns };
}

const sentence = (i: number) => `Message ${i}: please look at the function on line ${i} and tell me what it returns. `;

describe('token counting', () => {
  it('counts several texts as the sum of their counts, each text on its own', async () => {
    const count = await loadTokenizer();
    // Texts longer than a slice are counted in slices, as countTokens counts one text.
    const texts = ['Say hi', '', 'refactor this module', '리팩터링 해줘', 'x'.repeat(40_000), `${'word '.repeat(5000)}end`];
    let sum = 0;
    for (const t of texts) sum += await countTokens(t);
    expect(await countTokensOfAll(texts)).toBe(sum);
    expect(await countTokensOfAll(['Say hi', 'refactor this module'])).toBe(count('Say hi') + count('refactor this module'));
    expect(await countTokensOfAll([])).toBe(0);
  });

  it('an estimate over thousands of short messages yields the event loop as it counts', async () => {
    // 4,000 messages of ~80 characters: 320k characters, ~20 slices of work. Awaiting a count per message
    // (the code before) never let the loop turn: promise callbacks run before the next turn.
    const texts = Array.from({ length: 4000 }, (_, i) => sentence(i));
    const { value, turns } = await loopTurnsDuring(() => estimateUsage({ texts, extra: '', chat: true, uncountedTokens: 0 }, '', 0));
    expect(turns).toBeGreaterThanOrEqual(10);
    const count = await loadTokenizer();
    expect(value.inputTokens).toBe(texts.reduce((n, t) => n + count(t), 0) + 4000 * 3 + 3);
  });

  it('half a million one-character messages are counted in bounded work and scaled', async () => {
    const texts = Array.from({ length: 500_000 }, () => 'a');
    const { value, turns } = await loopTurnsDuring(() => countTokensOfAll(texts));
    expect(value).toBe(500_000); // 'a' is one token: the scaled count is exact here
    expect(turns).toBeGreaterThanOrEqual(10);
  });

  it('one long text: sliced on whitespace, capped at ~1M characters and scaled', async () => {
    const text = 'word '.repeat(400_000); // 2M characters
    const { value, turns } = await loopTurnsDuring(() => countTokens(text));
    expect(turns).toBeGreaterThanOrEqual(30);
    const count = await loadTokenizer();
    const exact = count(text);
    expect(Math.abs(value - exact) / exact).toBeLessThan(0.01);
  });

  it('a special token written in a prompt (<|endoftext|>, <|im_start|>) is counted as the text it is', async () => {
    // Clients paste these strings (questions about tokenizers, chat templates, logs of model output). The
    // tokenizer's default refuses them with an error, which failed the request (token limits) or lost its
    // ledger row (an estimate). The API reads them as plain text, so they count as their characters do.
    await loadTokenizer();
    for (const special of ['<|endoftext|>', '<|im_start|>', '<|fim_prefix|>', '<|endofprompt|>']) {
      const text = `What does ${special} mean?`;
      const n = countTokensNow(text);
      expect(n, special).toBeGreaterThan(countTokensNow('What does  mean?') as number);
      expect(await countTokens(text)).toBe(n);
      expect(await countTokensOfAll([text, special])).toBe((n as number) + (countTokensNow(special) as number));
    }
    // As text, the string is several tokens (as the special token it would be one).
    expect(countTokensNow('<|endoftext|>')).toBeGreaterThanOrEqual(5);
    const usage = await estimateUsage({ texts: ['Say <|endoftext|>'], extra: '', chat: true, uncountedTokens: 0 }, 'It ends a document: <|endoftext|>', 0);
    expect(usage.outputTokens).toBe(countTokensNow('It ends a document: <|endoftext|>'));
    expect(usage.inputTokens).toBe((countTokensNow('Say <|endoftext|>') as number) + 6); // + the chat framing
  });

  it('real prompts count as the tokenizer counts them whole; a run of over 128 characters without a space costs at most a token per cut', async () => {
    // Texts are cut into pieces before the tokenizer sees them (BPE is quadratic in the length of a run): before a
    // space, where the tokenizer's split pattern starts a pre-token anyway, so only long runs can change a count.
    const count = await loadTokenizer();
    const arena = readFileSync(`${SHARED_DATA}prompts/arena-hard-v0.1.jsonl`, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { prompt: string }).prompt);
    // Korean sentences joined into texts longer than a slice (4,096 characters), counted asynchronously.
    const korean = readFileSync(`${SHARED_DATA}paraphrase-dev/korsts/sts-dev.tsv`, 'utf8').split('\n').slice(1).map((l) => l.split('\t')[5] ?? '');
    const koreanTexts = [0, 1, 2].map((k) => korean.slice(k * 300, (k + 1) * 300).join('\n'));
    expect(koreanTexts.every((t) => t.length > 4096)).toBe(true);
    let exact = 0;
    for (const text of [...arena, ...koreanTexts]) {
      const whole = count(text);
      const pieced = await countTokens(text);
      const longRuns = text.match(/\S{129,}|\s{129,}/g) ?? [];
      if (longRuns.length === 0) {
        expect(pieced, text.slice(0, 60)).toBe(whole);
        exact++;
        continue;
      }
      const cuts = longRuns.reduce((n, r) => n + Math.ceil(r.length / 128), 0);
      expect(pieced - whole, text.slice(0, 60)).toBeGreaterThanOrEqual(0);
      expect(pieced - whole, text.slice(0, 60)).toBeLessThanOrEqual(cuts);
    }
    expect(exact).toBeGreaterThanOrEqual(500); // all but the prompts with such a run
  });

  it('a long text without spaces (Korean syllables) yields the event loop as it is counted; counted whole, it held the loop 0.7 s', async () => {
    await loadTokenizer();
    let x = 1;
    const text = Array.from({ length: 16_384 }, () => String.fromCharCode(0xac00 + ((x = (x * 48271) % 2147483647) % 11172))).join('');
    expect(countTokensNow(text)).toBeUndefined(); // longer than a slice: not counted synchronously
    const { value, turns } = await loopTurnsDuring(() => countTokens(text));
    expect(turns).toBeGreaterThanOrEqual(3);
    // A token is at least one byte, and a syllable three in UTF-8; random syllables are ~2 tokens each in o200k.
    expect(value).toBeGreaterThan(text.length);
    expect(value).toBeLessThanOrEqual(text.length * 3);
  });
});
