// Loads the vendored Envoy ext_proc protos (protos/README.md) into a grpc-js service definition.
import { accessSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

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

/**
 * A protobufjs Root over proto files found in `includeDirs`, resolved the way proto-loader resolves them:
 * google/protobuf/* well-known types from protobufjs' bundled copies, everything else from the first include
 * dir that has the file.
 */
export function protoRoot(includeDirs: readonly string[], file = EXT_PROC_PROTO): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (isAbsolute(target)) return target;
    if (target.startsWith('google/protobuf/') && protobuf.common.get(target)) return target;
    for (const dir of includeDirs) {
      const p = join(dir, target);
      try {
        accessSync(p);
        return p;
      } catch {
        /* try the next include dir */
      }
    }
    return target;
  };
  root.loadSync(file, { keepCase: true });
  root.resolveAll();
  return root;
}

/** The vendored protos (the same files the service definition is loaded from) as a new protobufjs Root. */
export function vendoredRoot(): protobuf.Root {
  return protoRoot([PROTO_ROOT]);
}

export function extProcClientConstructor(): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(extProcServiceDefinition(), 'ExternalProcessor');
}
