import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TiergateError } from '../../src/errors.js';
import { parseLlmRequest } from '../../src/llm/parse-request.js';

const DIR = fileURLToPath(new URL('../../../shared/data/openai-transcripts/extracted/', import.meta.url));
const fixtures = readdirSync(DIR).filter((f) => f.endsWith('.request.json'));

function err(fn: () => unknown): TiergateError {
  try {
    fn();
  } catch (e) {
    if (e instanceof TiergateError) return e;
    throw e;
  }
  throw new Error('expected a TiergateError');
}

describe('real OpenAI request bodies', () => {
  const chat = fixtures.filter((f) => (f.startsWith('chat-') || f.startsWith('azure-chat')) && !['chat-no-messages.request.json'].includes(f));
  it.each(chat)('accepts %s', (f) => {
    const body = readFileSync(DIR + f);
    const r = parseLlmRequest('chat', body);
    expect(r.messages.length).toBeGreaterThan(0);
    // Unknown fields are kept for the backend.
    expect(Object.keys(r.json).sort()).toEqual(Object.keys(JSON.parse(body.toString()) as object).sort());
  });

  it.each(fixtures.filter((f) => f.startsWith('completion-') && !f.includes('bad-request')))('accepts %s', (f) => {
    expect(parseLlmRequest('completions', readFileSync(DIR + f)).endpoint).toBe('completions');
  });

  it('rejects chat-no-messages like OpenAI does', () => {
    const e = err(() => parseLlmRequest('chat', readFileSync(DIR + 'chat-no-messages.request.json')));
    const recorded = JSON.parse(readFileSync(DIR + 'chat-no-messages.response.json', 'utf8')) as { error: Record<string, unknown> };
    expect({ message: e.message, param: e.param, code: e.entry.code, type: e.entry.type }).toEqual({
      message: recorded.error.message,
      param: recorded.error.param,
      code: recorded.error.code,
      type: recorded.error.type,
    });
  });
});

describe('bad input', () => {
  it.each([
    ['invalid JSON', 'invalid_json', null, '{"messages":'],
    ['a JSON array', 'invalid_request', null, '[1]'],
    ['missing messages', 'invalid_request', 'messages', '{"model":"auto"}'],
    ['messages not an array', 'invalid_request', 'messages', '{"messages":"hi"}'],
    ['bad role', 'invalid_request', 'messages[0].role', '{"messages":[{"role":"robot","content":"x"}]}'],
    ['content a number', 'invalid_request', 'messages[0].content', '{"messages":[{"role":"user","content":5}]}'],
    ['stream not a boolean', 'invalid_request', 'stream', '{"messages":[{"role":"user","content":"x"}],"stream":"yes"}'],
    // The token reservation multiplies by n, so a string a backend would coerce must not pass as "one".
    ['n a string', 'invalid_request', 'n', '{"messages":[{"role":"user","content":"x"}],"n":"100"}'],
    ['n zero', 'invalid_request', 'n', '{"messages":[{"role":"user","content":"x"}],"n":0}'],
  ])('%s → 400 %s naming %s', (_n, code, param, body) => {
    const e = err(() => parseLlmRequest('chat', Buffer.from(body)));
    expect([e.entry.status, e.entry.code, e.param]).toEqual([400, code, param]);
    if (param) expect(e.message).toContain(param);
  });

  it.each([
    ['{"model":"auto"}', "Missing required parameter: 'messages'."],
    ['{"messages":[{"role":"user","content":"x"}],"stream":"yes"}', "Invalid type for 'stream': expected a boolean, but got a string instead."],
    ['{"messages":[{"role":"user","content":"x"}],"n":"3"}', "Invalid type for 'n': expected a number, but got a string instead."],
    ['{"messages":{"0":{"role":"user"}}}', "Invalid type for 'messages': expected an array, but got an object instead."],
    ['{"messages":[{"role":"user","content":5}]}', "Invalid type for 'messages[0].content': a number is not one of the accepted types."],
    ['{"messages":[{"role":"user","content":"x"}],"stream_options":null,"max_tokens":null,"model":null}', "Invalid type for 'model': expected a string, but got null instead."],
  ])('says whether a field is missing or of the wrong type: %s', (body, message) => {
    expect(err(() => parseLlmRequest('chat', Buffer.from(body))).message).toBe(message);
  });

  it.each([
    ['n a string', 'n', '{"prompt":"x","n":"2"}'],
    ['best_of a string', 'best_of', '{"prompt":"x","best_of":"5"}'],
    ['best_of negative', 'best_of', '{"prompt":"x","best_of":-1}'],
  ])('completions: %s → 400 naming %s', (_n, param, body) => {
    const e = err(() => parseLlmRequest('completions', Buffer.from(body)));
    expect([e.entry.status, e.param]).toEqual([400, param]);
  });

  it('accepts null content with tool_calls, tool and developer roles, and parts arrays', () => {
    const r = parseLlmRequest(
      'chat',
      Buffer.from(
        JSON.stringify({
          model: 'auto',
          messages: [
            { role: 'developer', content: 'be brief' },
            { role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'input_audio', input_audio: { data: 'x', format: 'wav' } }] },
            { role: 'assistant', content: null, tool_calls: [{ id: 't', type: 'function', function: { name: 'f', arguments: '{}' } }] },
            { role: 'tool', content: 'result', tool_call_id: 't' },
          ],
          some_future_param: { keep: true },
        }),
      ),
    );
    expect(r.messages).toHaveLength(4);
    expect(r.json.some_future_param).toEqual({ keep: true });
  });
});
