// Config compiled once into an immutable runtime object. Each stream captures the runtime current at its
// start, so a reload never changes a request half-way (architecture.md §2).
import { createHash } from 'node:crypto';
import { endpointOf } from '../stages/parse.js';
import { compileAuth, type AuthRuntime } from '../auth/api-keys.js';
import { TenantDirectory } from '../policy/tenant-policy.js';
import { ClassifierRollout } from '../classify/rollout.js';
import type { VersionConfig } from '../classify/rules-schema.js';
import { V7 } from '../classify/v7.js';
import type { InterpolationProblem } from './interpolate.js';
import { PriceTable } from '../usage/price-table.js';
import { parseConfigText } from './load.js';
import type { Config } from './schema.js';

export interface TierRuntime {
  name: string;
  model: string;
  /** `Bearer <key>` from the tier's credentialsEnv; replaces the client's authorization upstream. */
  authorization: string | undefined;
  provider: string;
  /** The body's `priority` is the tenant's (tiers.*.priorityScheduling). */
  priorityScheduling: boolean;
  /** The key of the body's per-tenant `cache_salt` (tiers.*.cacheSaltSecretEnv); undefined: not set. */
  cacheSaltKey: Buffer | undefined;
  /** The key of the body's per-tenant `safety_identifier` (tiers.*.safetyIdentifierSecretEnv); undefined: not set. */
  safetyIdKey: Buffer | undefined;
}

export interface Runtime {
  /** Short content hash: the config-version metric label and the log field. */
  version: string;
  config: Config;
  /** The active version, the canary candidate's share, and the shadow. */
  classifiers: ClassifierRollout;
  /** The active version's name. */
  classifierVersion: string;
  tiers: ReadonlyMap<string, TierRuntime>;
  /** Client model name → tier: aliases, plus each tier's own upstream model id. */
  modelToTier: ReadonlyMap<string, string>;
  autoModels: ReadonlySet<string>;
  classifyPaths: ReadonlySet<string>;
  /**
   * Every path whose body is read and accounted: the classify paths, and beside each Responses API path its
   * compaction endpoint (`/v1/responses/compact`), which generates, and is billed, like a turn.
   */
  llmPaths: ReadonlySet<string>;
  unclassifiedPaths: ReadonlyMap<string, { tier?: string | undefined }>;
  /** routing.statefulTier, or the first tier: where stateful Responses API turns asking for auto go. */
  statefulTier: TierRuntime;
  prices: PriceTable;
  auth: AuthRuntime;
  tenants: TenantDirectory;
}

export type CompileResult = { ok: true; runtime: Runtime } | { ok: false; problems: InterpolationProblem[] };

/** Config text → runtime: parse, interpolate, validate and compile, every problem collected with its path. */
export function compileConfigText(text: string, env: NodeJS.ProcessEnv, fileName?: string): CompileResult {
  const loaded = parseConfigText(text, env, fileName);
  if (loaded.ok) return compileRuntime(loaded.config, env);
  const rest = loaded.withoutUnset && compileRuntime(loaded.withoutUnset, env);
  if (!rest || rest.ok) return { ok: false, problems: loaded.problems };
  const named = new Set(loaded.problems.map((p) => p.path));
  return { ok: false, problems: [...loaded.problems, ...rest.problems.filter((p) => !named.has(p.path))] };
}

/** Below this a secret could be guessed, and with it every tenant's salt or identifier. */
const MIN_SECRET_CHARS = 32;

/** The key of a per-tenant HMAC (a prefix-cache salt, a safety identifier) from its env var, or a problem. */
function hmacKey(name: string, env: NodeJS.ProcessEnv, path: string, problems: InterpolationProblem[]): Buffer | undefined {
  const secret = env[name];
  if (!secret) problems.push({ path, message: `environment variable ${name} is not set` });
  else if (secret.length < MIN_SECRET_CHARS) problems.push({ path, message: `${name} must hold at least ${MIN_SECRET_CHARS} characters (e.g. openssl rand -base64 32)` });
  else return Buffer.from(secret, 'utf8');
  return undefined;
}

/** Whether a Responses API path is read (and so response and conversation ids pass through tiergate). */
export function readsResponses(rt: Pick<Runtime, 'classifyPaths'>): boolean {
  for (const p of rt.classifyPaths) if (endpointOf(p) === 'responses') return true;
  return false;
}

export function compileRuntime(config: Config, env: NodeJS.ProcessEnv): CompileResult {
  const problems: InterpolationProblem[] = [];
  const tiers = new Map<string, TierRuntime>();
  for (const [name, t] of Object.entries(config.tiers)) {
    let authorization: string | undefined;
    if (t.credentialsEnv) {
      const key = env[t.credentialsEnv];
      if (!key) problems.push({ path: `tiers.${name}.credentialsEnv`, message: `environment variable ${t.credentialsEnv} is not set` });
      else authorization = `Bearer ${key}`;
    }
    const cacheSaltKey = t.cacheSaltSecretEnv === undefined ? undefined : hmacKey(t.cacheSaltSecretEnv, env, `tiers.${name}.cacheSaltSecretEnv`, problems);
    const safetyIdKey = t.safetyIdentifierSecretEnv === undefined ? undefined : hmacKey(t.safetyIdentifierSecretEnv, env, `tiers.${name}.safetyIdentifierSecretEnv`, problems);
    tiers.set(name, { name, model: t.model, authorization, provider: t.provider, priorityScheduling: t.priorityScheduling, cacheSaltKey, safetyIdKey });
  }
  const statefulTier = tiers.get(config.routing.statefulTier ?? '') ?? tiers.values().next().value;
  if (!statefulTier) problems.push({ path: 'tiers', message: 'at least one tier is needed' });
  const prices = new PriceTable(config.prices);
  costBudgetProblems(config, tiers, prices, problems);
  const auth = compileAuth(config.auth, problems);
  if (problems.length > 0) return { ok: false, problems };

  const modelToTier = new Map<string, string>();
  for (const t of tiers.values()) modelToTier.set(t.model, t.name);
  for (const [alias, tier] of Object.entries(config.aliases)) modelToTier.set(alias, tier);

  const versions: Record<string, VersionConfig> = { v7: V7, ...config.classifier.versions };
  let classifiers: ClassifierRollout;
  try {
    classifiers = new ClassifierRollout(versions, config.classifier);
  } catch (e) {
    return { ok: false, problems: [{ path: 'classifier', message: (e as Error).message }] };
  }

  const runtime: Runtime = {
    version: configVersion(config, auth),
    config: deepFreeze(structuredClone(config)),
    classifiers,
    classifierVersion: config.classifier.active,
    tiers,
    modelToTier,
    autoModels: new Set(config.routing.autoModels),
    classifyPaths: new Set(config.routing.classifyPaths),
    llmPaths: new Set(config.routing.classifyPaths.flatMap((p) => (endpointOf(p) === 'responses' ? [p, `${p}/compact`] : [p]))),
    unclassifiedPaths: new Map(Object.entries(config.routing.unclassifiedPaths)),
    statefulTier: statefulTier as TierRuntime,
    prices,
    auth,
    tenants: new TenantDirectory(config),
  };
  return { ok: true, runtime: Object.freeze(runtime) };
}

/**
 * A short hash of the config and of what its key files held: the same file and keys give the same version on
 * every replica, and a rotated key file gives a new one, so its reload shows in the config-version metric.
 */
function configVersion(config: Config, auth: AuthRuntime): string {
  const hash = createHash('sha256').update(JSON.stringify(config));
  for (const [path, digest] of auth.keyFiles) hash.update(`\n${path}\t${digest}`);
  return hash.digest('hex').slice(0, 12);
}

/** A cost budget is kept at the price table's prices: every tier's model needs one, or its spend would not count. */
function costBudgetProblems(config: Config, tiers: ReadonlyMap<string, TierRuntime>, prices: PriceTable, problems: InterpolationProblem[]): void {
  const unpriced = [...tiers.values()].filter((t) => !prices.lookup(t.model));
  if (unpriced.length === 0) return;
  const names = unpriced.map((t) => `'${t.model}' (tier ${t.name})`).join(', ');
  for (const [section, entries] of [['plans', config.plans], ['tenants', config.tenants]] as const) {
    for (const [name, p] of Object.entries(entries)) {
      for (const field of ['dailyCostBudgetUsd', 'monthlyCostBudgetUsd'] as const) {
        if (p[field] === undefined) continue;
        problems.push({ path: `${section}.${name}.${field}`, message: `a cost budget needs a price for every tier's model; prices.models has none for ${names}` });
      }
    }
  }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
