// Which classifier version decides a request (the active one, or a canary candidate for a sticky share of
// requests) and which one shadows it. Compiled once per config; a reload that changes the percentage takes
// effect for new streams at once.
import { createHash } from 'node:crypto';
import type { ChatMessage } from '../llm/openai-request.js';
import type { HeaderMap } from '../extproc/types.js';
import { compileClassifier, type Classifier, type ClassifierDecision, type RequestShape } from './engine.js';
import { messageText } from './prompt-text.js';
import type { VersionConfig } from './rules-schema.js';

export interface CanaryConfig {
  version: string;
  percent: number;
  stickyBy: 'tenant' | 'conversation' | 'header';
  header?: string | undefined;
}

export interface RolloutConfig {
  active: string;
  shadow?: string | undefined;
  canary?: CanaryConfig | undefined;
}

export interface RequestIdentity {
  tenant: string;
  headers: HeaderMap;
  messages: readonly ChatMessage[];
  /** What else the request carries that a rule may look at; no tools when absent. */
  shape?: RequestShape;
}

export interface Classification {
  decision: ClassifierDecision;
  /** The shadow version's decision, when one is configured. */
  shadow?: ClassifierDecision;
}

export class ClassifierRollout {
  readonly activeVersion: string;
  readonly shadowVersion: string | undefined;
  private readonly active: Classifier;
  private readonly shadow: Classifier | undefined;
  private readonly canary: { version: string; classifier: Classifier; cutoff: number; cfg: CanaryConfig } | undefined;

  constructor(versions: Readonly<Record<string, VersionConfig>>, cfg: RolloutConfig) {
    const compiled = new Map<string, Classifier>();
    const get = (name: string): Classifier => {
      let c = compiled.get(name);
      if (!c) {
        const v = versions[name];
        if (!v) throw new Error(`unknown classifier version ${name}`);
        c = compileClassifier(name, v);
        compiled.set(name, c);
      }
      return c;
    };
    this.activeVersion = cfg.active;
    this.active = get(cfg.active);
    this.shadowVersion = cfg.shadow;
    this.shadow = cfg.shadow === undefined ? undefined : get(cfg.shadow);
    if (cfg.canary && cfg.canary.percent > 0) {
      // A 32-bit bucket below the cutoff is in the cohort: raising the percentage only adds keys, so a
      // conversation that was in the candidate's cohort stays there as the canary grows.
      this.canary = { version: cfg.canary.version, classifier: get(cfg.canary.version), cutoff: (cfg.canary.percent / 100) * 2 ** 32, cfg: cfg.canary };
    }
  }

  /** The version that decides this request. */
  versionFor(id: RequestIdentity): string {
    return this.inCanary(id) ? (this.canary as { version: string }).version : this.activeVersion;
  }

  classify(id: RequestIdentity): Classification {
    const inCanary = this.inCanary(id);
    const decide = inCanary ? (this.canary as { classifier: Classifier }).classifier : this.active;
    const decision = decide(id.messages, id.shape);
    if (!this.shadow) return { decision };
    // The same version twice gives the same answer: no need to run it again.
    const shadow = this.shadowVersion === decision.version ? decision : this.shadow(id.messages, id.shape);
    return { decision, shadow };
  }

  private inCanary(id: RequestIdentity): boolean {
    const c = this.canary;
    if (!c) return false;
    return canaryBucket(c.version, stickyKey(c.cfg, id)) < c.cutoff;
  }
}

/**
 * A uniform 32-bit bucket for a key. Salted with the candidate's name so that two successive candidates do not
 * always land on the same conversations.
 */
export function canaryBucket(version: string, key: string): number {
  return createHash('sha256').update(version).update('\0').update(key).digest().readUInt32BE(0);
}

export function stickyKey(cfg: CanaryConfig, id: RequestIdentity): string {
  if (cfg.stickyBy === 'tenant') return `t:${id.tenant}`;
  if (cfg.stickyBy === 'header' && cfg.header) {
    const v = id.headers.get(cfg.header);
    if (v) return `t:${id.tenant}\0h:${v}`;
  }
  return `t:${id.tenant}\0c:${conversationKey(id.messages)}`;
}

/**
 * What every turn of one conversation repeats: its system/developer messages and its first user message.
 * Clients such as Aider or Cline send no conversation id, but they resend this prefix on every turn.
 */
export function conversationKey(messages: readonly ChatMessage[]): string {
  const parts: string[] = [];
  for (const m of messages) {
    if (m.role === 'system' || m.role === 'developer') parts.push(`${m.role}:${messageText(m)}`);
    else if (m.role === 'user') {
      parts.push(`user:${messageText(m)}`);
      break;
    }
  }
  return parts.join('\0');
}
