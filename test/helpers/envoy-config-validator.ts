// Strict validation of an Envoy YAML config against Envoy's official protos (@grpc/grpc-js-xds deps/), the way
// Envoy's own loader would read it (proto3 JSON mapping): unknown fields, unknown enum values, wrong scalar
// types, malformed Durations, several members of one oneof, and every `typed_config` resolved by its `@type`
// and checked as that message. There is no Envoy binary here (architecture.md §4), so this is the check.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { OFFICIAL_INCLUDE_DIRS } from './proto-root.js';

const ENVOY_API = OFFICIAL_INCLUDE_DIRS[0] as string;

export interface Problem {
  path: string;
  message: string;
}

/** Whether every file `file` imports, and everything those import, is in the include dirs (memoized by path). */
const resolvable = new Map<string, boolean>();
function importsResolve(file: string): boolean {
  const known = resolvable.get(file);
  if (known !== undefined) return known;
  resolvable.set(file, true); // an import cycle is settled by the files outside it
  const ok = [...readFileSync(file, 'utf8').matchAll(/^import\s+(?:public\s+|weak\s+)?"([^"]+)";/gm)].every(([, i]) => {
    if ((i as string).startsWith('google/protobuf/') && protobuf.common.get(i as string)) return true;
    const dir = OFFICIAL_INCLUDE_DIRS.find((d) => existsSync(join(d, i as string)));
    return dir !== undefined && importsResolve(join(dir, i as string));
  });
  resolvable.set(file, ok);
  return ok;
}

export class EnvoyConfigValidator {
  private readonly root: protobuf.Root;

  constructor() {
    this.root = new protobuf.Root();
    this.root.resolvePath = (_origin, target) => {
      if (target.startsWith('/')) return target;
      if (target.startsWith('google/protobuf/') && protobuf.common.get(target)) return target;
      for (const dir of OFFICIAL_INCLUDE_DIRS) if (existsSync(join(dir, target))) return join(dir, target);
      return target;
    };
    this.root.loadSync('envoy/config/bootstrap/v3/bootstrap.proto', { keepCase: true });
  }

  /** Finds a message type by full name, loading the protos of its package directory on first use. */
  private lookup(fullName: string): protobuf.Type | undefined {
    const found = this.root.lookup(fullName);
    if (found instanceof protobuf.Type) return found;
    // Envoy's layout: package a.b.c.v3 lives in a/b/c/v3/*.proto.
    const pkg = fullName.split('.').slice(0, -1);
    while (pkg.length > 0) {
      const dir = join(ENVOY_API, ...pkg);
      if (existsSync(dir)) {
        // A file whose imports are not all here is skipped (envoy/config/trace/v3/opencensus.proto imports
        // OpenCensus' protos, which grpc-js-xds does not ship): loading it would fail, and leave its half-read
        // messages in the root to fail every later resolve. A config using its messages is then reported as an
        // unknown type, never passed.
        for (const f of readdirSync(dir).filter((n) => n.endsWith('.proto'))) {
          if (importsResolve(join(dir, f))) this.root.loadSync(join(...pkg, f), { keepCase: true });
        }
        break;
      }
      pkg.pop(); // a nested message: Outer.Inner
    }
    const again = this.root.lookup(fullName);
    return again instanceof protobuf.Type ? again : undefined;
  }

  validate(value: unknown, typeName = 'envoy.config.bootstrap.v3.Bootstrap'): Problem[] {
    const problems: Problem[] = [];
    const type = this.lookup(typeName);
    if (!type) return [{ path: '(root)', message: `unknown type ${typeName}` }];
    this.message(value, type, '', problems);
    return problems;
  }

  private message(value: unknown, type: protobuf.Type, path: string, out: Problem[]): void {
    const full = type.fullName.replace(/^\./, '');
    const wkt = WELL_KNOWN[full];
    if (wkt) {
      const err = wkt(value);
      if (err) out.push({ path: path || '(root)', message: err });
      return;
    }
    if (full === 'google.protobuf.Any') return this.any(value, path, out);
    if (!isObject(value)) {
      out.push({ path: path || '(root)', message: `expected an object for ${full}` });
      return;
    }
    type.resolveAll();
    const oneofsSet = new Map<string, string>();
    for (const [key, v] of Object.entries(value)) {
      const field = type.fields[key] ?? type.fieldsArray.find((f) => camel(f.name) === key);
      const p = path ? `${path}.${key}` : key;
      if (!field) {
        out.push({ path: p, message: `unknown field for ${full}` });
        continue;
      }
      if (field.partOf && field.partOf.oneof.length > 1) {
        const prev = oneofsSet.get(field.partOf.name);
        if (prev) out.push({ path: p, message: `oneof ${field.partOf.name} already set by ${prev}` });
        oneofsSet.set(field.partOf.name, key);
      }
      this.field(v, field, p, out);
    }
  }

  private field(v: unknown, field: protobuf.Field, path: string, out: Problem[]): void {
    if (field instanceof protobuf.MapField) {
      if (!isObject(v)) return void out.push({ path, message: 'expected a map' });
      for (const [k, item] of Object.entries(v)) this.single(item, field, `${path}.${k}`, out);
      return;
    }
    if (field.repeated) {
      if (!Array.isArray(v)) return void out.push({ path, message: 'expected a list' });
      v.forEach((item, i) => this.single(item, field, `${path}[${i}]`, out));
      return;
    }
    this.single(v, field, path, out);
  }

  private single(v: unknown, field: protobuf.Field, path: string, out: Problem[]): void {
    const rt = field.resolvedType;
    if (rt instanceof protobuf.Type) return this.message(v, rt, path, out);
    if (rt instanceof protobuf.Enum) {
      const ok = typeof v === 'number' ? Object.values(rt.values).includes(v) : typeof v === 'string' && v in rt.values;
      if (!ok) out.push({ path, message: `unknown value ${JSON.stringify(v)} for enum ${rt.name}` });
      return;
    }
    const err = scalar(field.type, v);
    if (err) out.push({ path, message: err });
  }

  private any(value: unknown, path: string, out: Problem[]): void {
    if (!isObject(value) || typeof value['@type'] !== 'string') {
      out.push({ path, message: 'typed_config needs an "@type"' });
      return;
    }
    const typeUrl = value['@type'];
    const name = typeUrl.replace(/^type\.googleapis\.com\//, '');
    const type = this.lookup(name);
    if (!type) {
      out.push({ path, message: `unknown @type ${typeUrl}` });
      return;
    }
    const { ['@type']: _ignored, ...rest } = value;
    this.message(rest, type, path, out);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const camel = (s: string) => s.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());

function scalar(type: string, v: unknown): string | undefined {
  switch (type) {
    case 'string':
      return typeof v === 'string' ? undefined : `expected a string`;
    case 'bool':
      return typeof v === 'boolean' ? undefined : `expected true or false`;
    case 'bytes':
      return typeof v === 'string' ? undefined : `expected base64 bytes`;
    case 'double':
    case 'float':
      return typeof v === 'number' ? undefined : `expected a number`;
    default: // int32, uint32, int64, uint64, fixed…: proto3 JSON allows numbers or numeric strings
      return (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && /^-?\d+$/.test(v)) ? undefined : `expected an integer`;
  }
}

/** Well-known types have their own JSON forms in proto3. */
const WELL_KNOWN: Record<string, (v: unknown) => string | undefined> = {
  // "5s", "0.250s" — proto3 JSON only takes seconds with an "s"; "300ms" is rejected by Envoy.
  'google.protobuf.Duration': (v) => (typeof v === 'string' && /^-?\d+(\.\d{1,9})?s$/.test(v) ? undefined : `invalid Duration ${JSON.stringify(v)} (use e.g. "5s" or "0.25s")`),
  'google.protobuf.Struct': (v) => (isObject(v) ? undefined : 'expected an object'),
  'google.protobuf.Value': () => undefined,
  'google.protobuf.ListValue': (v) => (Array.isArray(v) ? undefined : 'expected a list'),
  'google.protobuf.Empty': (v) => (isObject(v) && Object.keys(v).length === 0 ? undefined : 'expected {}'),
  'google.protobuf.BoolValue': (v) => scalar('bool', v),
  'google.protobuf.StringValue': (v) => scalar('string', v),
  'google.protobuf.UInt32Value': (v) => scalar('uint32', v),
  'google.protobuf.UInt64Value': (v) => scalar('uint64', v),
  'google.protobuf.Int32Value': (v) => scalar('int32', v),
  'google.protobuf.Int64Value': (v) => scalar('int64', v),
  'google.protobuf.DoubleValue': (v) => scalar('double', v),
  'google.protobuf.FloatValue': (v) => scalar('float', v),
};
