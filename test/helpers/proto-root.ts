// protobufjs Roots for the vendored protos and for Envoy's official ones (@grpc/grpc-js-xds deps/).
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import protobuf from 'protobufjs';
import { EXT_PROC_PROTO, PROTO_ROOT } from '../../src/extproc/protos.js';

const require = createRequire(import.meta.url);
const XDS_DEPS = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
export const OFFICIAL_INCLUDE_DIRS = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(XDS_DEPS, d));

function rootWith(includeDirs: string[]): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (isAbsolute(target)) return target;
    // google/protobuf/* well-known types come from protobufjs' bundled copies (common.js), as in proto-loader.
    if (target.startsWith('google/protobuf/') && protobuf.common.get(target)) return target;
    for (const dir of includeDirs) {
      const p = join(dir, target);
      try {
        require('node:fs').accessSync(p);
        return p;
      } catch {
        /* try the next include dir */
      }
    }
    return target;
  };
  return root;
}

export function vendoredRoot(): protobuf.Root {
  const root = rootWith([PROTO_ROOT]);
  root.loadSync(EXT_PROC_PROTO, { keepCase: true });
  root.resolveAll();
  return root;
}

export function officialRoot(): protobuf.Root {
  const root = rootWith(OFFICIAL_INCLUDE_DIRS);
  root.loadSync(EXT_PROC_PROTO, { keepCase: true });
  root.resolveAll();
  return root;
}
