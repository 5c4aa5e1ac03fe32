import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { mediaParts } from '../../src/classify/prompt-text.js';
import { callText } from '../../src/usage/estimate.js';
import { TiergateError } from '../../src/errors.js';
import { declaredTools, parseLlmRequest, usageAsked, usageForced } from '../../src/llm/parse-request.js';

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
    ['bad role', 'invalid_value', 'messages[0].role', '{"messages":[{"role":"robot","content":"x"}]}'],
    ['content a number', 'invalid_request', 'messages[0].content', '{"messages":[{"role":"user","content":5}]}'],
    ['stream not a boolean', 'invalid_request', 'stream', '{"messages":[{"role":"user","content":"x"}],"stream":"yes"}'],
    // The token reservation multiplies by n, so a string a backend would coerce must not pass as "one".
    ['n a string', 'invalid_request', 'n', '{"messages":[{"role":"user","content":"x"}],"n":"100"}'],
    ['n zero', 'integer_below_min_value', 'n', '{"messages":[{"role":"user","content":"x"}],"n":0}'],
    ['max_tokens negative', 'integer_below_min_value', 'max_tokens', '{"messages":[{"role":"user","content":"x"}],"max_tokens":-1}'],
    ['an empty model', 'empty_string', 'model', '{"model":"","messages":[{"role":"user","content":"x"}]}'],
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
    ['{"messages":', 'We could not parse the JSON body of your request. The body must be valid JSON.'],
    ['5', 'The request body must be a JSON object.'],
    ['"hi"', 'The request body must be a JSON object.'],
    ['null', 'The request body must be a JSON object.'],
    ['[{"messages":[]}]', 'The request body must be a JSON object.'],
    ['{"messages":[null]}', "Invalid type for 'messages[0]': expected an object, but got null instead."],
    ['{"messages":[{"content":"x"}]}', "Missing required parameter: 'messages[0].role'."],
    ['{"messages":[{"role":"robot","content":"x"}]}', "Invalid value for 'messages[0].role': 'robot'. Supported values are: 'system', 'developer', 'user', 'assistant', 'tool', and 'function'."],
    ['{"messages":[{"role":5,"content":"x"}]}', "Invalid type for 'messages[0].role': expected one of 'system', 'developer', 'user', 'assistant', 'tool', and 'function', but got a number instead."],
    ['{"messages":[{"role":null,"content":"x"}]}', "Invalid type for 'messages[0].role': expected one of 'system', 'developer', 'user', 'assistant', 'tool', and 'function', but got null instead."],
    ['{"model":["a"],"messages":[{"role":"user","content":"x"}]}', "Invalid type for 'model': expected a string, but got an array instead."],
    ['{"messages":[]}', "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."],
    // Bounds in OpenAI's words, not zod's ("Too small: expected number to be >0", until 2026-12-06).
    ['{"messages":[{"role":"user","content":"x"}],"n":0}', "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead."],
    ['{"messages":[{"role":"user","content":"x"}],"max_completion_tokens":-5}', "Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 0, but got -5 instead."],
    ['{"model":"","messages":[{"role":"user","content":"x"}]}', "Invalid 'model': empty string. Expected a string with minimum length 1, but got an empty string instead."],
  ])('says what is wrong, and whether a field is missing or of the wrong type: %s', (body, message) => {
    const e = err(() => parseLlmRequest('chat', Buffer.from(body)));
    expect([e.entry.status, e.message]).toEqual([400, message]);
  });

  it.each([
    ['n a string', 'n', '{"prompt":"x","n":"2"}'],
    ['best_of a string', 'best_of', '{"prompt":"x","best_of":"5"}'],
    ['best_of negative', 'best_of', '{"prompt":"x","best_of":-1}'],
  ])('completions: %s → 400 naming %s', (_n, param, body) => {
    const e = err(() => parseLlmRequest('completions', Buffer.from(body)));
    expect([e.entry.status, e.param]).toEqual([400, param]);
  });

  it('the Responses API and completions word their bounds the same way', () => {
    const r = err(() => parseLlmRequest('responses', Buffer.from('{"input":"x","max_output_tokens":-1}')));
    expect([r.entry.code, r.param, r.message]).toEqual(['integer_below_min_value', 'max_output_tokens', "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 0, but got -1 instead."]);
    const c = err(() => parseLlmRequest('completions', Buffer.from('{"model":"","prompt":"x"}')));
    expect([c.entry.code, c.param]).toEqual(['empty_string', 'model']);
  });

  it('a value outside its list is named, bounded as any client text is (a role of a megabyte is not echoed whole)', () => {
    const e = err(() => parseLlmRequest('chat', Buffer.from(JSON.stringify({ messages: [{ role: 'r'.repeat(1_000_000), content: 'x' }] }))));
    expect([e.entry.code, e.param]).toEqual(['invalid_value', 'messages[0].role']);
    expect(e.message.length).toBeLessThan(500);
    expect(e.message).toContain("Supported values are: 'system',");
  });

  it('a byte order mark is taken off only when whole (EF BB BF), and a body of one alone is empty', () => {
    const body = Buffer.from('{"messages":[{"role":"user","content":"x"}]}');
    expect(parseLlmRequest('chat', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body])).messages).toHaveLength(1);
    for (const partial of [[0xef, 0xbb, 0x20], [0xef, 0x20, 0xbf], [0x20, 0xbb, 0xbf]]) {
      expect(err(() => parseLlmRequest('chat', Buffer.concat([Buffer.from(partial), body]))).entry.code, partial.join(',')).toBe('invalid_json');
    }
    expect(err(() => parseLlmRequest('chat', Buffer.from([0xef, 0xbb, 0xbf]))).entry.code).toBe('invalid_json');
    expect(err(() => parseLlmRequest('chat', Buffer.from([0xef, 0xbb]))).entry.code).toBe('invalid_json');
    // Cut short, the mark is a truncated UTF-8 sequence (since 2026-12-06 the message says so); a space is not.
    expect(err(() => parseLlmRequest('chat', Buffer.concat([Buffer.from([0xef, 0xbb]), Buffer.from('{}')]))).message).toBe('We could not parse the JSON body of your request. The body must be valid JSON, in UTF-8.');
    expect(err(() => parseLlmRequest('chat', Buffer.from('\u00a0{}'))).message).toBe('We could not parse the JSON body of your request. The body must be valid JSON.');
  });

  it('the depth limit counts containers only: a null or a number at the deepest level is fine', () => {
    // The body is level 1, messages 2, a message 3, its parts 4, a part 5.
    const deep = '{"messages":[{"role":"user","content":[{"type":"text","text":"x","x":null}]}]}';
    expect(parseLlmRequest('chat', Buffer.from(deep), 5).messages).toHaveLength(1);
    expect(err(() => parseLlmRequest('chat', Buffer.from(deep), 4)).message).toBe('The request body nests arrays and objects more than 4 levels deep.');
    expect(err(() => parseLlmRequest('chat', Buffer.from(deep.replace('"x":null', '"x":[]')), 5)).entry.code).toBe('invalid_request');
  });

  it('a completions prompt is one user message: a string, strings joined with a space, nothing for token ids', () => {
    const prompt = (p: unknown) => parseLlmRequest('completions', Buffer.from(JSON.stringify({ prompt: p }))).messages;
    expect(prompt('Say hi')).toEqual([{ role: 'user', content: 'Say hi' }]);
    expect(prompt(['Say', 'hi'])).toEqual([{ role: 'user', content: 'Say hi' }]);
    expect(prompt([1, 2, 3])).toEqual([{ role: 'user', content: '' }]);
    expect(prompt([[1, 2], [3]])).toEqual([{ role: 'user', content: '' }]);
  });

  it('a completions batch says how many prompts it holds, and token-id prompts how many ids', () => {
    const parsed = (p: unknown) => {
      const r = parseLlmRequest('completions', Buffer.from(JSON.stringify({ prompt: p })));
      return [r.prompts, r.promptTokenIds];
    };
    expect(parsed('Say hi')).toEqual([undefined, undefined]);
    expect(parsed(['Say', 'hi', 'there'])).toEqual([3, undefined]);
    expect(parsed([1, 2, 3])).toEqual([undefined, 3]);
    expect(parsed([[1, 2], [3], []])).toEqual([3, 3]);
    const chat = parseLlmRequest('chat', Buffer.from('{"messages":[{"role":"user","content":"hi"}]}'));
    expect([chat.prompts, chat.promptTokenIds]).toEqual([undefined, undefined]);
  });

  it("declared tools: chat's tools and legacy functions; completions have neither", () => {
    const tools = (endpoint: 'chat' | 'completions', o: Record<string, unknown>) =>
      declaredTools(parseLlmRequest(endpoint, Buffer.from(JSON.stringify({ messages: [{ role: 'user', content: 'x' }], prompt: 'x', ...o }))));
    expect(tools('chat', { tools: [{}, {}], functions: [{}] })).toBe(3);
    expect(tools('chat', { functions: [{}] })).toBe(1);
    expect(tools('chat', {})).toBe(0);
    expect(tools('completions', { functions: [{}] })).toBe(0);
  });

  it('the usage chunk: forced on every chat and completions stream, asked only by include_usage true', () => {
    const r = (endpoint: 'chat' | 'completions' | 'responses', o: Record<string, unknown>) =>
      parseLlmRequest(endpoint, Buffer.from(JSON.stringify({ messages: [{ role: 'user', content: 'x' }], prompt: 'x', input: 'x', ...o })));
    expect(usageForced(r('chat', { stream: true }))).toBe(true);
    expect(usageForced(r('completions', { stream: true }))).toBe(true);
    expect(usageForced(r('chat', {}))).toBe(false);
    expect(usageForced(r('responses', { stream: true }))).toBe(false); // its last event always has usage
    expect(usageAsked(r('chat', { stream: true, stream_options: { include_usage: true } }))).toBe(true);
    expect(usageAsked(r('chat', { stream: true, stream_options: { include_usage: false } }))).toBe(false);
    expect(usageAsked(r('chat', { stream: true }))).toBe(false);
    expect(usageAsked(r('chat', { stream: true, stream_options: null }))).toBe(false);
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

describe('Responses API requests', () => {
  const parse = (o: unknown) => parseLlmRequest('responses', Buffer.from(JSON.stringify(o)));

  it('presents instructions and input items as chat messages, one per item', () => {
    // The shape an agent sends each turn with store: false: its whole history as items.
    const r = parse({
      model: 'auto',
      store: false,
      instructions: 'You are a coding agent.',
      input: [
        { type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'Be terse.' }] },
        { role: 'user', content: 'List the files' },
        { type: 'reasoning', id: 'rs_1', summary: [], encrypted_content: 'gAAAA' },
        { type: 'function_call', call_id: 'c1', name: 'shell', arguments: '{"cmd":"ls"}' },
        { type: 'function_call_output', call_id: 'c1', output: 'a.ts\nb.ts' },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Two files.' }, { type: 'refusal', refusal: 'No.' }] },
        { role: 'user', content: [{ type: 'input_text', text: 'Open a.ts' }, { type: 'input_image', image_url: 'data:image/png;base64,AAA' }] },
      ],
      tools: [{ type: 'function', name: 'shell', parameters: {} }],
      reasoning: { effort: 'high' },
    });
    expect(r).toMatchObject({ endpoint: 'responses', model: 'auto', stream: false, stateful: false });
    expect(r.messages).toEqual([
      { role: 'system', content: 'You are a coding agent.' },
      { role: 'developer', content: [{ type: 'text', text: 'Be terse.' }] },
      { role: 'user', content: 'List the files' },
      { role: 'assistant', content: null },
      // A call is chat's tool call: what the model wrote is read back as prompt (callText), never classified.
      { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'shell', arguments: '{"cmd":"ls"}' } }] },
      { role: 'tool', content: 'a.ts\nb.ts' },
      { role: 'assistant', content: [{ type: 'text', text: 'Two files.' }, { type: 'text', text: 'No.' }] },
      // A part with no text keeps its type only, for rules on part types (anyPart); nothing reads its payload.
      { role: 'user', content: [{ type: 'text', text: 'Open a.ts' }, { type: 'input_image' }] },
    ]);
    expect(declaredTools(r)).toBe(1);
    // The image is the one part the tokenizer cannot count (the refusal became text).
    expect(mediaParts(r.messages)).toBe(1);
    // Unknown fields (tools, reasoning, encrypted content) are kept for the backend.
    expect(r.json.reasoning).toEqual({ effort: 'high' });
  });

  it("a coding agent's own tools and their outputs (Codex: shell, patches; computer use) are read as chat's tool calls and tool messages", () => {
    const r = parse({
      store: false,
      input: [
        { type: 'local_shell_call', call_id: 'c1', action: { type: 'exec', command: ['cat', 'a.ts'] }, status: 'completed' },
        { type: 'local_shell_call_output', call_id: 'c1', output: 'export const a = 1;' },
        { type: 'shell_call', call_id: 'c2', action: { commands: ['npm test'] }, status: 'completed' },
        { type: 'shell_call_output', call_id: 'c2', output: [{ stdout: '3 passed', stderr: 'warn: slow', outcome: { type: 'exit', exit_code: 0 } }] },
        { type: 'apply_patch_call', call_id: 'c3', operation: { type: 'update_file', path: 'a.ts', diff: '-1\n+2' }, status: 'completed' },
        { type: 'apply_patch_call_output', call_id: 'c3', status: 'completed', output: 'Done' },
        { type: 'custom_tool_call', call_id: 'c4', name: 'grep', input: 'TODO' },
        { type: 'computer_call_output', call_id: 'c5', output: { type: 'computer_screenshot', image_url: 'data:image/png;base64,AAA' } },
        { type: 'image_generation_call', id: 'ig_1', result: 'iVBORw0KGgo' },
        { type: 'compaction', id: 'cmp_1', encrypted_content: 'gAAAA' },
      ],
    });
    const call = (name: string, args: string) => ({ role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name, arguments: args } }] });
    expect(r.messages).toEqual([
      call('local_shell_call', '{"type":"exec","command":["cat","a.ts"]}'),
      { role: 'tool', content: 'export const a = 1;' },
      call('shell_call', '{"commands":["npm test"]}'),
      { role: 'tool', content: [{ type: 'text', text: '3 passed\nwarn: slow' }] },
      call('apply_patch_call', '{"type":"update_file","path":"a.ts","diff":"-1\\n+2"}'),
      { role: 'tool', content: 'Done' },
      call('grep', 'TODO'),
      // A screenshot is counted like an image part (budgets.mediaPartEstimate); a generated image's data is not read.
      { role: 'tool', content: [{ type: 'computer_screenshot' }] },
      call('image_generation_call', ''),
      { role: 'assistant', content: null },
    ]);
    expect(mediaParts(r.messages)).toBe(1);
    expect(callText(r.messages).split('\n')).toEqual(expect.arrayContaining(['local_shell_call', '{"commands":["npm test"]}', 'grep', 'TODO']));
  });

  it("chat's tool calls and legacy function_call are read back by callText: name, arguments, a custom tool's input", () => {
    const r = parseLlmRequest('chat', Buffer.from(JSON.stringify({ messages: [
      { role: 'user', content: 'Write it' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'write_file', arguments: '{"path":"a.ts","text":"export {}"}' } }, { id: 'c2', type: 'custom', custom: { name: 'patch', input: '*** Begin Patch' } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'ok' },
      { role: 'assistant', content: null, function_call: { name: 'old_style', arguments: '{}' } },
    ] })));
    expect(callText(r.messages)).toBe('write_file\n{"path":"a.ts","text":"export {}"}\npatch\n*** Begin Patch\nold_style\n{}');
    expect(callText([{ role: 'user', content: 'no calls' }])).toBe('');
  });

  it('a string input is one user message; no input at all is allowed (a continuation may carry none)', () => {
    expect(parse({ input: 'hi', store: false }).messages).toEqual([{ role: 'user', content: 'hi' }]);
    expect(parse({ previous_response_id: 'resp_1' }).messages).toEqual([]);
  });

  it.each([
    [{ input: 'x' }, true], // stored by default
    [{ input: 'x', store: true }, true],
    [{ input: 'x', store: null }, true],
    [{ input: 'x', store: false }, false],
    [{ input: 'x', store: false, previous_response_id: 'resp_1' }, true],
    [{ input: 'x', store: false, conversation: { id: 'conv_1' } }, true],
    [{ input: 'x', store: false, background: true }, true],
    [{ input: 'x', store: false, previous_response_id: null, conversation: null, background: false }, false],
  ])('%j keeps state on the backend: %s', (body, stateful) => {
    expect(parse(body).stateful).toBe(stateful);
  });

  it('chat and completions requests never do', () => {
    expect(parseLlmRequest('chat', Buffer.from('{"messages":[{"role":"user","content":"x"}],"store":true}')).stateful).toBe(false);
  });

  it.each([
    [{ input: 42 }, 'input'],
    [{ input: 'x', instructions: 7 }, 'instructions'],
    [{ input: 'x', max_output_tokens: 1.5 }, 'max_output_tokens'],
    [{ input: 'x', previous_response_id: 3 }, 'previous_response_id'],
    [{ input: [{ role: 5, content: 'x' }] }, 'input'],
  ])('rejects %j naming %s', (body, param) => {
    const e = err(() => parse(body));
    expect([e.entry.status, e.entry.code, e.param]).toEqual([400, 'invalid_request', param]);
  });
});

describe('nesting depth (limits.maxJsonDepth)', () => {
  /** A chat body whose `metadata` holds `inner` arrays inside each other: the body is `inner + 1` levels deep. */
  const body = (inner: number) => Buffer.from(`{"messages":[{"role":"user","content":"hi"}],"metadata":${'['.repeat(inner)}${']'.repeat(inner)}}`);
  it.each([
    [4, 3, 'accepted'],
    [4, 4, 'refused'],
    [128, 127, 'accepted'],
    [128, 128, 'refused'],
  ] as const)('limit %i, body %i+1 levels deep: %s', (limit, inner, want) => {
    if (want === 'accepted') expect(parseLlmRequest('chat', body(inner), limit).messages).toHaveLength(1);
    else {
      const e = err(() => parseLlmRequest('chat', body(inner), limit));
      expect([e.entry.status, e.entry.code, e.message]).toEqual([400, 'invalid_request', `The request body nests arrays and objects more than ${limit} levels deep.`]);
    }
  });

  it('the default is 128, and objects count as arrays do', () => {
    const objects = (inner: number) => Buffer.from(`{"messages":[{"role":"user","content":"hi"}],"x":${'{"a":'.repeat(inner)}1${'}'.repeat(inner)}}`);
    expect(parseLlmRequest('chat', objects(127)).messages).toHaveLength(1);
    expect(err(() => parseLlmRequest('chat', objects(128))).entry.code).toBe('invalid_request');
  });
});

describe('bytes that are not UTF-8', () => {
  // Decoded, they became U+FFFD: the backend got other text than the client sent, where it would have refused it.
  const body = (content: Buffer) => Buffer.concat([Buffer.from('{"messages":[{"role":"user","content":"'), content, Buffer.from('"}]}')]);
  it.each([
    ['a lone continuation byte', [0x80]],
    ['a Latin-1 é', [0xe9]],
    ['a truncated sequence', [0xe2, 0x82]],
    ['an overlong encoding of "/"', [0xc0, 0xaf]],
    ['an encoded surrogate', [0xed, 0xa0, 0x80]],
    ['bytes that are never UTF-8', [0xff, 0xfe]],
  ])('%s is invalid_json', (_, bytes) => {
    const e = err(() => parseLlmRequest('chat', body(Buffer.from(bytes))));
    expect([e.entry.status, e.entry.code, e.message]).toEqual([400, 'invalid_json', 'We could not parse the JSON body of your request. The body must be valid JSON, in UTF-8.']);
  });

  it('every UTF-8 character is fine: two, three and four bytes, and an escaped lone surrogate, which JSON allows', () => {
    expect(parseLlmRequest('chat', body(Buffer.from('é € 😀 \\ud800'))).messages[0]?.content).toBe('é € 😀 \ud800');
  });
});

describe('numbers beyond the range of a double', () => {
  // JSON.parse reads them as ±Infinity, which JSON.stringify writes as null: the rewritten body would have
  // carried `"temperature":null`, the backend's default, for a value the backend (and OpenAI) would refuse.
  const MAX = `±${Number.MAX_VALUE}`;
  it.each([
    ['max_tokens', '{"model":"auto","max_tokens":1e400,"messages":[{"role":"user","content":"x"}]}'],
    ['temperature', '{"model":"auto","temperature":-1E+309,"messages":[{"role":"user","content":"x"}]}'],
    ['tools[1].function.parameters.properties.n.maximum', '{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"b","parameters":{"type":"object","properties":{"n":{"type":"number","maximum":1e999}}}}}]}'],
    ['logit_bias.50256', '{"messages":[{"role":"user","content":"x"}],"logit_bias":{"50256":-1e400}}'],
  ])('refused, naming %s', (param, body) => {
    const e = err(() => parseLlmRequest('chat', Buffer.from(body)));
    expect([e.entry.status, e.entry.code, e.param, e.message]).toEqual([400, 'invalid_request', param, `Invalid '${param}': number out of range. A JSON number must lie within ${MAX}.`]);
  });

  it('on every endpoint; the largest double, its text in a string, and a long integer are fine', () => {
    expect(err(() => parseLlmRequest('completions', Buffer.from('{"prompt":"x","seed":1e400}'))).param).toBe('seed');
    expect(err(() => parseLlmRequest('responses', Buffer.from('{"input":"x","top_p":1e400}'))).param).toBe('top_p');
    const fine = `{"messages":[{"role":"user","content":"1e400"}],"a":${Number.MAX_VALUE},"b":-${Number.MAX_VALUE},"c":1e-400,"seed":${'9'.repeat(400)}}`;
    expect(parseLlmRequest('chat', Buffer.from(fine)).json).toMatchObject({ a: Number.MAX_VALUE, b: -Number.MAX_VALUE, c: 0 });
    // The 400-digit integer goes on digit for digit, as every integer beyond 2^53 does (exact-numbers.ts).
    expect(parseLlmRequest('chat', Buffer.from(fine)).exact?.seed).toBe(`\u0001tg${'9'.repeat(400)}`);
    // Beside such an integer, a float out of range is still refused.
    expect(err(() => parseLlmRequest('chat', Buffer.from(fine.replace('"c":1e-400', '"c":1e400')))).param).toBe('c');
  });

  it('a number field given an integer too long for a double is out of range, not of the wrong type', () => {
    const e = err(() => parseLlmRequest('chat', Buffer.from(`{"max_tokens":${'9'.repeat(400)},"messages":[{"role":"user","content":"x"}]}`)));
    expect([e.param, e.message]).toEqual(['max_tokens', `Invalid 'max_tokens': number out of range. A JSON number must lie within ${MAX}.`]);
  });

  it('the depth limit still comes first where the body is both too deep and out of range beyond it', () => {
    const e = err(() => parseLlmRequest('chat', Buffer.from('{"messages":[{"role":"user","content":"x"}],"m":[[[1e400]]]}'), 3));
    expect(e.message).toBe('The request body nests arrays and objects more than 3 levels deep.');
    // Within the limit, the number is what is refused.
    expect(err(() => parseLlmRequest('chat', Buffer.from('{"messages":[{"role":"user","content":"x"}],"m":[[[1e400]]]}'), 4)).param).toBe('m[0][0][0]');
    // A number in range before a branch too deep does not end the walk.
    expect(err(() => parseLlmRequest('chat', Buffer.from('{"n":1,"messages":[{"role":"user","content":"x"}],"m":[[[]]]}'), 3)).message).toBe('The request body nests arrays and objects more than 3 levels deep.');
    // Every kind of value may come before the one refused.
    const mixed = '{"messages":[{"role":"user","content":"x"}],"a":null,"b":true,"c":"s","d":[1,{"e":null}],"f":{"g":-1e400}}';
    expect(err(() => parseLlmRequest('chat', Buffer.from(mixed))).param).toBe('f.g');
  });
});

describe('a leading UTF-8 byte order mark', () => {
  const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
  const chat = '{"model":"auto","seed":18446744073709551615,"messages":[{"role":"user","content":"hi"}]}';

  // What the backends' own parsers do (Python's json.loads takes it off a body of bytes): a body file saved by
  // Windows PowerShell 5.1 starts with one.
  it('is taken off: the body reads as it would without it, long integers included', () => {
    const r = parseLlmRequest('chat', Buffer.concat([BOM, Buffer.from(chat)]));
    expect(r.json).toEqual(parseLlmRequest('chat', Buffer.from(chat)).json);
    expect(r.exact?.seed).toBe('\x01tg18446744073709551615'); // the digits kept (exact-numbers.ts)
    expect(r.messages).toEqual([{ role: 'user', content: 'hi' }]);
  });

  it.each([
    ['two of them', Buffer.concat([BOM, BOM, Buffer.from(chat)])],
    ['one after whitespace', Buffer.concat([Buffer.from(' '), BOM, Buffer.from(chat)])],
    ['a UTF-16 one', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(chat)])],
    ['half of one', Buffer.concat([BOM.subarray(0, 2), Buffer.from(chat)])],
    ['one alone', BOM],
  ])('anything else is still not JSON: %s', (_name, body) => {
    expect(err(() => parseLlmRequest('chat', body)).entry.code).toBe('invalid_json');
  });
});
