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
let pkgCache: protoLoader.PackageDefinition | undefined;

function packageDefinition(): protoLoader.PackageDefinition {
  pkgCache ??= protoLoader.loadSync(EXT_PROC_PROTO, LOADER_OPTIONS);
  return pkgCache;
}

let statusByName: Map<string, number> | undefined;

/**
 * With `enums: String`, a decoded HttpStatus.code is the enum name ("BadRequest") when the number is one the
 * proto names, and the bare number otherwise; this maps either back to the HTTP status number.
 */
export function httpStatusNumber(code: string | number | undefined): number {
  if (typeof code === 'number') return code;
  if (code === undefined) return 0;
  if (!statusByName) {
    const e = packageDefinition()['envoy.type.v3.StatusCode'] as unknown as { type: { value: { name: string; number: number }[] } };
    statusByName = new Map(e.type.value.map((v) => [v.name, v.number]));
  }
  return statusByName.get(code) ?? (Number(code) || 0);
}

export function extProcServiceDefinition(): grpc.ServiceDefinition {
  if (!cached) {
    const pkg = packageDefinition();
    const def = pkg['envoy.service.ext_proc.v3.ExternalProcessor'];
    if (!def || !('Process' in def)) throw new Error('ExternalProcessor service missing from protos');
    cached = def as unknown as grpc.ServiceDefinition;
  }
  return cached;
}

export function extProcClientConstructor(): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(extProcServiceDefinition(), 'ExternalProcessor');
}
