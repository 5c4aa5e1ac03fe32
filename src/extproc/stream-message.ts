// What one message of an ext_proc stream means to its handler: the handler call it makes (headers read lazily
// from the wire, bodies as Envoy sent them), and what the stream's first message and its gRPC metadata say about
// the whole stream (the body modes Envoy names in protocol_config, the side stream's own metadata).
import type * as grpc from '@grpc/grpc-js';
import { WireHeaders } from './header-codec.js';
import type { Decision, HeaderMap, ProtocolConfig, StreamHandler, StreamInfo } from './types.js';
import type { RequestKind, WireProcessingRequest } from './wire.js';

/** Calls the handler for one message of the given kind. */
export function dispatch(h: StreamHandler, kind: RequestKind, msg: WireProcessingRequest): Decision | Promise<Decision> {
  switch (kind) {
    case 'request_headers':
      return h.requestHeaders(new WireHeaders(msg.request_headers?.headers), msg.request_headers?.end_of_stream === true);
    case 'request_body':
      return h.requestBody(msg.request_body?.body ?? EMPTY, msg.request_body?.end_of_stream === true);
    case 'request_trailers':
      return h.requestTrailers(new WireHeaders(msg.request_trailers?.trailers));
    case 'response_headers':
      return h.responseHeaders(new WireHeaders(msg.response_headers?.headers), msg.response_headers?.end_of_stream === true);
    case 'response_body':
      return h.responseBody(msg.response_body?.body ?? EMPTY, msg.response_body?.end_of_stream === true);
    case 'response_trailers':
      return h.responseTrailers(new WireHeaders(msg.response_trailers?.trailers));
  }
}

const EMPTY = Buffer.alloc(0);

/** What the stream's first message and its call metadata say about the whole stream. */
export function streamInfo(first: WireProcessingRequest, metadata: grpc.Metadata): StreamInfo {
  const pc = first.protocol_config;
  const protocolConfig: ProtocolConfig | undefined = pc
    ? {
        requestBodyMode: pc.request_body_mode ?? 'NONE',
        responseBodyMode: pc.response_body_mode ?? 'NONE',
      }
    : undefined;
  return { protocolConfig, callMetadata: new CallMetadata(metadata) };
}

/** grpc-js metadata read as headers: keys are lower-case there already; binary (-bin) values are not text. */
class CallMetadata implements HeaderMap {
  constructor(private readonly md: grpc.Metadata) {}

  get(name: string): string | undefined {
    let v: grpc.MetadataValue | undefined;
    try {
      v = this.md.get(name)[0];
    } catch {
      return undefined; // grpc-js refuses a name no metadata key could have
    }
    return typeof v === 'string' ? v : undefined;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }
}
