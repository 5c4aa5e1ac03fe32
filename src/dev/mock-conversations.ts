// What the mock backends store for the Responses API, as OpenAI keeps it: responses with the input items each was
// given, and conversations (the Conversations API, `/v1/conversations`) with their items. Each backend keeps its
// own, as separate backends do, so a request tiergate routes to the wrong tier finds nothing there: the same
// "not found" production would give. vLLM has no Conversations API; OpenAI's is what clients of it are written
// against, so that is the shape followed here.
import type { ServerResponse } from 'node:http';
import { badRequest, mockTokenCount, notFound, sendJson } from './mock-wire.js';

type Item = Record<string, unknown>;

export interface Conversation {
  id: string;
  created_at: number;
  metadata: Record<string, unknown>;
  items: Item[];
}

/** The most of each kind one backend keeps; the oldest goes first. */
const MAX_KEPT = 1000;
/** OpenAI's bound on the items given at once (on create, and in one POST of items). */
const MAX_ITEMS_AT_ONCE = 20;

function keep<V>(map: Map<string, V>, id: string, value: V): void {
  map.set(id, value);
  if (map.size > MAX_KEPT) map.delete(map.keys().next().value as string);
}

export class MockStore {
  /** Stored responses by id, as retrieved. */
  readonly responses = new Map<string, Item>();
  /** The input items of each stored response (`GET /v1/responses/{id}/input_items`). */
  private readonly inputs = new Map<string, Item[]>();
  private readonly conversations = new Map<string, Conversation>();
  private count = 0;

  constructor(private readonly backend: string) {}

  /** A new id of this backend, `prefix_mock_<backend>_<n>`. */
  private mint(prefix: string): string {
    return `${prefix}_mock_${this.backend}_${++this.count}`;
  }

  storeResponse(id: string, response: Item, input: readonly Item[]): void {
    keep(this.responses, id, response);
    keep(this.inputs, id, [...input]);
  }

  deleteResponse(id: string): void {
    this.responses.delete(id);
    this.inputs.delete(id);
  }

  conversation(id: string): Conversation | undefined {
    return this.conversations.get(id);
  }

  /**
   * A request's `input` as the items a store keeps: a string is one user message; a message given by role and
   * content alone gets its type, and a string content its one text part; every item gets an id if it has none.
   */
  itemsOf(input: unknown): Item[] {
    const given: unknown[] = typeof input === 'string' ? [{ role: 'user', content: input }] : Array.isArray(input) ? input : [];
    return given.map((raw) => {
      const item: Item = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? { ...(raw as Item) } : { type: 'message', role: 'user', content: String(raw) };
      if (item.type === undefined && item.role !== undefined) item.type = 'message';
      if (item.type === 'message') {
        if (typeof item.content === 'string') item.content = [{ type: item.role === 'assistant' ? 'output_text' : 'input_text', text: item.content }];
        item.status ??= 'completed';
      }
      if (typeof item.id !== 'string') item.id = this.mint(item.type === 'message' ? 'msg' : 'item');
      return item;
    });
  }

  /** GET /v1/responses/{id}/input_items. */
  listInputItems(res: ServerResponse, id: string, query: URLSearchParams): void {
    const items = this.inputs.get(id);
    if (!items) return notFound(res, `Response with id '${id}' not found.`);
    const listed = page(items, query);
    if (!listed) return badRequest(res, `No input item with id '${query.get('after')}' in this response to list after.`, 'after');
    sendJson(res, 200, listed);
  }

  /**
   * `/v1/conversations` and everything under it: create, retrieve, update and delete a conversation; list,
   * add, retrieve and delete its items. `body` is the parsed JSON of a POST (undefined for other methods).
   */
  handle(res: ServerResponse, method: string, path: string, query: URLSearchParams, body: Item | undefined): void {
    const [id, sub, itemId, ...more] = path.slice('/v1/conversations'.length).split('/').slice(1);
    if (id === undefined || id === '') {
      if (method !== 'POST') return notFound(res, `no route ${method} ${path}`);
      return this.create(res, body ?? {});
    }
    const conv = this.conversations.get(id);
    if (more.length > 0 || (sub !== undefined && sub !== 'items')) return notFound(res, `no route ${method} ${path}`);
    if (!conv) return notFound(res, `Conversation with id '${id}' not found.`);
    if (sub === undefined) {
      if (method === 'GET') return sendJson(res, 200, view(conv));
      if (method === 'DELETE') {
        this.conversations.delete(id);
        return sendJson(res, 200, { id, object: 'conversation.deleted', deleted: true });
      }
      if (method === 'POST') {
        const metadata = body?.metadata;
        if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) return badRequest(res, 'metadata must be an object', 'metadata');
        conv.metadata = metadata as Record<string, unknown>;
        return sendJson(res, 200, view(conv));
      }
      return notFound(res, `no route ${method} ${path}`);
    }
    if (itemId === undefined || itemId === '') {
      if (method === 'GET') {
        const listed = page(conv.items, query);
        return listed ? sendJson(res, 200, listed) : badRequest(res, `No item with id '${query.get('after')}' in this conversation to list after.`, 'after');
      }
      if (method !== 'POST') return notFound(res, `no route ${method} ${path}`);
      const added = this.givenItems(res, body?.items, 'items');
      if (!added) return;
      conv.items.push(...added);
      return sendJson(res, 200, { object: 'list', data: added, first_id: added[0]?.id ?? null, last_id: added.at(-1)?.id ?? null, has_more: false });
    }
    const at = conv.items.findIndex((i) => i.id === itemId);
    if (at < 0) return notFound(res, `Item with id '${itemId}' not found.`);
    if (method === 'GET') return sendJson(res, 200, conv.items[at]);
    if (method === 'DELETE') {
      conv.items.splice(at, 1);
      // OpenAI answers an item's deletion with the conversation it was taken from.
      return sendJson(res, 200, view(conv));
    }
    return notFound(res, `no route ${method} ${path}`);
  }

  private create(res: ServerResponse, body: Item): void {
    const metadata = body.metadata ?? {};
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) return badRequest(res, 'metadata must be an object', 'metadata');
    const items = body.items === undefined || body.items === null ? [] : this.givenItems(res, body.items, 'items');
    if (!items) return;
    const conv: Conversation = { id: this.mint('conv'), created_at: Math.floor(Date.now() / 1000), metadata: metadata as Record<string, unknown>, items };
    keep(this.conversations, conv.id, conv);
    sendJson(res, 200, view(conv));
  }

  /** Items a request gives (an array of at most 20), or undefined once it has been answered 400. */
  private givenItems(res: ServerResponse, given: unknown, param: string): Item[] | undefined {
    if (!Array.isArray(given)) return void badRequest(res, `${param} must be an array of items`, param);
    if (given.length > MAX_ITEMS_AT_ONCE) return void badRequest(res, `${param} holds ${given.length} items; at most ${MAX_ITEMS_AT_ONCE} may be given at once`, param);
    return this.itemsOf(given);
  }
}

/** A conversation as the API shows it: without its items, which are listed on their own. */
function view(conv: Conversation): Record<string, unknown> {
  return { id: conv.id, object: 'conversation', created_at: conv.created_at, metadata: conv.metadata };
}

/** What a conversation's items come to as a turn's history, in tokens: read back whole, as a continuation is. */
export function itemTokens(items: readonly Item[]): number {
  return items.length === 0 ? 0 : mockTokenCount(JSON.stringify(items.map((i) => i.content ?? i.arguments ?? i.output ?? '')));
}

/**
 * One page of a list, as OpenAI's item lists page: `order` desc (the default, newest first) or asc, `limit` 1 to
 * 100 (default 20), `after` the id the previous page ended with. Undefined when `after` names no item of the list.
 */
function page(items: readonly Item[], query: URLSearchParams): Record<string, unknown> | undefined {
  const ordered = query.get('order') === 'asc' ? [...items] : [...items].reverse();
  const after = query.get('after');
  const from = after === null ? 0 : ordered.findIndex((i) => i.id === after) + 1;
  if (from === 0 && after !== null) return undefined;
  const asked = Number(query.get('limit') ?? 20);
  const limit = Number.isInteger(asked) ? Math.min(100, Math.max(1, asked)) : 20;
  const data = ordered.slice(from, from + limit);
  return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: from + limit < ordered.length };
}
