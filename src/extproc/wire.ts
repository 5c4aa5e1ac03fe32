// TypeScript views of the protobuf objects proto-loader produces with LOADER_OPTIONS.
// Only src/extproc/ (and the Envoy-faithful test client in src/dev/) may use these.
import type { BodySendMode, HeaderSendMode } from './types.js';

export interface WireHeaderValue {
  key: string;
  value?: string;
  raw_value?: Buffer;
}
export interface WireHeaderMap {
  headers?: WireHeaderValue[];
}
export interface WireHeaderValueOption {
  header: WireHeaderValue;
  append?: { value: boolean };
  // append_action is left out on purpose: ext_proc ignores it (§3.3), and it is an enum, which the response
  // encoder (response-encoder.ts) would have to translate.
}
export interface WireHeaderMutation {
  set_headers?: WireHeaderValueOption[];
  remove_headers?: string[];
}
export interface WireHttpHeaders {
  headers?: WireHeaderMap;
  end_of_stream?: boolean;
}
export interface WireHttpBody {
  body?: Buffer;
  end_of_stream?: boolean;
}
export interface WireHttpTrailers {
  trailers?: WireHeaderMap;
}
export interface WireProtocolConfig {
  request_body_mode?: BodySendMode;
  response_body_mode?: BodySendMode;
  send_body_without_waiting_for_header_response?: boolean;
}
/** google.protobuf.Value as protobufjs' bundled well-known types spell it: camelCase even with keepCase. */
export interface WireValue {
  nullValue?: string;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: WireStruct;
  listValue?: { values?: WireValue[] };
}
export interface WireStruct {
  fields?: Record<string, WireValue>;
}

export const REQUEST_KINDS = ['request_headers', 'response_headers', 'request_body', 'response_body', 'request_trailers', 'response_trailers'] as const;
export type RequestKind = (typeof REQUEST_KINDS)[number];

export interface WireProcessingRequest {
  request?: RequestKind;
  request_headers?: WireHttpHeaders;
  response_headers?: WireHttpHeaders;
  request_body?: WireHttpBody;
  response_body?: WireHttpBody;
  request_trailers?: WireHttpTrailers;
  response_trailers?: WireHttpTrailers;
  attributes?: Record<string, WireStruct>;
  observability_mode?: boolean;
  protocol_config?: WireProtocolConfig;
}

export interface WireCommonResponse {
  status?: 'CONTINUE' | 'CONTINUE_AND_REPLACE';
  header_mutation?: WireHeaderMutation;
  body_mutation?: { body?: Buffer; clear_body?: boolean; streamed_response?: WireStreamedBody };
  clear_route_cache?: boolean;
}
/** The only body answer Envoy accepts in FULL_DUPLEX_STREAMED mode (envoy-ext-proc.md §2.2, §5). */
export interface WireStreamedBody {
  body?: Buffer;
  end_of_stream?: boolean;
}
export interface WireImmediateResponse {
  status?: { code?: number | string };
  headers?: WireHeaderMutation;
  body?: Buffer;
  details?: string;
}
export interface WireProcessingMode {
  request_header_mode?: HeaderSendMode;
  response_header_mode?: HeaderSendMode;
  request_body_mode?: BodySendMode;
  response_body_mode?: BodySendMode;
  request_trailer_mode?: HeaderSendMode;
  response_trailer_mode?: HeaderSendMode;
}
export type ResponseKind = RequestKind | 'immediate_response';

/** What the transport writes: a ProcessingResponse, or one already serialised (answer-writer.ts). */
export type Answer = WireProcessingResponse | Buffer;

export interface WireProcessingResponse {
  response?: ResponseKind;
  request_headers?: { response?: WireCommonResponse };
  response_headers?: { response?: WireCommonResponse };
  request_body?: { response?: WireCommonResponse };
  response_body?: { response?: WireCommonResponse };
  request_trailers?: { header_mutation?: WireHeaderMutation };
  response_trailers?: { header_mutation?: WireHeaderMutation };
  immediate_response?: WireImmediateResponse;
  dynamic_metadata?: WireStruct;
  mode_override?: WireProcessingMode;
}
