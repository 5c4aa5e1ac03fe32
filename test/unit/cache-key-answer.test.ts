// The exact key (what counts as the same question) and the answer assembler/replay (what is kept, and how it
// goes back out in either wire format).
import { describe, expect, it } from 'vitest';
import { AnswerAssembler, answerBytes, replayJson, replaySse, type CachedAnswer, type CachedChoice } from '../../src/cache/answer.js';
import { MAX_CLIENT_TEXT } from '../../src/ledger/client-text.js';
import fc from 'fast-check';
import { canonical, requestKeys, uncacheable, type CacheScope } from '../../src/cache/request-key.js';
import { parseLlmRequest } from '../../src/llm/parse-request.js';
import { cacheControl } from '../../src/stages/cache-lookup.js';

const scope: CacheScope = { tenant: 'acme', namespace: '0', tier: 'weak', model: 'weak-model' };
const exactKey = (s: CacheScope, llm: ReturnType<typeof parseLlmRequest>) => requestKeys(s, llm).exact;
const semanticParts = (s: CacheScope, llm: ReturnType<typeof parseLlmRequest>) => requestKeys(s, llm).semantic();
const req = (o: Record<string, unknown>) => parseLlmRequest('chat', Buffer.from(JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }], ...o })));
const key = (o: Record<string, unknown> = {}, s: Partial<CacheScope> = {}) => exactKey({ ...scope, ...s }, req(o));

describe('exact key', () => {
  it('is the same for the same question, whatever the key order, stream flag, user or metadata', () => {
    expect(key({ temperature: 0, top_p: 1 })).toBe(key({ top_p: 1, temperature: 0 }));
    expect(key({ stream: true, user: 'u1', metadata: { a: 1 } })).toBe(key());
    // A string and a one-part text array are the same content.
    expect(key({ messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] })).toBe(key());
  });

  it.each([
    ['tenant', {}, { tenant: 'globex' }],
    ['namespace', {}, { namespace: '1' }],
    ['tier', {}, { tier: 'strong' }],
    ['upstream model', {}, { model: 'other' }],
    ['question', { messages: [{ role: 'user', content: 'hi!' }] }, {}],
    ['system prompt', { messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'hi' }] }, {}],
    ['temperature', { temperature: 0.2 }, {}],
    ['max_tokens', { max_tokens: 5 }, {}],
    ['seed', { seed: 7 }, {}],
    ['stop', { stop: ['\n'] }, {}],
    ['response_format', { response_format: { type: 'json_object' } }, {}],
    ['tools', { tools: [{ type: 'function', function: { name: 'f' } }] }, {}],
    ['n', { n: 2 }, {}],
    // Fields tiergate has no list of: vLLM's sampling and structured-output parameters, and any other. Each was
    // left out of the key before 2026-12-03, so a request constrained to other choices got this one's answer.
    ['guided_choice (vLLM)', { guided_choice: ['yes', 'no'] }, {}],
    ['structured_outputs (vLLM)', { structured_outputs: { choice: ['a', 'b'] } }, {}],
    ['chat_template_kwargs (vLLM)', { chat_template_kwargs: { enable_thinking: false } }, {}],
    ['top_k (vLLM)', { top_k: 20 }, {}],
    ['a field nobody has named yet', { x_backend_knob: 1 }, {}],
  ])('differs by %s', (_name, o, s) => {
    expect(key(o, s)).not.toBe(key());
  });

  it('differs by every value of a field it was not told about, big integers digit for digit', () => {
    expect(key({ guided_choice: ['yes', 'no'] })).not.toBe(key({ guided_choice: ['a', 'b'] }));
    expect(key({ chat_template_kwargs: { enable_thinking: true } })).not.toBe(key({ chat_template_kwargs: { enable_thinking: false } }));
    const big = (digits: string) => exactKey(scope, parseLlmRequest('chat', Buffer.from(`{"messages":[{"role":"user","content":"hi"}],"vllm_xargs":{"id":${digits}}}`)));
    expect(big('9007199254740993')).not.toBe(big('9007199254740992'));
  });

  it('a field named __proto__ counts like any other, at the top and in a message', () => {
    const raw = (body: string) => exactKey(scope, parseLlmRequest('chat', Buffer.from(body)));
    expect(raw('{"messages":[{"role":"user","content":"hi"}],"__proto__":{"a":1}}')).not.toBe(raw('{"messages":[{"role":"user","content":"hi"}],"__proto__":{"a":2}}'));
    expect(raw('{"messages":[{"role":"user","content":"hi","__proto__":{"a":1}}]}')).not.toBe(raw('{"messages":[{"role":"user","content":"hi","__proto__":{"a":2}}]}'));
  });

  it.each([
    ['stream_options', { stream: true, stream_options: { include_usage: true } }],
    ['prompt_cache_key', { prompt_cache_key: 'k-1' }],
    ['service_tier', { service_tier: 'flex' }],
    ['safety_identifier', { safety_identifier: 'u-hash' }],
    ['store', { store: true }],
    ["vLLM's scheduling priority, prefix-cache salt and request id", { priority: 5, cache_salt: 's', request_id: 'r-1' }],
    ['a field set to null', { x_backend_knob: null }],
  ])('does not differ by %s', (_name, o) => {
    expect(key(o)).toBe(key());
  });

  it("an earlier turn's other fields count (an assistant's reasoning); nulls and empty arrays do not", () => {
    const convo = (assistant: Record<string, unknown>) => ({
      messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a', ...assistant }, { role: 'user', content: 'and then?' }],
    });
    // vLLM hands an assistant turn's reasoning back to the chat template (interleaved thinking): another
    // reasoning is another context.
    expect(key(convo({ reasoning: 'think A' }))).not.toBe(key(convo({ reasoning: 'think B' })));
    expect(key(convo({ reasoning: 'think A' }))).not.toBe(key(convo({})));
    expect(key(convo({ function_call: { name: 'f', arguments: '{}' } }))).not.toBe(key(convo({})));
    // What an SDK echoes back from a response says nothing.
    expect(key(convo({ refusal: null, annotations: [], audio: null }))).toBe(key(convo({})));
    // The same holds in the semantic partition, for earlier turns and for the question's own message.
    const part = (o: Record<string, unknown>) => semanticParts(scope, req(o))?.partition;
    expect(part(convo({ reasoning: 'think A' }))).not.toBe(part(convo({ reasoning: 'think B' })));
    expect(part(convo({ refusal: null }))).toBe(part(convo({})));
    expect(part({ messages: [{ role: 'user', content: 'q', x_tag: 1 }] })).not.toBe(part({ messages: [{ role: 'user', content: 'q' }] }));
    expect(part({ guided_choice: ['a'] })).not.toBe(part({}));
  });

  it('tool-call ids minted by the backend do not matter, their links do', () => {
    const convo = (a: string, b: string, result = 'sunny') => ({
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: null, tool_calls: [{ id: a, type: 'function', function: { name: 'w', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: b, content: result },
        { role: 'user', content: 'thanks, and tomorrow?' },
      ],
    });
    expect(key(convo('call_1', 'call_1'))).toBe(key(convo('call_zz', 'call_zz')));
    expect(key(convo('call_1', 'call_2'))).not.toBe(key(convo('call_1', 'call_1')));
    expect(key(convo('call_1', 'call_1', 'rain'))).not.toBe(key(convo('call_1', 'call_1')));
  });

  it("every part of an earlier turn that can change the answer is in the key: a tool call's name, arguments, type and other fields, a message's name, a non-text part", () => {
    const call = (c: Record<string, unknown> = {}) => ({ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' }, ...c });
    const convo = (o: { call?: Record<string, unknown>; name?: string; image?: string } = {}) => ({
      messages: [
        { role: 'user', content: o.image ? [{ type: 'text', text: 'weather here?' }, { type: 'image_url', image_url: { url: o.image } }] : 'weather here?', ...(o.name ? { name: o.name } : {}) },
        { role: 'assistant', content: null, tool_calls: [o.call ?? call()] },
        { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
        { role: 'user', content: 'and tomorrow?' },
      ],
    });
    const base = key(convo());
    expect(key(convo({ call: call({ function: { name: 'get_forecast', arguments: '{"city":"Paris"}' } }) }))).not.toBe(base);
    expect(key(convo({ call: call({ function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }) }))).not.toBe(base);
    expect(key(convo({ call: call({ function: { name: 'get_weather' } }) }))).not.toBe(base);
    // A custom tool's call carries its input outside `function` (chat completions' `custom` tools): two calls
    // with other inputs are other conversations. Both were one key before 2026-12-04.
    const custom = (input: string) => key(convo({ call: { id: 'call_1', type: 'custom', custom: { name: 'run_sql', input } } }));
    expect(custom('SELECT 1')).not.toBe(custom('DROP TABLE t'));
    expect(custom('SELECT 1')).not.toBe(base);
    // Any other field a provider puts on a call (a thought signature) is part of it.
    expect(key(convo({ call: call({ extra_content: { google: { thought_signature: 'a' } } }) }))).not.toBe(key(convo({ call: call({ extra_content: { google: { thought_signature: 'b' } } }) })));
    // A call without a type is a function call, as the API reads it.
    expect(key(convo({ call: { id: 'call_1', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } } }))).toBe(base);
    expect(key(convo({ name: 'alice' }))).not.toBe(key(convo({ name: 'bob' })));
    expect(key(convo({ name: 'alice' }))).not.toBe(base);
    expect(key(convo({ image: 'https://x.test/a.png' }))).not.toBe(key(convo({ image: 'https://x.test/b.png' })));
    expect(key(convo({ image: 'https://x.test/a.png' }))).not.toBe(base);
    // Only a text part is text: a part of another type with a `text` field is that part, whole.
    const parts = (p: Record<string, unknown>) => key({ messages: [{ role: 'user', content: [p] }] });
    expect(parts({ type: 'x_document', text: 'hi', doc: 1 })).not.toBe(parts({ type: 'text', text: 'hi' }));
    expect(parts({ type: 'x_document', text: 'hi', doc: 1 })).not.toBe(parts({ type: 'x_document', text: 'hi', doc: 2 }));
    // An extra field holding a non-empty array counts; an empty one does not.
    const tagged = (tags: unknown[]) => key({ messages: [{ role: 'user', content: 'q', x_tags: tags }] });
    expect(tagged(['a'])).not.toBe(tagged(['b']));
    expect(tagged([])).toBe(key({ messages: [{ role: 'user', content: 'q' }] }));
  });

  it('canonical JSON sorts keys at every depth and drops undefined', () => {
    expect(canonical({ b: { d: 1, c: [2, { f: 1, e: 0 }] }, a: undefined })).toBe('{"b":{"c":[2,{"e":0,"f":1}],"d":1}}');
    expect(canonical([undefined, { a: [undefined] }])).toBe('[null,{"a":[null]}]');
    expect(canonical(undefined)).toBe('null');
  });

  it('canonical JSON is what the string-built version it replaced gave, so no stored key changed', () => {
    // Every value JSON can hold, keys not array indexes (those are ordered otherwise now: the next test).
    const key = fc.string().filter((k) => !/^(0|[1-9][0-9]*)$/.test(k));
    const json = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small' }, fc.constant(null), fc.boolean(), fc.double(), fc.integer(), fc.string(), tie('array'), tie('object')),
      array: fc.array(tie('value'), { maxLength: 5 }),
      object: fc.dictionary(key, tie('value'), { maxKeys: 5 }),
    })).value;
    fc.assert(fc.property(json, (v) => canonical(v) === stringBuilt(v)), { numRuns: 2000 });
    // A `__proto__` key (JSON.parse makes it an own key) is kept as a field, in its place.
    const parsed = JSON.parse('{"z":1,"__proto__":{"b":2,"a":1},"a":0}') as unknown;
    expect(canonical(parsed)).toBe(stringBuilt(parsed));
    expect(canonical(parsed)).toBe('{"__proto__":{"a":1,"b":2},"a":0,"z":1}');
  });

  it('canonical JSON never changes what it reads: the request it keys goes upstream as the client wrote it', () => {
    const deepFreeze = <T>(v: T): T => {
      if (v !== null && typeof v === 'object') for (const x of Object.values(v)) deepFreeze(x);
      return Object.freeze(v);
    };
    const written = () => [{ b: 1, a: [{ d: 1, c: 2 }] }, [{ z: 0, y: 1 }]];
    // Frozen, any write throws (modules are strict); the value is also compared whole afterwards.
    const value = deepFreeze(written());
    expect(canonical(value)).toBe('[{"a":[{"c":2,"d":1}],"b":1},[{"y":1,"z":0}]]');
    expect(JSON.stringify(value)).toBe(JSON.stringify(written()));
  });

  it('an object keyed by numbers (a logit_bias) serialises alike whatever order the client wrote', () => {
    const a = canonical({ logit_bias: { '50256': -100, '2': 5, x: 1, '10': 0 } });
    expect(a).toBe(canonical(JSON.parse('{"logit_bias":{"x":1,"10":0,"2":5,"50256":-100}}')));
    expect(a).toBe('{"logit_bias":{"2":5,"10":0,"50256":-100,"x":1}}');
    expect(key({ logit_bias: { '2': 5, '10': 0 } })).toBe(key({ logit_bias: { '10': 0, '2': 5 } }));
    expect(key({ logit_bias: { '2': 5, '10': 0 } })).not.toBe(key({ logit_bias: { '2': 0, '10': 5 } }));
  });

  it('the exact key and the semantic partition are the hashes they were before they shared one serialisation', () => {
    // Computed with the code of 0f2d424, which serialised the conversation twice, piece by piece: an upgrade
    // must find every answer already stored (the keys of a conversation with tool calls, extra fields and a name).
    for (const [messages, exact, partition] of GOLDEN_KEYS) {
      const keys = requestKeys(scope, req({ messages, temperature: 0.2, seed: 9 }));
      expect(keys.exact).toBe(exact);
      expect(keys.semantic()?.partition).toBe(partition);
    }
  });

  it('what cannot be cached, and why', () => {
    expect(uncacheable(req({}), false)).toBeUndefined();
    expect(uncacheable(req({ tools: [] }), false)).toBe('tools');
    expect(uncacheable(req({ tools: [] }), true)).toBeUndefined();
    expect(uncacheable(req({ logprobs: true }), true)).toBe('unsupported');
    expect(uncacheable(req({ modalities: ['text', 'audio'] }), true)).toBe('unsupported');
    expect(uncacheable(req({ modalities: ['text'] }), true)).toBeUndefined();
    expect(uncacheable(req({ functions: [{ name: 'f' }] }), false)).toBe('tools'); // the legacy spelling of tools
    expect(uncacheable(req({ top_logprobs: 2 }), true)).toBe('unsupported');
    expect(uncacheable(req({ audio: { voice: 'alloy', format: 'wav' } }), true)).toBe('unsupported');
    expect(uncacheable(req({ logprobs: false }), true)).toBeUndefined();
    expect(uncacheable(parseLlmRequest('completions', Buffer.from('{"prompt":"x"}')), true)).toBe('endpoint');
  });

  it('the semantic partition is everything but the last question', () => {
    const a = semanticParts(scope, req({ messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'What is the capital of France?' }] }));
    const b = semanticParts(scope, req({ messages: [{ role: 'system', content: 's' }, { role: 'user', content: "France's capital city?" }] }));
    const c = semanticParts(scope, req({ messages: [{ role: 'system', content: 'other' }, { role: 'user', content: 'What is the capital of France?' }] }));
    expect(a?.partition).toBe(b?.partition);
    expect(a?.partition).not.toBe(c?.partition);
    expect(semanticParts({ ...scope, tenant: 'globex' }, req({ messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'What is the capital of France?' }] }))?.partition).not.toBe(a?.partition);
    expect(a?.question).toBe('What is the capital of France?');
    expect(semanticParts(scope, req({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }] }))).toBeUndefined();
    expect(a?.partition).toMatch(/^[0-9a-f]{32}$/);
    // The question's own message: text parts are its text; any other part, or nothing to embed, is no question.
    const last = (m: Record<string, unknown>) => semanticParts(scope, req({ messages: [{ role: 'system', content: 's' }, { role: 'user', ...m }] }));
    expect(last({ content: [{ type: 'text', text: 'What is the capital' }, { type: 'text', text: 'of France?' }] })).toEqual(a);
    expect(last({ content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: 'https://x.test/a.png' } }] })).toBeUndefined();
    expect(last({ content: '?? ...' })).toBeUndefined();
    expect(last({ content: '?? x' })?.question).toBe('?? x');
    // Who asks (the message's name) is context, not question.
    expect(last({ content: 'What is the capital of France?', name: 'alice' })?.partition).not.toBe(a?.partition);
  });

  it('cache-control directives', () => {
    expect(cacheControl('no-cache')).toEqual({ noCache: true, noStore: false });
    expect(cacheControl('max-age=0, No-Store')).toEqual({ noCache: false, noStore: true });
    expect(cacheControl(undefined)).toEqual({ noCache: false, noStore: false });
  });
});

describe('answer assembly and replay', () => {
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => ({ object: 'chat.completion.chunk', model: 'm-2026', choices, ...extra });
  /** A choice of a whole body: its message (none when undefined) and finish reason. */
  const choice = (message: Record<string, unknown> | undefined, finish = 'stop', index: unknown = 0) => ({ index, ...(message ? { message: { role: 'assistant', ...message } } : {}), finish_reason: finish });
  const completion = (choices: unknown[], extra: Record<string, unknown> = {}) => ({ object: 'chat.completion', model: 'm', choices, ...extra });
  /** What the assembler keeps of one whole body, under a bound of `max` characters. */
  const kept = (body: Record<string, unknown>, max = 1000) => {
    const a = new AnswerAssembler(max);
    a.body(body);
    return a.answer();
  };

  it("keeps the usage's counts, and its details objects, and nothing else the backend put there", () => {
    const a = new AnswerAssembler(10_000);
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
    const wide = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`n${i}`, i]));
    const usage = JSON.parse(
      JSON.stringify({
        prompt_tokens: 10,
        completion_tokens: 5,
        total_tokens: 15,
        prompt_tokens_details: { cached_tokens: 4, audio_tokens: null, note: 'x', nested: { a: 1 } },
        completion_tokens_details: { reasoning_tokens: 2 },
        cost: 'free',
        flags: [1, 2],
      }).replace('{', '{"__proto__":{"polluted":1},'),
    ) as Record<string, unknown>;
    usage.deep = deep;
    usage.wide = wide;
    a.body({ object: 'chat.completion', model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'Hi' }, finish_reason: 'stop' }], usage });
    const answer = a.answer();
    expect(answer?.usage).toEqual({
      prompt_tokens: 10,
      completion_tokens: 5,
      total_tokens: 15,
      prompt_tokens_details: { cached_tokens: 4, audio_tokens: null },
      completion_tokens_details: { reasoning_tokens: 2 },
      wide: Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`n${i}`, i])),
    });
    expect(Object.getPrototypeOf(answer?.usage)).toBe(Object.prototype);
    // A deep value used to be kept, and its replay threw: every identical request then failed with a 500.
    if (!answer) return;
    expect(JSON.parse(replayJson(answer, 0).toString()).usage.prompt_tokens_details).toEqual({ cached_tokens: 4, audio_tokens: null });
    expect(() => replaySse(answer, 0, true)).not.toThrow();
  });

  it('assembles streamed tool-call deltas by index, and several choices, then replays them as JSON and SSE', () => {
    const a = new AnswerAssembler(10_000);
    a.chunk(chunk([{ index: 0, delta: { role: 'assistant', content: '' } }, { index: 1, delta: { role: 'assistant', content: null } }]));
    a.chunk(chunk([{ index: 0, delta: { content: 'Hel' } }]));
    a.chunk(chunk([{ index: 0, delta: { content: 'lo' } }]));
    a.chunk(chunk([{ index: 1, delta: { tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'get_', arguments: '{"ci' } }] } }]));
    a.chunk(chunk([{ index: 1, delta: { tool_calls: [{ index: 0, function: { name: 'weather', arguments: 'ty":"Oslo"}' } }] } }]));
    a.chunk(chunk([{ index: 0, delta: {}, finish_reason: 'stop' }, { index: 1, delta: {}, finish_reason: 'length' }]));
    a.chunk(chunk([], { usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } }));
    const answer = a.answer();
    expect(answer).toEqual({
      model: 'm-2026',
      systemFingerprint: null,
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
      choices: [
        { index: 0, content: 'Hello', refusal: null, toolCalls: [], finishReason: 'stop' },
        { index: 1, content: null, refusal: null, toolCalls: [{ id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }], finishReason: 'length' },
      ],
    });
    if (!answer) return;
    const json = JSON.parse(replayJson(answer, 1_700_000_000_000).toString());
    expect(json).toMatchObject({ object: 'chat.completion', created: 1_700_000_000, model: 'm-2026', usage: { total_tokens: 7 } });
    expect(json.choices[1].message.tool_calls[0].function.arguments).toBe('{"city":"Oslo"}');

    // The SSE replay, assembled again, is the same answer: nothing lost in either direction.
    const again = new AnswerAssembler(10_000);
    for (const line of replaySse(answer, 0, true).toString().split('\n\n')) {
      const data = line.replace(/^data: /, '');
      if (data && data !== '[DONE]') again.chunk(JSON.parse(data));
    }
    expect(again.answer()).toEqual(answer);
  });

  it("keeps a reasoning model's thinking under the field names it came in, and replays it in either format", () => {
    // vLLM streams `reasoning` (and, while it is deprecated, the same text as `reasoning_content`) before content.
    const a = new AnswerAssembler(10_000);
    a.chunk(chunk([{ index: 0, delta: { role: 'assistant', content: '' } }]));
    a.chunk(chunk([{ index: 0, delta: { reasoning: 'The user ', reasoning_content: 'The user ' } }]));
    a.chunk(chunk([{ index: 0, delta: { reasoning: 'greets.', reasoning_content: 'greets.' } }]));
    a.chunk(chunk([{ index: 0, delta: { content: 'Hello' }, finish_reason: 'stop' }]));
    const answer = a.answer();
    expect(answer?.choices[0]).toEqual({ index: 0, content: 'Hello', refusal: null, toolCalls: [], finishReason: 'stop', reasoning: { reasoning: 'The user greets.', reasoning_content: 'The user greets.' } });
    if (!answer) return;
    expect(JSON.parse(replayJson(answer, 0).toString()).choices[0].message).toEqual({ role: 'assistant', content: 'Hello', refusal: null, reasoning: 'The user greets.', reasoning_content: 'The user greets.' });
    const events = replaySse(answer, 0, false).toString().split('\n\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
    const deltas = events.map((e) => e.choices[0].delta);
    // Thinking before the content, as the backend streamed it.
    expect(deltas.findIndex((d) => 'reasoning' in d)).toBeLessThan(deltas.findIndex((d) => d.content === 'Hello'));
    const again = new AnswerAssembler(10_000);
    for (const e of events) again.chunk(e);
    expect(again.answer()).toEqual(answer);

    // DeepSeek's API: one field, in a whole body; only that field comes back.
    const dj = kept(completion([choice({ content: '4', reasoning_content: '2+2' })]));
    expect(dj && JSON.parse(replayJson(dj, 0).toString()).choices[0].message).toEqual({ role: 'assistant', content: '4', refusal: null, reasoning_content: '2+2' });
    // Thinking counts toward the size bound as content does.
    expect(kept(completion([choice({ content: 'x', reasoning: 'r'.repeat(100) })]), 100)).toBeUndefined();
  });

  it('streams as they come from vLLM and others: choices and calls out of order, a name or arguments only in the first delta, a null finish after the real one, a chunk without delta or model', () => {
    const a = new AnswerAssembler(10_000);
    a.chunk(chunk([{ index: 1, delta: { role: 'assistant', content: 'B' } }], { model: '' })); // some servers leave the first chunk's model empty
    a.chunk(chunk([{ index: 0, delta: { role: 'assistant', content: null } }]));
    // Two parallel calls, each named in its first delta only (OpenAI and vLLM stream them so), the second first.
    a.chunk(chunk([{ index: 0, delta: { tool_calls: [{ index: 1, id: 'call_b', function: { name: 'two', arguments: '' } }] } }]));
    a.chunk(chunk([{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'one' } }] } }]));
    a.chunk(chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"a":' } }, { index: 1, function: { arguments: '{}' } }] } }]));
    a.chunk(chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '1}' } }, null] } }]));
    a.chunk({ object: 'chat.completion.chunk', choices: [{ index: 0, finish_reason: 'stop' }, null] }); // no delta, no model
    a.chunk(chunk([{ index: 1, delta: { refusal: 'No' }, finish_reason: 'length' }]));
    a.chunk(chunk([{ index: 1, delta: { refusal: 'pe' }, finish_reason: null }]));
    a.chunk(chunk([], { system_fingerprint: 'fp_1' }));
    expect(a.answer()).toEqual({
      model: 'm-2026',
      systemFingerprint: 'fp_1',
      usage: null,
      choices: [
        {
          index: 0,
          content: null,
          refusal: null,
          toolCalls: [
            { id: 'call_a', type: 'function', function: { name: 'one', arguments: '{"a":1}' } },
            { id: 'call_b', type: 'function', function: { name: 'two', arguments: '{}' } },
          ],
          finishReason: 'stop',
        },
        { index: 1, content: 'B', refusal: 'Nope', toolCalls: [], finishReason: 'length' },
      ],
    });
    // A whole body lists its calls in order (vLLM answers a named tool_choice with finish "stop").
    const calls = [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }, { id: 'c2', type: 'function', function: { name: 'g', arguments: '[]' } }];
    expect(kept(completion([choice({ content: null, tool_calls: calls })]))?.choices[0]?.toolCalls).toEqual(calls);
    // An index that is not a whole non-negative number is choice 0.
    for (const index of [-1, 1.5, '1', undefined]) {
      expect(kept(completion([choice({ content: 'x' }, 'stop', index)]))?.choices.map((x) => x.index), String(index)).toEqual([0]);
    }
  });

  it('what it cannot replay as it came is not kept: audio, content parts, a custom tool call, a choice without a message, no model or no choice', () => {
    const of = (m: Record<string, unknown>, extra: Record<string, unknown> = {}) => kept(completion([choice({ content: 'x', ...m })], extra));
    expect(of({})).toBeDefined();
    expect(of({ audio: { id: 'a', data: 'UklG', transcript: 'x' } })).toBeUndefined();
    expect(of({ content: [{ type: 'text', text: 'x' }] })).toBeUndefined();
    expect(of({ content: null, tool_calls: [{ id: 'c', type: 'custom', custom: { name: 'run_sql', input: 'SELECT 1' } }] })).toBeUndefined();
    expect(kept(completion([choice(undefined)]))).toBeUndefined();
    expect(kept(completion([choice({ content: 'x' }), choice(undefined, 'stop', 1)]))).toBeUndefined(); // one choice of two cannot be replayed: neither is
    expect(of({}, { model: undefined })).toBeUndefined();
    expect(kept(completion([]))).toBeUndefined();
    // A model name is replayed as it came, up to the ledger's bound for client text.
    expect(of({}, { model: 'm'.repeat(MAX_CLIENT_TEXT) })?.model).toHaveLength(MAX_CLIENT_TEXT);
    expect(of({}, { model: 'm'.repeat(MAX_CLIENT_TEXT + 1) })).toBeUndefined();
  });

  it('the size bound: content, refusal, reasoning and tool arguments count, up to the bound inclusive', () => {
    const of = (max: number, m: Record<string, unknown>) => kept(completion([choice({ content: null, ...m })]), max);
    expect(of(10, { content: 'x'.repeat(10) })).toBeDefined();
    expect(of(10, { content: 'x'.repeat(11) })).toBeUndefined();
    const args = (n: number) => ({ tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: 'a'.repeat(n) } }] });
    expect(of(10, args(10))).toBeDefined();
    expect(of(10, args(11))).toBeUndefined();
    expect(of(10, { content: 'x'.repeat(5), ...args(6) })).toBeUndefined();
  });

  it('replays as OpenAI streams: chunk objects, seconds, usage only when asked (null before its own chunk), content null kept, a refusal, then [DONE]', () => {
    const answer = {
      model: 'm',
      systemFingerprint: 'fp_9',
      usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
      choices: [{ index: 0, content: null, refusal: 'I cannot.', toolCalls: [], finishReason: 'stop' }],
    };
    const events = (includeUsage: boolean) => {
      const text = replaySse(answer, 1_700_000_000_999, includeUsage).toString();
      expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
      return text.split('\n\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>);
    };
    const plain = events(false);
    for (const e of plain) {
      expect(e).toMatchObject({ object: 'chat.completion.chunk', created: 1_700_000_000, model: 'm', system_fingerprint: 'fp_9' });
      expect(e).not.toHaveProperty('usage');
      expect(e.id).toBe(plain[0]?.id);
    }
    expect(plain.map((e) => (e.choices as Array<{ delta: unknown; finish_reason: unknown }>)[0])).toEqual([
      { index: 0, delta: { role: 'assistant', content: null, refusal: null }, logprobs: null, finish_reason: null },
      { index: 0, delta: { refusal: 'I cannot.' }, logprobs: null, finish_reason: null },
      { index: 0, delta: {}, logprobs: null, finish_reason: 'stop' },
    ]);
    const withUsage = events(true);
    expect(withUsage.map((e) => e.usage)).toEqual([null, null, null, answer.usage]);
    expect(withUsage.at(-1)?.choices).toEqual([]);
    // Each replay is its own response, with an id in OpenAI's shape.
    const ids = [replayJson(answer, 0), replayJson(answer, 0)].map((b) => JSON.parse(b.toString()).id as string);
    expect(ids[0]).toMatch(/^chatcmpl-tg[0-9a-f]{24}$/);
    expect(ids[0]).not.toBe(ids[1]);
    expect(JSON.parse(replayJson(answer, 0).toString())).toMatchObject({ system_fingerprint: 'fp_9', choices: [{ message: { content: null, refusal: 'I cannot.' } }] });
  });

  it('the heap estimate counts two bytes per character of every text it keeps, and a share per choice and call', () => {
    const base: CachedAnswer = { model: 'm', systemFingerprint: null, usage: null, choices: [{ index: 0, content: 'x', refusal: null, toolCalls: [], finishReason: 'stop' }] };
    const b0 = answerBytes(base);
    const grown = (f: (c: CachedChoice) => CachedChoice, a: Partial<CachedAnswer> = {}) => answerBytes({ ...base, ...a, choices: base.choices.map(f) }) - b0;
    const same = (c: CachedChoice) => c;
    expect(grown(same, { model: 'm'.repeat(101) })).toBe(200);
    expect(grown(same, { systemFingerprint: 'f'.repeat(100) })).toBe(200);
    expect(grown((c) => ({ ...c, content: 'x'.repeat(101) }))).toBe(200);
    expect(grown((c) => ({ ...c, refusal: 'r'.repeat(100) }))).toBe(200);
    expect(grown((c) => ({ ...c, finishReason: 'length' }))).toBe(4);
    expect(grown((c) => ({ ...c, reasoning: { reasoning: 'r'.repeat(60), reasoning_content: 'r'.repeat(40) } }))).toBe(200);
    const call = { id: 'i'.repeat(10), type: 't'.repeat(20), function: { name: 'n'.repeat(30), arguments: 'a'.repeat(40) } };
    const oneCall = grown((c) => ({ ...c, toolCalls: [call] }));
    expect(oneCall).toBe(200 + grown((c) => ({ ...c, toolCalls: [{ id: '', type: '', function: { name: '', arguments: '' } }] })));
    expect(oneCall).toBeGreaterThan(200);
    expect(answerBytes({ ...base, choices: [...base.choices, ...base.choices] })).toBeGreaterThan(b0 + 2);
    expect(grown((c) => ({ ...c, content: null }))).toBe(-2);
    // The objects around the text: at least 1 KiB for the entry, as the README says of the memory store.
    expect(b0 - 2 * (1 + 1 + 'stop'.length)).toBeGreaterThanOrEqual(1024);
  });

  it('keeps nothing from an error, a stop-less choice, an unknown finish reason or an oversized answer', () => {
    const body = (finish: string, content = 'x') => completion([choice({ content }, finish)]);
    const of = (o: Record<string, unknown>) => kept(o, 100);
    expect(of(body('stop'))).toBeDefined();
    expect(of(body('length'))).toBeDefined();
    expect(of(body('content_filter'))).toBeUndefined();
    expect(of(body('tool_calls'))).toBeUndefined();
    expect(of(body('stop', 'y'.repeat(101)))).toBeUndefined();
    // A refusal counts toward the bound as content does.
    const refusal = (text: string) => completion([choice({ content: null, refusal: text })]);
    expect(of(refusal('no'))).toBeDefined();
    expect(of(refusal('n'.repeat(101)))).toBeUndefined();
    expect(of({ ...body('stop'), error: { message: 'x' } })).toBeUndefined();
    const noFinish = new AnswerAssembler(100);
    noFinish.chunk(chunk([{ index: 0, delta: { content: 'half' } }]));
    expect(noFinish.answer()).toBeUndefined();
  });
});

/** canonical() as it was until 2026-12-07, built as a string piece by piece: the reference its output must match. */
function stringBuilt(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stringBuilt).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stringBuilt(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

const readFile = (id: string) => ({ id, type: 'function', function: { name: 'read_file', arguments: `{"path":"${id}"}` } });
/** Conversations (asked with temperature 0.2 and seed 9) and their exact key and semantic partition at 0f2d424. */
const GOLDEN_KEYS: Array<[unknown[], string, string]> = [
  [[{ role: 'user', content: 'What is the capital of France?' }], '49b4926d6b1242caaf5cef3042068a93f9e447d0408c2020a2a8ea940431a4df', '90916f791b7c563924c7b3b7cda6928d'],
  [
    [{ role: 'system', content: 's' }, { role: 'user', content: 'q1' }, { role: 'assistant', content: 'a1' }, { role: 'user', content: 'q2', name: 'bob' }],
    'abf282ab94e07fd32c3b89c07580005f931009246f2c1248c609ce29ff4ed917',
    '1719fbc777b033d0d45482c4b6a9bd6d',
  ],
  [
    [
      { role: 'user', content: 'read it' },
      { role: 'assistant', content: null, tool_calls: [readFile('c1'), readFile('c2')] },
      { role: 'tool', tool_call_id: 'c2', content: 'x' },
      { role: 'tool', tool_call_id: 'c1', content: 'y' },
      { role: 'user', content: [{ type: 'text', text: 'and now?' }], x_tag: ['t'] },
    ],
    '3233e318936bfeeb9d198ac4d18e640329fdeed21cff8854de9711de06ff1861',
    'e871afd8145cd5cd1d95bcd172579e09',
  ],
];
