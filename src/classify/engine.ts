// Compiles a classifier version into a function from messages to an explained decision.
import type { ChatMessage } from '../llm/openai-request.js';
import { codePointLength, joinedText, type Role } from './prompt-text.js';
import type { Condition, VersionConfig } from './rules-schema.js';

export interface ClassifierDecision {
  tier: string;
  version: string;
  /** The rule that fired, or 'default'. Low-cardinality: used as a metric label. */
  rule: string;
  /** Human-readable why: which keyword, which count against which threshold. Never prompt text beyond a keyword. */
  reason: string;
}

export type Classifier = (messages: readonly ChatMessage[]) => ClassifierDecision;

interface Facts {
  text(roles: ReadonlySet<Role> | undefined): string;
  messageCount: number;
}

/** Returns the reason when the condition holds, undefined otherwise. */
type CompiledCondition = (f: Facts, roles: ReadonlySet<Role> | undefined) => string | undefined;

export function compileClassifier(version: string, cfg: VersionConfig): Classifier {
  const rules = cfg.rules
    .filter((r) => r.enabled)
    .map((r) => ({
      name: r.name,
      tier: r.tier,
      roles: r.roles ? new Set<Role>(r.roles) : undefined,
      conditions: r.when.map(compileCondition),
    }));
  return (messages) => {
    const texts = new Map<string, string>();
    const facts: Facts = {
      messageCount: messages.length,
      text(roles) {
        const key = roles ? [...roles].sort().join(',') : '*';
        let t = texts.get(key);
        if (t === undefined) {
          t = joinedText(messages, roles);
          texts.set(key, t);
        }
        return t;
      },
    };
    for (const rule of rules) {
      const reasons: string[] = [];
      let all = true;
      for (const cond of rule.conditions) {
        const why = cond(facts, rule.roles);
        if (why === undefined) {
          all = false;
          break;
        }
        reasons.push(why);
      }
      if (all) return { tier: rule.tier, version, rule: rule.name, reason: `${rule.name}: ${reasons.join(', ')}` };
    }
    return { tier: cfg.default, version, rule: 'default', reason: 'default: no rule matched' };
  };
}

function compileCondition(c: Condition): CompiledCondition {
  if ('anyKeyword' in c) {
    const keywords = c.anyKeyword.map((k) => k.toLowerCase());
    return (f, roles) => {
      const text = f.text(roles);
      for (const k of keywords) if (text.includes(k)) return `keyword "${k}"`;
      return undefined;
    };
  }
  if ('moreThanChars' in c) {
    const n = c.moreThanChars;
    return (f, roles) => {
      const text = f.text(roles);
      // Cheap exits: UTF-16 length bounds the code-point count from above and at least halves it.
      if (text.length <= n) return undefined;
      const len = text.length > 2 * n + 1 ? text.length : codePointLength(text);
      return len > n ? `${codePointLength(text)} chars > ${n}` : undefined;
    };
  }
  if ('moreThanBytes' in c) {
    const n = c.moreThanBytes;
    return (f, roles) => {
      const bytes = Buffer.byteLength(f.text(roles), 'utf8');
      return bytes > n ? `${bytes} bytes > ${n}` : undefined;
    };
  }
  if ('moreThanMessages' in c) {
    const n = c.moreThanMessages;
    return (f) => (f.messageCount > n ? `${f.messageCount} messages > ${n}` : undefined);
  }
  const re = new RegExp(c.regex, c.flags ?? '');
  return (f, roles) => (re.test(f.text(roles)) ? `regex /${c.regex}/` : undefined);
}
