// A Responses API input as the chat messages classification, the token reservation and the estimates read
// (src/llm/responses-request.ts), item by item, including the shapes a client may send that the schema lets
// through (items are loose objects): parts that are not objects, outputs that are objects without a type, items
// with neither a role nor a type. None of them may throw: the request would fail on tiergate instead of the backend.
import { describe, expect, it } from 'vitest';
import { responsesMessages, responsesRequest, sealedItems, type ResponsesRequest } from '../../src/llm/responses-request.js';

const messagesOf = (input: unknown[], instructions?: string) => responsesMessages(responsesRequest.parse({ model: 'm', input, ...(instructions ? { instructions } : {}) }) as ResponsesRequest);

describe('responsesMessages', () => {
  it.each([
    ['an easy input message (no type)', { role: 'user', content: 'hi' }, { role: 'user', content: 'hi' }],
    ['a message item with text parts, a refusal and an image', { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'a' }, { type: 'refusal', refusal: 'no' }, { type: 'input_image', image_url: 'x' }] }, { role: 'assistant', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'no' }, { type: 'input_image' }] }],
    ['a message item with a role chat does not have: not read as a message', { type: 'message', role: 'critic', content: 'x' }, { role: 'assistant', content: null }],
    ['an item with neither a role nor a type', { content: 'x' }, { role: 'assistant', content: null }],
    ['a call item that also carries a role is a call', { type: 'function_call', role: 'assistant', name: 'f', arguments: '{"a":1}' }, { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] }],
    ['a hosted tool call without a name: named by its type, its action as JSON', { type: 'web_search_call', action: { query: 'q' } }, { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'web_search_call', arguments: '{"query":"q"}' } }] }],
    ['a call with nothing written for it', { type: 'computer_call' }, { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'computer_call', arguments: '' } }] }],
    ['a tool output as text', { type: 'function_call_output', call_id: 'c', output: 'done' }, { role: 'tool', content: 'done' }],
    ['a tool output that is a typed object (a screenshot): its type alone', { type: 'computer_call_output', output: { type: 'computer_screenshot', image_url: 'data:…' } }, { role: 'tool', content: [{ type: 'computer_screenshot' }] }],
    ['a tool output that is an object without a type', { type: 'function_call_output', output: { a: 1 } }, { role: 'tool', content: null }],
    ['a tool output of null', { type: 'function_call_output', output: null }, { role: 'tool', content: null }],
    ['a shell result: stdout and stderr, an empty stream left out', { type: 'shell_call_output', output: [{ stdout: '', stderr: 'boom' }, { stdout: 'ok', stderr: 'warn' }] }, { role: 'tool', content: [{ type: 'text', text: 'boom' }, { type: 'text', text: 'ok\nwarn' }] }],
    ['parts that are not objects, or carry neither text nor a type, are passed over', { role: 'user', content: [null, 'x', 5, {}, { type: 'input_text', text: 't' }] }, { role: 'user', content: [{ type: 'text', text: 't' }] }],
    ['a message without content, or with content that is neither text nor parts', { role: 'user' }, { role: 'user', content: null }],
    ['content that is a number', { role: 'user', content: 5 }, { role: 'user', content: null }],
    ['a reasoning item', { type: 'reasoning', summary: [] }, { role: 'assistant', content: null }],
  ] as const)('%s', (_, item, message) => {
    expect(messagesOf([item])).toEqual([message]);
  });

  it('instructions come first as a system message; a string input is one user message', () => {
    expect(responsesMessages({ model: 'm', instructions: 'be brief', input: 'hello' })).toEqual([
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hello' },
    ]);
    expect(messagesOf([{ role: 'developer', content: 'd' }], 'i')).toEqual([
      { role: 'system', content: 'i' },
      { role: 'developer', content: 'd' },
    ]);
  });
});

describe('sealedItems', () => {
  it('the encrypted_content of each item that carries one, in order; an empty one is none', () => {
    const r = responsesRequest.parse({ input: [{ type: 'reasoning', encrypted_content: 'A' }, { type: 'reasoning', encrypted_content: '' }, { type: 'compaction', encrypted_content: 'B' }, { role: 'user', content: 'x' }] });
    expect(sealedItems(r)).toEqual(['A', 'B']);
    expect(sealedItems(responsesRequest.parse({ input: 'text' }))).toEqual([]);
  });
});
