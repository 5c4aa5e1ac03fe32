// What the mock backends answer when a request asks for JSON: `response_format` on Chat Completions
// (`json_object`, or `json_schema` with its schema), `text.format` on the Responses API. vLLM constrains its output
// to the schema (guided decoding), so an app that calls the openai SDK's `parse()` against `tiergate dev` gets
// JSON it can read; the mocks' greeting was plain text, which `parse()` rejects ("Unexpected token 'H'"), and an
// app team trying its structured-output code against the local stack would blame the gateway.
//
// The value is the plainest one the schema allows that still says who answered: every string is the greeting,
// every number 0 or the bound nearest it, every array as short as allowed, the first of every choice.

/** A JSON Schema as requests carry them: only what the sample reads. */
type Schema = Record<string, unknown>;

/** How deep a schema is followed before null stands in (a `$ref` already being expanded stands in at once). */
const MAX_DEPTH = 16;

/**
 * The JSON text a request's structured-output setting asks for, or undefined when it asks for none (plain text).
 * `format` is Chat's `response_format` or the Responses API's `text.format`.
 */
export function jsonAnswer(format: unknown, greeting: string): string | undefined {
  if (typeof format !== 'object' || format === null) return undefined;
  const f = format as Record<string, unknown>;
  if (f.type === 'json_object') return JSON.stringify({ answer: greeting });
  if (f.type !== 'json_schema') return undefined;
  // Chat nests the schema under json_schema; the Responses API puts it on the format itself.
  const nested = f.json_schema as Record<string, unknown> | undefined;
  const schema = (nested?.schema ?? f.schema) as Schema | undefined;
  if (typeof schema !== 'object' || schema === null) return JSON.stringify({ answer: greeting });
  return JSON.stringify(sampleOf(schema, schema, greeting, 0, new Set()));
}

/**
 * The plainest value `schema` allows, strings the greeting; `root` resolves local `$ref`s. `expanding`: the refs on
 * the way here, so a recursive type (a step whose `next` is a step) ends with null, its least value when nullable.
 */
function sampleOf(schema: Schema, root: Schema, greeting: string, depth: number, expanding: ReadonlySet<string>): unknown {
  if (depth > MAX_DEPTH) return null;
  const ref = schema.$ref;
  if (typeof ref === 'string') {
    const target = expanding.has(ref) ? undefined : resolve(root, ref);
    return target ? sampleOf(target, root, greeting, depth + 1, new Set(expanding).add(ref)) : null;
  }
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  const alternatives = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined;
  if (Array.isArray(alternatives) && alternatives.length > 0) return sampleOf(alternatives[0] as Schema, root, greeting, depth + 1, expanding);
  // A list of types ("string", "null"): the first that is not null.
  const types = Array.isArray(schema.type) ? (schema.type as unknown[]) : [schema.type];
  const type = types.find((t) => t !== 'null') ?? types[0];
  switch (type) {
    case 'object': {
      const properties = (schema.properties ?? {}) as Record<string, Schema>;
      const out: Record<string, unknown> = {};
      for (const [name, property] of Object.entries(properties)) out[name] = sampleOf(property, root, greeting, depth + 1, expanding);
      return out;
    }
    case 'array': {
      const items = (schema.items ?? {}) as Schema;
      const count = typeof schema.minItems === 'number' ? schema.minItems : 0;
      return Array.from({ length: count }, () => sampleOf(items, root, greeting, depth + 1, expanding));
    }
    case 'string':
      return greeting;
    case 'integer':
    case 'number': {
      // 0, or the bound nearest it (zod's int() writes the safe-integer range as bounds).
      const min = typeof schema.minimum === 'number' ? schema.minimum : -Infinity;
      const max = typeof schema.maximum === 'number' ? schema.maximum : Infinity;
      return Math.min(Math.max(0, min), max);
    }
    case 'boolean':
      return false;
    case 'null':
      return null;
    default:
      // No type (`{}`, any value): the greeting.
      return greeting;
  }
}

/** A local JSON pointer (`#/$defs/Step`, `#/definitions/Step`, `#`) into the root schema. */
function resolve(root: Schema, ref: string): Schema | undefined {
  if (!ref.startsWith('#')) return undefined;
  let at: unknown = root;
  for (const part of ref.slice(1).split('/').filter((p) => p !== '')) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return typeof at === 'object' && at !== null ? (at as Schema) : undefined;
}

/** A function call the mock makes: the tool's name and its arguments as JSON text. */
export interface MockToolCall {
  name: string;
  arguments: string;
}

/**
 * The call a request forces, or undefined when it leaves the choice to the model (`auto`, `none`, no tools): a
 * named function (`tool_choice: {type: "function", …}`), or with `required` the first function tool. The mocks
 * make no call of their own accord, so a request that only offers tools is answered in text as before; an agent's
 * loop tested against the local stack forces the call it needs. Its arguments fit the tool's parameters as the
 * structured outputs do. Chat names the function under `function`; the Responses API on the tool itself.
 */
export function forcedToolCall(tools: unknown, toolChoice: unknown, greeting: string): MockToolCall | undefined {
  if (!Array.isArray(tools)) return undefined;
  const functions = tools
    .filter((t): t is Record<string, unknown> => typeof t === 'object' && t !== null && (t as { type?: unknown }).type === 'function')
    .map((t) => (typeof t.function === 'object' && t.function !== null ? (t.function as Record<string, unknown>) : t))
    .filter((f) => typeof f.name === 'string');
  let tool: Record<string, unknown> | undefined;
  if (toolChoice === 'required') tool = functions[0];
  else if (typeof toolChoice === 'object' && toolChoice !== null && (toolChoice as { type?: unknown }).type === 'function') {
    const c = toolChoice as { name?: unknown; function?: { name?: unknown } };
    const name = c.function?.name ?? c.name;
    tool = functions.find((f) => f.name === name);
  }
  if (!tool) return undefined;
  const parameters = typeof tool.parameters === 'object' && tool.parameters !== null ? (tool.parameters as Schema) : { type: 'object' };
  return { name: tool.name as string, arguments: JSON.stringify(sampleOf(parameters, parameters, greeting, 0, new Set())) };
}
