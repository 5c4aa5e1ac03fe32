// The JSON the mock backends write when a request asks for structured output (src/dev/mock-json.ts).
import { describe, expect, it } from 'vitest';
import { forcedToolCall, jsonAnswer } from '../../src/dev/mock-json.js';

const hi = 'Hello from the weak backend';
const chatSchema = (schema: unknown) => ({ type: 'json_schema', json_schema: { name: 'x', schema, strict: true } });

describe('mock structured outputs', () => {
  it('plain text when the request asks for none, or for text', () => {
    expect(jsonAnswer(undefined, hi)).toBeUndefined();
    expect(jsonAnswer({ type: 'text' }, hi)).toBeUndefined();
    expect(jsonAnswer('json_object', hi)).toBeUndefined();
  });

  it('json_object: an object holding the greeting; a json_schema without a schema too', () => {
    expect(JSON.parse(jsonAnswer({ type: 'json_object' }, hi) as string)).toEqual({ answer: hi });
    expect(JSON.parse(jsonAnswer({ type: 'json_schema', json_schema: { name: 'x' } }, hi) as string)).toEqual({ answer: hi });
  });

  it("the plainest value of each type the schema names, strings the greeting; Chat's nesting and the Responses API's flat format", () => {
    const schema = {
      type: 'object',
      properties: {
        name: { type: 'string' },
        count: { type: 'integer' },
        score: { type: 'number', minimum: 1.5 },
        safe: { type: 'integer', minimum: -9007199254740991, maximum: 9007199254740991 },
        below: { type: 'number', maximum: -3 },
        ok: { type: 'boolean' },
        tags: { type: 'array', items: { type: 'string' } },
        two: { type: 'array', items: { type: 'integer' }, minItems: 2 },
        kind: { type: 'string', enum: ['a', 'b'] },
        fixed: { const: 7 },
        maybe: { type: ['null', 'string'] },
        either: { anyOf: [{ type: 'boolean' }, { type: 'string' }] },
        nothing: { type: 'null' },
        anything: {},
        inner: { type: 'object', properties: { deep: { type: 'number' } } },
      },
    };
    const want = { name: hi, count: 0, score: 1.5, safe: 0, below: -3, ok: false, tags: [], two: [0, 0], kind: 'a', fixed: 7, maybe: hi, either: false, nothing: null, anything: hi, inner: { deep: 0 } };
    expect(JSON.parse(jsonAnswer(chatSchema(schema), hi) as string)).toEqual(want);
    expect(JSON.parse(jsonAnswer({ type: 'json_schema', name: 'x', schema }, hi) as string)).toEqual(want);
  });

  it('local $refs resolve; one met again inside itself (a recursive type) is null, as is one elsewhere', () => {
    const schema = {
      type: 'object',
      properties: { step: { $ref: '#/$defs/Step' }, old: { $ref: '#/definitions/Old' }, away: { $ref: 'https://x.test/s.json' } },
      $defs: { Step: { type: 'object', properties: { text: { type: 'string' }, next: { $ref: '#/$defs/Step' } } } },
      definitions: { Old: { type: 'integer' } },
    };
    const out = JSON.parse(jsonAnswer(chatSchema(schema), hi) as string) as Record<string, unknown>;
    expect(out.old).toBe(0);
    expect(out.away).toBeNull();
    expect(out.step).toEqual({ text: hi, next: null });
  });
});

describe('mock structured outputs, bounded', () => {
  it('a schema nested past 16 levels ends with null there', () => {
    let schema: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 20; i++) schema = { type: 'object', properties: { a: schema } };
    let out = JSON.parse(jsonAnswer({ type: 'json_schema', schema }, hi) as string) as unknown;
    let levels = 0;
    while (out !== null && typeof out === 'object') {
      out = (out as { a: unknown }).a;
      levels++;
    }
    expect(out).toBeNull();
    expect(levels).toBe(17);
  });
});

describe('mock tool calls', () => {
  const chatTools = [
    { type: 'custom', custom: { name: 'grep' } },
    { type: 'function', function: { name: 'read_file', parameters: { type: 'object', properties: { path: { type: 'string' }, line: { type: 'integer', minimum: 1 } } } } },
    { type: 'function', function: { name: 'now' } },
  ];
  const responsesTools = [{ type: 'web_search' }, { type: 'function', name: 'read_file', parameters: { type: 'object', properties: { path: { type: 'string' } } } }];

  it('only a call the request forces: none for auto, none, no choice or no tools', () => {
    for (const choice of [undefined, 'auto', 'none']) expect(forcedToolCall(chatTools, choice, hi)).toBeUndefined();
    expect(forcedToolCall(undefined, 'required', hi)).toBeUndefined();
    expect(forcedToolCall([{ type: 'custom', custom: { name: 'grep' } }], 'required', hi)).toBeUndefined();
    expect(forcedToolCall(chatTools, { type: 'function', function: { name: 'missing' } }, hi)).toBeUndefined();
  });

  it('required: the first function tool; a named one by name, in Chat\'s shape and the Responses API\'s; arguments fit the parameters', () => {
    expect(forcedToolCall(chatTools, 'required', hi)).toEqual({ name: 'read_file', arguments: JSON.stringify({ path: hi, line: 1 }) });
    expect(forcedToolCall(chatTools, { type: 'function', function: { name: 'now' } }, hi)).toEqual({ name: 'now', arguments: '{}' });
    expect(forcedToolCall(responsesTools, { type: 'function', name: 'read_file' }, hi)).toEqual({ name: 'read_file', arguments: JSON.stringify({ path: hi }) });
    expect(forcedToolCall(responsesTools, 'required', hi)?.name).toBe('read_file');
  });
});
