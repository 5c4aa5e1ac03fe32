// protobufjs Roots for the vendored protos and for Envoy's official ones (@grpc/grpc-js-xds deps/).
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type protobuf from 'protobufjs';
import { protoRoot } from '../../src/extproc/protos.js';

export { vendoredRoot } from '../../src/extproc/protos.js';

const require = createRequire(import.meta.url);
const XDS_DEPS = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
export const OFFICIAL_INCLUDE_DIRS = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(XDS_DEPS, d));

export function officialRoot(): protobuf.Root {
  return protoRoot(OFFICIAL_INCLUDE_DIRS);
}
