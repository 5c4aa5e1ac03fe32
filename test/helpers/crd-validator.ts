// Validates custom resources offline the way the API server does (there is no cluster here): the CRD's
// structural schema with its defaults applied first, then types, enums, required fields, bounds, patterns,
// list-map keys, unknown fields (as `kubectl --validate=strict` reports them), and the CEL rules
// (x-kubernetes-validations), evaluated with @bufbuild/cel.
import { readFileSync } from 'node:fs';
import { CelScalar, celFunc, isCelError, run, type CelInput } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import { parseAllDocuments } from 'yaml';

/**
 * The API server's CEL environment has the spec's global `matches(string, regex)` besides the method form;
 * @bufbuild/cel registers only the method. RE2 syntax as used by these CRDs is a subset JS RegExp reads alike.
 */
const CEL_FUNCS = [...strings, celFunc('matches', [CelScalar.STRING, CelScalar.STRING], CelScalar.BOOL, (s, re) => new RegExp(re, 'u').test(s))];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };
interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: Json[];
  default?: Json;
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  not?: Schema;
  nullable?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-validations'?: Array<{ rule: string; message?: string; messageExpression?: string }>;
}

export class CrdValidator {
  private readonly schemas = new Map<string, Schema>();

  constructor(files: readonly string[]) {
    for (const file of files) {
      for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
        const crd = doc.toJS() as { kind?: string; spec?: { group: string; names: { kind: string }; versions: Array<{ name: string; schema: { openAPIV3Schema: Schema } }> } };
        if (crd?.kind !== 'CustomResourceDefinition' || !crd.spec) continue;
        for (const v of crd.spec.versions) this.schemas.set(`${crd.spec.group}/${v.name}/${crd.spec.names.kind}`, v.schema.openAPIV3Schema);
      }
    }
  }

  /** Whether a CRD for this apiVersion and kind was loaded. */
  knows(apiVersion: string, kind: string): boolean {
    return this.schemas.has(`${apiVersion}/${kind}`);
  }

  /** Every problem with its path; an empty list means the API server would accept the object. */
  validate(obj: JsonObject): string[] {
    const schema = this.schemas.get(`${String(obj.apiVersion)}/${String(obj.kind)}`);
    if (!schema) return [`no CRD for ${String(obj.apiVersion)} ${String(obj.kind)}`];
    const withDefaults = structuredClone(obj);
    applyDefaults(withDefaults, schema);
    const errors: string[] = [];
    // metadata is the API server's ObjectMeta, not part of the CRD's structural schema.
    const root: Schema = { ...schema, properties: { ...schema.properties, metadata: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } };
    check(withDefaults, root, '', errors);
    return errors;
  }
}

/** Defaults apply to absent properties of present objects, outermost first (as the API server does). */
function applyDefaults(node: Json, s: Schema): void {
  if (Array.isArray(node)) {
    if (s.items) for (const item of node) applyDefaults(item, s.items);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  for (const [k, ps] of Object.entries(s.properties ?? {})) {
    if (!(k in node) && ps.default !== undefined) node[k] = structuredClone(ps.default);
    if (k in node) applyDefaults(node[k] as Json, ps);
  }
  if (s.additionalProperties && typeof s.additionalProperties === 'object') {
    for (const [k, v] of Object.entries(node)) if (!s.properties?.[k]) applyDefaults(v, s.additionalProperties);
  }
}

function typeOf(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function check(v: Json, s: Schema, path: string, errors: string[]): void {
  const at = path || '(root)';
  const t = typeOf(v);
  if (v === null) {
    if (!s.nullable) errors.push(`${at}: null is not allowed`);
    return;
  }
  if (s['x-kubernetes-int-or-string']) {
    if (t !== 'integer' && t !== 'string') errors.push(`${at}: expected an integer or a string, got ${t}`);
  } else if (s.type && !(s.type === t || (s.type === 'number' && t === 'integer'))) {
    errors.push(`${at}: expected ${s.type}, got ${t}`);
    return;
  }
  if (s.enum && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) errors.push(`${at}: ${JSON.stringify(v)} is not one of ${JSON.stringify(s.enum)}`);
  if (typeof v === 'string') checkString(v, s, at, errors);
  if (typeof v === 'number') checkNumber(v, s, at, errors);
  if (Array.isArray(v)) checkArray(v, s, path, errors);
  else if (typeof v === 'object') checkObject(v, s, path, errors);
  for (const sub of s.allOf ?? []) check(v, sub, path, errors);
  if (s.anyOf && !s.anyOf.some((sub) => problems(v, sub, path) === 0)) errors.push(`${at}: matches none of anyOf`);
  if (s.oneOf && s.oneOf.filter((sub) => problems(v, sub, path) === 0).length !== 1) errors.push(`${at}: must match exactly one of oneOf`);
  if (s.not && problems(v, s.not, path) === 0) errors.push(`${at}: matches a forbidden schema (not)`);
  for (const rule of s['x-kubernetes-validations'] ?? []) {
    let ok: unknown;
    try {
      ok = run(rule.rule, { self: toCel(v, s) as CelInput }, { funcs: CEL_FUNCS });
    } catch (e) {
      ok = e;
    }
    // An evaluation error is a failure too, reported as such (never taken for a pass).
    if (ok instanceof Error || isCelError(ok)) errors.push(`${at}: CEL rule could not be evaluated: ${rule.rule}: ${String((ok as Error).message)}`);
    else if (ok !== true) errors.push(`${at}: ${rule.message ?? `failed CEL rule ${rule.rule}`}`);
  }
}

function problems(v: Json, s: Schema, path: string): number {
  const errs: string[] = [];
  check(v, s, path, errs);
  return errs.length;
}

function checkString(v: string, s: Schema, at: string, errors: string[]): void {
  const len = [...v].length;
  if (s.minLength !== undefined && len < s.minLength) errors.push(`${at}: shorter than ${s.minLength}`);
  if (s.maxLength !== undefined && len > s.maxLength) errors.push(`${at}: longer than ${s.maxLength}`);
  if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(v)) errors.push(`${at}: ${JSON.stringify(v)} does not match ${s.pattern}`);
}

function checkNumber(v: number, s: Schema, at: string, errors: string[]): void {
  if (s.minimum !== undefined && (s.exclusiveMinimum ? v <= s.minimum : v < s.minimum)) errors.push(`${at}: below the minimum ${s.minimum}`);
  if (s.maximum !== undefined && (s.exclusiveMaximum ? v >= s.maximum : v > s.maximum)) errors.push(`${at}: above the maximum ${s.maximum}`);
}

function checkArray(v: Json[], s: Schema, path: string, errors: string[]): void {
  const at = path || '(root)';
  if (s.minItems !== undefined && v.length < s.minItems) errors.push(`${at}: fewer than ${s.minItems} items`);
  if (s.maxItems !== undefined && v.length > s.maxItems) errors.push(`${at}: more than ${s.maxItems} items`);
  const keyOf = (x: Json) => (s['x-kubernetes-list-type'] === 'map' ? JSON.stringify((s['x-kubernetes-list-map-keys'] ?? []).map((k) => (x as JsonObject)[k])) : JSON.stringify(x));
  if (s['x-kubernetes-list-type'] === 'map' || s['x-kubernetes-list-type'] === 'set') {
    const keys = v.map(keyOf);
    keys.forEach((k, i) => {
      if (keys.indexOf(k) !== i) errors.push(`${at}[${i}]: duplicate entry ${k}`);
    });
  }
  if (s.items) v.forEach((item, i) => check(item, s.items as Schema, `${path}[${i}]`, errors));
}

function checkObject(v: JsonObject, s: Schema, path: string, errors: string[]): void {
  const at = path || '(root)';
  for (const r of s.required ?? []) if (!(r in v)) errors.push(`${at}: missing required field "${r}"`);
  const n = Object.keys(v).length;
  if (s.minProperties !== undefined && n < s.minProperties) errors.push(`${at}: fewer than ${s.minProperties} properties`);
  if (s.maxProperties !== undefined && n > s.maxProperties) errors.push(`${at}: more than ${s.maxProperties} properties`);
  for (const [k, child] of Object.entries(v)) {
    const childPath = path ? `${path}.${k}` : k;
    const ps = s.properties?.[k] ?? (typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined);
    if (ps) check(child, ps, childPath, errors);
    else if (!s['x-kubernetes-preserve-unknown-fields'] && s.additionalProperties !== true && (s.properties || s.type === 'object')) {
      // Only the root-level apiVersion and kind are outside every CRD's properties list.
      if (!(path === '' && (k === 'apiVersion' || k === 'kind'))) errors.push(`${childPath}: unknown field`);
    }
  }
}

/** JSON → CEL values as the API server types them: integers are CEL ints, objects are maps. */
function toCel(v: Json, s: Schema | undefined): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') return s?.type === 'number' ? v : Number.isInteger(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map((x) => toCel(x, s?.items));
  const m = new Map<string, unknown>();
  for (const [k, x] of Object.entries(v)) {
    const ps = s?.properties?.[k] ?? (typeof s?.additionalProperties === 'object' ? s.additionalProperties : undefined);
    m.set(k, toCel(x, ps));
  }
  return m;
}
