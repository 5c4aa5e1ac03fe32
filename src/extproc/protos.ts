// Loads the vendored Envoy ext_proc protos (protos/README.md) into a grpc-js service definition.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_ROOT = fileURLToPath(new URL('../../protos', import.meta.url));
export const EXT_PROC_PROTO = 'envoy/service/ext_proc/v3/external_processor.proto';

/**
 * keepCase keeps Envoy's snake_case names; `oneofs: true` adds the `request`/`response` discriminators;
 * `defaults: false` means an absent bool is undefined (Envoy omits false); enums as strings.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

let cached: grpc.ServiceDefinition | undefined;

export function extProcServiceDefinition(): grpc.ServiceDefinition {
  if (!cached) {
    const pkg = protoLoader.loadSync(EXT_PROC_PROTO, LOADER_OPTIONS);
    const def = pkg['envoy.service.ext_proc.v3.ExternalProcessor'];
    if (!def || !('Process' in def)) throw new Error('ExternalProcessor service missing from protos');
    cached = def as unknown as grpc.ServiceDefinition;
  }
  return cached;
}

export function extProcClientConstructor(): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(extProcServiceDefinition(), 'ExternalProcessor');
}
