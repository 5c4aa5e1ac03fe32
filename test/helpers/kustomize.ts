// A small `kustomize build` for the tests (no kustomize binary here): resources (files and directories with a
// kustomization), ConfigMaps generated from files, namespace, images and inline JSON 6902 patches with targets.
// Any other kustomization field or option is an error, so a manifest never relies on something this builder
// would silently skip.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { parse, parseAllDocuments } from 'yaml';

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: unknown }; [k: string]: unknown };

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  resources?: string[];
  images?: Array<{ name: string; newName?: string; newTag?: string }>;
  patches?: Array<{ target: { group?: string; version?: string; kind: string; name: string }; patch: string }>;
  configMapGenerator?: Array<{ name: string; files?: string[]; options?: { labels?: Record<string, string>; disableNameSuffixHash?: boolean } }>;
}
const KNOWN = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'configMapGenerator', 'images', 'patches']);

/** Cluster-scoped kinds keep no namespace. */
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'GatewayClass']);

export function kustomizeBuild(dir: string): K8sObject[] {
  const file = join(dir, 'kustomization.yaml');
  const k = parse(readFileSync(file, 'utf8')) as Kustomization;
  for (const key of Object.keys(k)) if (!KNOWN.has(key)) throw new Error(`${file}: kustomization field "${key}" is not supported by the test builder`);
  let objects: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const p = join(dir, r);
    if (!existsSync(p)) throw new Error(`${file}: resource ${r} does not exist`);
    objects.push(...(statSync(p).isDirectory() ? kustomizeBuild(p) : readObjects(p)));
  }
  for (const g of k.configMapGenerator ?? []) objects.push(generatedConfigMap(file, dir, g));
  if (k.namespace) objects = objects.map((o) => (CLUSTER_SCOPED.has(o.kind) ? o : { ...o, metadata: { ...o.metadata, namespace: k.namespace as string } }));
  for (const img of k.images ?? []) objects = objects.map((o) => setImages(o, img));
  for (const p of k.patches ?? []) {
    const matches = objects.filter((o) => o.kind === p.target.kind && o.metadata.name === p.target.name && apiMatches(o.apiVersion, p.target));
    if (matches.length !== 1) throw new Error(`${file}: patch target ${p.target.kind}/${p.target.name} matched ${matches.length} objects`);
    const ops = parse(p.patch) as Operation[];
    // validateOperation + a failing `test` op throw, as kustomize fails the build.
    const patched = fastJsonPatch.applyPatch(structuredClone(matches[0]), ops, true, false).newDocument as K8sObject;
    objects = objects.map((o) => (o === matches[0] ? patched : o));
  }
  const ids = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
  ids.forEach((id, i) => {
    if (ids.indexOf(id) !== i) throw new Error(`${file}: ${id} appears twice`);
  });
  return objects;
}

/**
 * A configMapGenerator entry with `files` (each `path` or `key=path`). kustomize appends a hash of the contents to
 * the name unless `disableNameSuffixHash`; this builder does not compute that hash, so it requires the option.
 * As kustomize's default load restrictor does, it refuses a file outside the kustomization's directory.
 */
function generatedConfigMap(file: string, dir: string, g: NonNullable<Kustomization['configMapGenerator']>[number]): K8sObject {
  for (const key of Object.keys(g)) if (!['name', 'files', 'options'].includes(key)) throw new Error(`${file}: configMapGenerator field "${key}" is not supported by the test builder`);
  for (const key of Object.keys(g.options ?? {})) if (!['labels', 'disableNameSuffixHash'].includes(key)) throw new Error(`${file}: configMapGenerator option "${key}" is not supported by the test builder`);
  if (g.options?.disableNameSuffixHash !== true) throw new Error(`${file}: configMapGenerator ${g.name}: the test builder needs disableNameSuffixHash: true (it does not compute kustomize's name hash)`);
  const data: Record<string, string> = {};
  for (const entry of g.files ?? []) {
    const [key, rel] = entry.includes('=') ? (entry.split('=', 2) as [string, string]) : [basename(entry), entry];
    const p = join(dir, rel);
    if (relative(dir, p).startsWith('..')) throw new Error(`${file}: ${rel} is outside the kustomization's directory, which kustomize refuses`);
    if (!existsSync(p)) throw new Error(`${file}: configMapGenerator file ${rel} does not exist`);
    if (key in data) throw new Error(`${file}: configMapGenerator ${g.name}: key ${key} twice`);
    data[key] = readFileSync(p, 'utf8');
  }
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name, ...(g.options?.labels ? { labels: g.options.labels } : {}) }, data };
}

export function readObjects(file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

function apiMatches(apiVersion: string, t: { group?: string; version?: string }): boolean {
  const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
  return (t.group === undefined || t.group === group) && (t.version === undefined || t.version === version);
}

/** kustomize's images transformer: every container and initContainer whose image name matches. */
function setImages(o: K8sObject, img: { name: string; newName?: string; newTag?: string }): K8sObject {
  const spec = (o.spec as { template?: { spec?: { containers?: Array<{ image: string }>; initContainers?: Array<{ image: string }> } } } | undefined)?.template?.spec;
  if (!spec) return o;
  const copy = structuredClone(o);
  const s = (copy.spec as { template: { spec: { containers?: Array<{ image: string }>; initContainers?: Array<{ image: string }> } } }).template.spec;
  for (const c of [...(s.containers ?? []), ...(s.initContainers ?? [])]) {
    const [name, tag] = splitImage(c.image);
    if (name === img.name) c.image = `${img.newName ?? name}:${img.newTag ?? tag}`;
  }
  return copy;
}

function splitImage(image: string): [string, string] {
  const at = image.lastIndexOf(':');
  return at > image.lastIndexOf('/') ? [image.slice(0, at), image.slice(at + 1)] : [image, 'latest'];
}

export const manifestsDir = (rel: string) => join(dirname(new URL(import.meta.url).pathname), '../../kgateway-manifests', rel);
