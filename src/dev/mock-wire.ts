// What the mock backends' answers share: how they count tokens and cap them, how a stream cuts its text, how ids
// are minted, and how a JSON answer or an error is sent.
import type { ServerResponse } from 'node:http';

export const sleep = (ms: number) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());

/** Crude but deterministic: about four characters a token. */
export function mockTokenCount(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

/** Generated text after a token cap: `cut` when the cap ended it, as `finish_reason: "length"` says. */
export interface Capped {
  text: string;
  tokens: number;
  cut: boolean;
}

/**
 * `text` as a model capped at `limit` tokens generates it: whole when it fits, else its first `limit` tokens
 * (four characters each). undefined: no cap. A structured answer cut short is not valid JSON, as a real one is not.
 */
export function capped(text: string, limit: number | undefined): Capped {
  const tokens = mockTokenCount(text);
  if (limit === undefined || tokens <= limit) return { text, tokens, cut: false };
  let end = limit * 4;
  // Never half a surrogate pair: the client would get a lone surrogate.
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return { text: text.slice(0, end), tokens: limit, cut: true };
}

/** The first of `fields` that is a non-negative integer: a request's output token cap, undefined when it has none. */
export function tokenCap(body: Record<string, unknown>, fields: readonly string[]): number | undefined {
  for (const f of fields) {
    const v = body[f];
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  }
  return undefined;
}

/** How a stream cuts its text: word by word, each with the spacing after it. */
export const textPieces = (text: string): string[] => text.match(/\S+\s*/g) ?? [];
/** How a stream cuts a call's arguments (JSON, with no words to cut at): 16 characters at a time. */
export const argumentPieces = (args: string): string[] => args.match(/.{1,16}/gs) ?? [];

let callCount = 0;
/** A call id as backends mint them: new for every call. */
export const callId = (backend: string) => `call_mock_${backend}_${++callCount}`;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

/** A 400 in OpenAI's error shape, naming the field. */
export function badRequest(res: ServerResponse, message: string, param: string | null): void {
  sendJson(res, 400, { error: { message, type: 'invalid_request_error', param, code: null } });
}

export function notFound(res: ServerResponse, message: string, code = 'not_found'): void {
  sendJson(res, 404, { error: { message, type: 'invalid_request_error', param: null, code } });
}

/** A 405 for a path that takes POST only, in the words tiergate's own answer uses. */
export function postOnly(res: ServerResponse, path: string): void {
  sendJson(res, 405, { error: { message: `${path} takes POST requests only.`, type: 'invalid_request_error', param: null, code: 'method_not_allowed' } });
}
