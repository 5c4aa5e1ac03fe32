// v7 must reproduce the production rules exactly. An independent Python implementation of the spec
// (test/fixtures/v7_reference.py, where len() counts code points) classifies real prompts from
// ../shared/data and the TypeScript engine must agree on every one.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
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
