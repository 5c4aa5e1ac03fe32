// Which request headers a client may not pass on, and how a catalogue error becomes Envoy's local reply.
import { TiergateError, errorBody } from '../errors.js';
import type { HeaderMap, ReplyDecision } from '../extproc/types.js';
import type { Caller } from '../stages/authenticate.js';
import { H, ROUTING_HEADERS } from './contract-headers.js';

/** The gateway key's headers, minus any tiergate sets itself (a tier's upstream credential). */
export function credentials(caller: Caller | undefined, set: ReadonlyArray<readonly [string, string]>): string[] {
  if (!caller || caller.strip.length === 0) return [];
  return caller.strip.filter((h) => !set.some(([k]) => k === h));
}

/** Routing headers the client sent that tiergate is not setting itself: removed, so none of its values survive. */
export function clientRoutingHeaders(headers: HeaderMap, set: ReadonlyArray<readonly [string, string]>): string[] {
  return ROUTING_HEADERS.filter((h) => headers.has(h) && !set.some(([k]) => k === h));
}

export function replyFor(err: TiergateError): ReplyDecision {
  return {
    kind: 'reply',
    status: err.entry.status,
    headers: [[H.contentType, 'application/json'], ...err.extraHeaders],
    body: errorBody(err.entry, err.message, err.param),
    details: `tiergate_${err.entry.code}`,
  };
}
