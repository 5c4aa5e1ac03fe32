// The wire format must be Envoy's: every message and field tiergate loads has the same full name, number,
// type and label as Envoy's official protos (the copy in @grpc/grpc-js-xds, Envoy ≈1.31 API). The only
// differences allowed are the newer fields listed below, checked against envoyproxy/envoy main
// (protos/README.md).
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { officialRoot, vendoredRoot } from '../helpers/proto-root.js';

const NEWER_THAN_OFFICIAL_COPY = new Set([
  'envoy.service.ext_proc.v3.ProtocolConfiguration',
  'envoy.service.ext_proc.v3.ProcessingRequest.protocol_config',
  'envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode.FULL_DUPLEX_STREAMED',
  'envoy.service.ext_proc.v3.StreamedBodyResponse',
  'envoy.service.ext_proc.v3.BodyMutation.streamed_response',
]);

function allTypes(ns: protobuf.NamespaceBase, out: Array<protobuf.Type | protobuf.Enum> = []) {
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Type || nested instanceof protobuf.Enum) out.push(nested);
    if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) allTypes(nested, out);
  }
  return out;
}

const fullName = (r: protobuf.ReflectionObject) => r.fullName.replace(/^\./, '');

function fieldType(f: protobuf.Field): string {
  return f.resolvedType ? fullName(f.resolvedType) : f.type;
}

describe('vendored protos vs Envoy official protos', () => {
  const ours = vendoredRoot();
  const official = officialRoot();
  const envoyTypes = allTypes(ours).filter((t) => fullName(t).startsWith('envoy.'));

  it('declares the messages tiergate reads and writes', () => {
    expect(envoyTypes.map(fullName)).toEqual(
      expect.arrayContaining([
        'envoy.service.ext_proc.v3.ProcessingRequest',
        'envoy.service.ext_proc.v3.ProcessingResponse',
        'envoy.service.ext_proc.v3.ImmediateResponse',
        'envoy.config.core.v3.HeaderValueOption',
        'envoy.extensions.filters.http.ext_proc.v3.ProcessingMode',
      ]),
    );
  });

  it.each(envoyTypes.filter((t): t is protobuf.Type => t instanceof protobuf.Type).map((t) => [fullName(t), t] as const))(
    'message %s matches field for field',
    (name, type) => {
      if (NEWER_THAN_OFFICIAL_COPY.has(name)) return;
      const theirs = official.lookupType(name);
      for (const f of type.fieldsArray) {
        const key = `${name}.${f.name}`;
        if (NEWER_THAN_OFFICIAL_COPY.has(key)) continue;
        const o = theirs.fields[f.name];
        expect(o, `${key} exists officially`).toBeDefined();
        if (!o) continue;
        o.resolve();
        expect([key, f.id, fieldType(f), f.repeated, f instanceof protobuf.MapField ? f.keyType : null]).toEqual([
          key,
          o.id,
          fieldType(o),
          o.repeated,
          o instanceof protobuf.MapField ? o.keyType : null,
        ]);
        expect(f.partOf?.name ?? null, `${key} oneof`).toBe(o.partOf?.name ?? null);
      }
    },
  );

  it.each(envoyTypes.filter((t): t is protobuf.Enum => t instanceof protobuf.Enum).map((t) => [fullName(t), t] as const))(
    'enum %s values match',
    (name, e) => {
      const theirs = official.lookupEnum(name);
      for (const [valueName, num] of Object.entries(e.values)) {
        if (NEWER_THAN_OFFICIAL_COPY.has(`${name}.${valueName}`)) continue;
        expect([valueName, theirs.values[valueName]]).toEqual([valueName, num]);
      }
    },
  );

  it('serves the same service method as Envoy calls', () => {
    const method = ours.lookupService('envoy.service.ext_proc.v3.ExternalProcessor').methods.Process;
    const theirs = official.lookupService('envoy.service.ext_proc.v3.ExternalProcessor').methods.Process;
    expect([method?.requestType, method?.responseType, method?.requestStream, method?.responseStream]).toEqual([
      theirs?.requestType,
      theirs?.responseType,
      true,
      true,
    ]);
  });
});

describe('newer Envoy fields never break decoding', () => {
  it('decodes a ProcessingRequest carrying fields we do not declare', () => {
    const future = vendoredRoot();
    const Req = future.lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
    // Fields a future Envoy might add: a scalar, a nested message and a repeated field.
    Req.add(new protobuf.Field('future_string', 40, 'string'));
    Req.add(new protobuf.Field('future_message', 41, 'envoy.service.ext_proc.v3.HttpBody'));
    Req.add(new protobuf.Field('future_list', 42, 'uint64', 'repeated'));
    const bytes = Req.encode(
      Req.fromObject({
        request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/chat/completions') }] } },
        protocol_config: { request_body_mode: 'BUFFERED', response_body_mode: 'STREAMED' },
        future_string: 'x',
        future_message: { body: Buffer.from('y'), end_of_stream: true },
        future_list: [1, 2, 3],
      }),
    ).finish();

    const ours = vendoredRoot().lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
    const decoded = ours.toObject(ours.decode(bytes), { enums: String, oneofs: true });
    expect(decoded.request).toBe('request_headers');
    expect(decoded.protocol_config).toEqual({ request_body_mode: 'BUFFERED', response_body_mode: 'STREAMED' });
    expect(decoded).not.toHaveProperty('future_string');

    // And Envoy's own 1.31-era definition skips protocol_config (field 11) the same way.
    const old = officialRoot().lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
    const oldDecoded = old.toObject(old.decode(bytes), { oneofs: true });
    expect(oldDecoded.request).toBe('request_headers');
  });
});

describe('the fields newer than the official copy', () => {
  // Pinned to envoyproxy/envoy main's api/envoy/service/ext_proc/v3/external_processor.proto, which the 1.31
  // copy above predates: a typo in a field number here would put tiergate's answers on the wrong field.
  it('streamed_response is BodyMutation field 3, in the mutation oneof; StreamedBodyResponse is {body = 1, end_of_stream = 2}', () => {
    const root = vendoredRoot();
    const mutation = root.lookupType('envoy.service.ext_proc.v3.BodyMutation');
    const f = mutation.fields.streamed_response;
    f?.resolve();
    expect([f?.id, f?.resolvedType && fullName(f.resolvedType), f?.partOf?.name]).toEqual([3, 'envoy.service.ext_proc.v3.StreamedBodyResponse', 'mutation']);
    const streamed = root.lookupType('envoy.service.ext_proc.v3.StreamedBodyResponse');
    expect(streamed.fieldsArray.map((x) => [x.name, x.id, x.type])).toEqual([
      ['body', 1, 'bytes'],
      ['end_of_stream', 2, 'bool'],
    ]);
  });
});
