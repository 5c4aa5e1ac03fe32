// Serialises the ProcessingResponse objects the transport writes. proto-loader's serializer first converts the
// plain object into protobufjs message instances (fromObject: a copy of every header, body and Struct value),
// then encodes those. protobufjs' encoder reads plain objects just as well, as long as enum fields hold numbers,
// so the copy is skipped: that was a measurable part of every answer (bench/pipeline-bench.ts). The output is
// byte for byte proto-loader's (test/unit/response-encoder.test.ts). The answers of every request do not come
// this way at all: answer-writer.ts writes them as bytes, which the serializer passes through.
import type * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { createAnswerWriter, type AnswerWriter } from './answer-writer.js';
import { extProcServiceDefinition, vendoredRoot } from './protos.js';
import { continueResponse } from './responses.js';
import type { ContinueDecision } from './types.js';
import type { Answer, RequestKind, WireCommonResponse, WireProcessingResponse } from './wire.js';

type Serialize = (r: WireProcessingResponse) => Buffer;

let responseType: protobuf.Type | undefined;
const processingResponse = () => (responseType ??= vendoredRoot().lookupType('envoy.service.ext_proc.v3.ProcessingResponse'));
let writer: AnswerWriter | undefined;

/** A continue answer: bytes from the answer writer when it covers the decision, else the object to encode. */
export function continueAnswer(kind: RequestKind, d: ContinueDecision, allowModeOverride: boolean): Answer {
  writer ??= createAnswerWriter(processingResponse().root);
  return writer(kind, d, allowModeOverride) ?? continueResponse(kind, d, allowModeOverride);
}

/**
 * The one enum a hot answer can carry (CommonResponse.status, in a headers answer that replaces the body).
 * Answers with other enums (mode_override's body modes, an immediate response's HTTP status, a Struct null) are
 * rare — at most one per stream — and take proto-loader's path.
 */
const COMMON_FIELDS = ['request_headers', 'response_headers', 'request_body', 'response_body'] as const;

export function createResponseEncoder(type: protobuf.Type, fallback: Serialize): Serialize {
  const statusValues = (type.root.lookupEnum('envoy.service.ext_proc.v3.CommonResponse.ResponseStatus').values ?? {}) as Record<string, number>;
  return (r) => {
    if (r.mode_override || r.immediate_response) return fallback(r);
    let msg = r;
    for (const f of COMMON_FIELDS) {
      const common = r[f]?.response;
      if (common?.status === undefined) continue;
      const status = statusValues[common.status];
      if (status === undefined) return fallback(r);
      // A copy with the number: the caller's object stays as it was.
      msg = { ...r, [f]: { response: { ...common, status } as unknown as WireCommonResponse } };
    }
    return type.encode(msg).finish() as Buffer;
  };
}

let serverDefinition: grpc.ServiceDefinition | undefined;

/** The ExternalProcessor service as the server registers it: proto-loader's definition with the encoder above. */
export function extProcServerDefinition(): grpc.ServiceDefinition {
  if (!serverDefinition) {
    const base = extProcServiceDefinition();
    const process = base.Process as grpc.MethodDefinition<unknown, WireProcessingResponse>;
    const encode = createResponseEncoder(processingResponse(), process.responseSerialize);
    const responseSerialize = (a: Answer): Buffer => (Buffer.isBuffer(a) ? a : encode(a));
    serverDefinition = { ...base, Process: { ...process, responseSerialize } };
  }
  return serverDefinition;
}
