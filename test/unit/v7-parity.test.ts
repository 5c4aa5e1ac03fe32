// v7 must reproduce the production rules exactly. An independent Python implementation of the spec
// (test/fixtures/v7_reference.py, where len() counts code points) classifies real prompts from
// ../shared/data and the TypeScript engine must agree on every one.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileClassifier } from '../../src/classify/engine.js';
import { V7 } from '../../src/classify/v7.js';
import type { ChatMessage } from '../../src/llm/openai-request.js';

const DATA = fileURLToPath(new URL('../../../shared/data/', import.meta.url));
const REFERENCE = fileURLToPath(new URL('../fixtures/v7_reference.py', import.meta.url));

function jsonl<T>(file: string): T[] {
  return readFileSync(DATA + file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as T);
}

function corpus(): ChatMessage[][] {
  const out: ChatMessage[][] = [];
  for (const r of jsonl<{ prompt: string }>('prompts/arena-hard-v0.1.jsonl')) out.push([{ role: 'user', content: r.prompt }]);
  for (const r of jsonl<{ turns: string[] }>('prompts/mt-bench.jsonl')) {
    out.push([{ role: 'user', content: r.turns[0] ?? '' }]);
    // A two-turn conversation with the model's answer in between, plus a system prompt: 4 messages.
    out.push([
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: r.turns[0] ?? '' },
      { role: 'assistant', content: null, tool_calls: [] },
      { role: 'user', content: [{ type: 'text', text: r.turns[1] ?? '' }] },
    ]);
  }
  for (const r of jsonl<{ question: string }>('prompts/gsm8k-test.jsonl')) out.push([{ role: 'user', content: r.question }]);
  const kor = readFileSync(DATA + 'paraphrase-dev/korsts/sts-dev.tsv', 'utf8').split('\n').slice(1, 800);
  for (const line of kor) {
    const cols = line.split('\t');
    if (cols.length < 7) continue;
    out.push([{ role: 'user', content: cols[5] ?? '' }, { role: 'assistant', content: '' }, { role: 'user', content: cols[6] ?? '' }]);
    // Six messages of short Korean text: the message-count rule.
    out.push(Array.from({ length: 6 }, (_, i): ChatMessage => ({ role: i % 2 ? 'assistant' : 'user', content: cols[5 + (i % 2)] ?? '' })));
  }
  return out;
}

describe('v7 parity with an independent reference implementation', () => {
  it('agrees on every prompt of arena-hard, mt-bench, gsm8k and KorSTS', () => {
    const convs = corpus();
    const input = convs.map((messages) => JSON.stringify({ messages })).join('\n');
    const expected = execFileSync('python3', [REFERENCE], { input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }).trim().split('\n');
    expect(expected).toHaveLength(convs.length);
    const v7 = compileClassifier('v7', V7);
    const disagreements = convs.map((m, i) => ({ i, ts: v7(m).tier, py: expected[i] })).filter((d) => d.ts !== d.py);
    expect(disagreements).toEqual([]);
    // The corpus exercises both tiers and every v7 rule, so the agreement is not vacuous.
    const rules = new Set(convs.map((m) => v7(m).rule));
    expect([...rules].sort()).toEqual(['default', 'keyword', 'long_prompt', 'many_messages']);
    expect(convs.length).toBeGreaterThan(3000);
  });
});

/**
 * Generated conversations, built to sit on the rules' edges: near 500 code points, 5 or 6 messages, keywords
 * in any case and cut across messages, and text where code points, UTF-16 units and lower-casing disagree
 * (emoji, 'İ' which lower-cases to two code points, final sigma, combining marks, fullwidth letters, lone
 * surrogates, NUL). The reference decides each; fast-check's sampling is random per run, and a disagreement is
 * printed in full.
 */
describe('v7 parity on generated edge cases', () => {
  const piece = fc.oneof(
    fc.constantFrom('a', 'Z', ' ', '.', '\n', 'refac', 'tor', 'REFACTOR', 'Design', 'DESİGN', 'debug', 'Optimize', 'perform', 'ance', 'ＲＥＦＡＣＴＯＲ'),
    fc.constantFrom('리팩터', '설계', '아키텍처', '분석', '마이그레이션', '리', '팩터', '한', '글'),
    fc.constantFrom('😀', '👩‍💻', '🇰🇷', 'İ', 'Σ', 'ΟΔΟΣ', 'ß', 'ẞ', 'e\u0301', '\u200d', '\u0000', '\ud800', '\udfff', 'Ǆ'),
    fc.string({ unit: 'grapheme', maxLength: 3 }),
  );
  const text = fc.oneof(
    fc.array(piece, { maxLength: 12 }).map((p) => p.join('')),
    // Near the 500-character edge, counted either way.
    fc.tuple(fc.integer({ min: 490, max: 510 }), fc.constantFrom('a', '가', '😀', 'İ', 'A'), fc.array(piece, { maxLength: 3 })).map(([n, c, extra]) => c.repeat(n) + extra.join('')),
    fc.integer({ min: 240, max: 260 }).map((n) => 'ab'.repeat(n)),
  );
  const content = fc.oneof(
    { weight: 4, arbitrary: text },
    fc.constantFrom(null, ''),
    fc.array(fc.oneof(text.map((t) => ({ type: 'text', text: t })), fc.constant({ type: 'image_url', image_url: { url: 'https://x/y.png' } })), { maxLength: 3 }),
  );
  const role = fc.constantFrom('system', 'user', 'assistant', 'developer', 'tool');
  const conversation = fc.oneof(
    { weight: 9, arbitrary: fc.array(fc.record({ role, content }), { minLength: 1, maxLength: 8 }) },
    // The message-count edge itself: 5 to 7 short messages with no keyword, empty and null ones among them. Left
    // to the arbitrary above, whose texts are mostly keywords, one run of 3,000 drew not one conversation that
    // reached the many_messages rule.
    fc.array(fc.record({ role, content: fc.constantFrom('hi', 'ok 😀', 'İ', '', null) }), { minLength: 5, maxLength: 7 }),
  ) as fc.Arbitrary<ChatMessage[]>;

  it('agrees with the reference on 3,000 generated conversations', () => {
    const convs = fc.sample(conversation, 3000);
    const input = convs.map((messages) => JSON.stringify({ messages })).join('\n');
    const expected = execFileSync('python3', [REFERENCE], { input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }).trim().split('\n');
    expect(expected).toHaveLength(convs.length);
    const v7 = compileClassifier('v7', V7);
    // Each through JSON, as a request body reaches the classifier (a lone surrogate survives as itself).
    const disagreements = convs
      .map((m, i) => ({ conversation: JSON.stringify(m), ts: v7(JSON.parse(JSON.stringify(m)) as ChatMessage[]).tier, py: expected[i] }))
      .filter((d) => d.ts !== d.py);
    expect(disagreements).toEqual([]);
    const rules = new Set(convs.map((m) => v7(m).rule));
    expect([...rules].sort()).toEqual(['default', 'keyword', 'long_prompt', 'many_messages']);
  });
});
