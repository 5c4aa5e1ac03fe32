// Confidence bands (near_threshold), canary cohorts (percentage and stickiness) and the shadow version.
import { describe, expect, it } from 'vitest';
import { compileClassifier } from '../../src/classify/engine.js';
import { ClassifierRollout, canaryBucket, conversationKey, type CanaryConfig } from '../../src/classify/rollout.js';
import type { VersionConfig } from '../../src/classify/rules-schema.js';
import { V7 } from '../../src/classify/v7.js';
import { configSchema } from '../../src/config/schema.js';
import type { ChatMessage } from '../../src/llm/openai-request.js';

const user = (content: string): ChatMessage => ({ role: 'user', content });
const BANDED: VersionConfig = { ...V7, nearThreshold: [{ rule: 'long_prompt', from: 480, to: 520, tier: 'strong' }] };

describe('near_threshold bands', () => {
  const v = compileClassifier('v7b', BANDED);
  it.each([
    [479, 'weak', 'default'],
    [480, 'strong', 'near_threshold'],
    [500, 'strong', 'near_threshold'],
    [520, 'strong', 'near_threshold'],
    [521, 'strong', 'long_prompt'],
  ])('%i chars → %s by %s', (n, tier, rule) => {
    expect(v([user('a'.repeat(n))])).toMatchObject({ tier, rule });
  });

  it('explains the measure, the band and the threshold it surrounds', () => {
    expect(v([user('😀'.repeat(490))]).reason).toBe('near_threshold: 490 chars within 480–520 of long_prompt (> 500 chars)');
  });

  it('a rule earlier in order still decides: a keyword is no borderline case', () => {
    expect(v([user(`design ${'a'.repeat(490)}`)])).toMatchObject({ tier: 'strong', rule: 'keyword' });
  });

  it('routes to the band tier, whatever side of the threshold', () => {
    const toWeak = compileClassifier('x', { ...V7, nearThreshold: [{ rule: 'many_messages', from: 5, to: 6, tier: 'weak' }] });
    const msgs = (n: number) => Array.from({ length: n }, () => user('hi'));
    expect(toWeak(msgs(6))).toMatchObject({ tier: 'weak', rule: 'near_threshold' });
    expect(toWeak(msgs(7))).toMatchObject({ tier: 'strong', rule: 'many_messages' });
    expect(toWeak(msgs(4))).toMatchObject({ tier: 'weak', rule: 'default' });
  });

  it('config check takes the conditions on parts and tools, and a band around a tool count', () => {
    const r = configSchema.safeParse({
      classifier: {
        versions: {
          v8: {
            rules: [
              { name: 'media', tier: 'strong', when: [{ anyPart: ['image_url', 'input_image'] }] },
              { name: 'agent', tier: 'strong', when: [{ moreThanTools: 4 }] },
            ],
            default: 'weak',
            nearThreshold: [{ rule: 'agent', from: 3, to: 5, tier: 'strong' }],
          },
        },
      },
    });
    expect(r.success ? [] : r.error.issues).toEqual([]);
    const bad = configSchema.safeParse({ classifier: { versions: { v8: { rules: [{ name: 'media', tier: 'strong', when: [{ anyPart: [] }] }, { name: 'agent', tier: 'strong', when: [{ moreThanTools: -1 }] }], default: 'weak' } } } });
    expect(bad.success ? [] : bad.error.issues.map((i) => i.path.join('.'))).toEqual(expect.arrayContaining([expect.stringMatching(/^classifier\.versions\.v8\.rules\.0\.when\.0/), expect.stringMatching(/^classifier\.versions\.v8\.rules\.1\.when\.0/)]));
    // A misspelt condition, or two in one object, is named rather than zod's bare "Invalid input".
    const misspelt = configSchema.safeParse({ classifier: { versions: { v8: { rules: [{ name: 'm', tier: 'strong', when: [{ anyParts: ['image_url'] }, { anyPart: ['image_url'], moreThanTools: 1 }, { regex: 'x', flags: 'i' }] }], default: 'weak' } } } });
    expect(misspelt.success ? [] : misspelt.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'classifier.versions.v8.rules.0.when.0: unknown condition "anyParts" (conditions: anyKeyword, moreThanChars, moreThanBytes, moreThanMessages, regex, anyPart, moreThanTools)',
      'classifier.versions.v8.rules.0.when.1: a condition names exactly one of anyKeyword, moreThanChars, moreThanBytes, moreThanMessages, regex, anyPart, moreThanTools; list several in "when" to require them all',
    ]);
  });

  it('config check rejects a band on an unknown rule, on a rule with no numeric condition, and an unknown tier', () => {
    const r = configSchema.safeParse({
      classifier: {
        versions: {
          v8: {
            rules: V7.rules,
            default: 'weak',
            nearThreshold: [
              { rule: 'nope', from: 1, to: 2, tier: 'strong' },
              { rule: 'keyword', from: 1, to: 2, tier: 'strong' },
              { rule: 'long_prompt', from: 490, to: 510, tier: 'medium' },
              { rule: 'long_prompt', from: 510, to: 490, tier: 'strong' },
            ],
          },
        },
      },
    });
    expect(r.success).toBe(false);
    const messages = r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringContaining('nearThreshold.0.rule: no enabled rule named "nope"'),
        expect.stringContaining('nearThreshold.1.rule: rule "keyword" needs exactly one numeric condition'),
        expect.stringContaining('nearThreshold.2.tier: unknown tier "medium"'),
        expect.stringContaining('nearThreshold.3.to: from must not exceed to'),
      ]),
    );
  });
});

const V8: VersionConfig = { ...V7, rules: [{ name: 'keyword', tier: 'strong', when: [{ anyKeyword: ['python'] }] }] };
const VERSIONS = { v7: V7, v8: V8 };
const canary = (over: Partial<CanaryConfig>): CanaryConfig => ({ version: 'v8', percent: 10, stickyBy: 'conversation', ...over });
const id = (tenant: string, first: string, more: ChatMessage[] = [], headers: Array<[string, string]> = []) => ({
  tenant,
  headers: new Map(headers),
  messages: [{ role: 'system', content: 'You are terse.' } as ChatMessage, user(first), ...more],
});

describe('in-app canary', () => {
  it.each([1, 10, 50, 90])('%i%% of 20,000 conversations go to the candidate (±1 point)', (percent) => {
    const r = new ClassifierRollout(VERSIONS, { active: 'v7', canary: canary({ percent }) });
    let n = 0;
    for (let i = 0; i < 20_000; i++) if (r.versionFor(id('acme', `question ${i}`)) === 'v8') n++;
    expect(Math.abs(n / 200 - percent)).toBeLessThanOrEqual(1);
  });

  it('0% sends nothing and 100% everything to the candidate', () => {
    const none = new ClassifierRollout(VERSIONS, { active: 'v7', canary: canary({ percent: 0 }) });
    const all = new ClassifierRollout(VERSIONS, { active: 'v7', canary: canary({ percent: 100 }) });
    for (let i = 0; i < 1000; i++) {
      expect(none.versionFor(id('t', `q${i}`))).toBe('v7');
      expect(all.versionFor(id('t', `q${i}`))).toBe('v8');
    }
  });

  it('sticky per conversation: later turns (which resend the system prompt and first question) stay with their version', () => {
    const r = new ClassifierRollout(VERSIONS, { active: 'v7', canary: canary({ percent: 50 }) });
    for (let i = 0; i < 200; i++) {
      const first = r.versionFor(id('acme', `question ${i}`));
      const later = r.versionFor(id('acme', `question ${i}`, [{ role: 'assistant', content: 'answer' }, user(`follow-up ${i}`)]));
      expect(later).toBe(first);
      // The decision itself comes from that version.
      expect(r.classify(id('acme', `question ${i}`)).decision.version).toBe(first);
    }
  });

  it('raising the percentage keeps everyone already in the cohort (10% ⊂ 50%)', () => {
    const ten = new ClassifierRollout(VERSIONS, { active: 'v7', canary: canary({ percent: 10 }) });
    const fifty = new ClassifierRollout(VERSIONS, { active: 'v7', canary: canary({ percent: 50 }) });
    let inTen = 0;
    for (let i = 0; i < 5000; i++) {
      if (ten.versionFor(id('t', `q${i}`)) !== 'v8') continue;
      inTen++;
      expect(fifty.versionFor(id('t', `q${i}`))).toBe('v8');
    }
    expect(inTen).toBeGreaterThan(300);
  });

  it('sticky per tenant: every request of a tenant gets the same version, and about the share of tenants', () => {
    const r = new ClassifierRollout(VERSIONS, { active: 'v7', canary: canary({ percent: 30, stickyBy: 'tenant' }) });
    let n = 0;
    for (let t = 0; t < 5000; t++) {
      const v = r.versionFor(id(`tenant-${t}`, 'a'));
      for (let q = 0; q < 3; q++) expect(r.versionFor(id(`tenant-${t}`, `other question ${q}`))).toBe(v);
      if (v === 'v8') n++;
    }
    expect(Math.abs(n / 50 - 30)).toBeLessThanOrEqual(2);
  });

  it('sticky per header, falling back to the conversation when the header is absent', () => {
    const r = new ClassifierRollout(VERSIONS, { active: 'v7', canary: canary({ percent: 50, stickyBy: 'header', header: 'x-session-id' }) });
    const bySession = new Map<string, string>();
    for (let i = 0; i < 300; i++) {
      const s = `s${i % 30}`;
      const v = r.versionFor(id('t', `unrelated ${i}`, [], [['x-session-id', s]]));
      if (bySession.has(s)) expect(v).toBe(bySession.get(s));
      bySession.set(s, v);
    }
    expect(new Set(bySession.values()).size).toBe(2);
    expect(r.versionFor(id('t', 'no header'))).toBe(r.versionFor(id('t', 'no header', [user('more')])));
  });

  it('the same conversation in two tenants is bucketed independently', () => {
    const keys = new Set<number>();
    for (const t of ['a', 'b', 'c']) keys.add(canaryBucket('v8', `t:${t}\0c:${conversationKey(id(t, 'same').messages)}`));
    expect(keys.size).toBe(3);
  });
});

describe('shadow version', () => {
  it('decides beside the active version without changing its decision', () => {
    const r = new ClassifierRollout(VERSIONS, { active: 'v7', shadow: 'v8' });
    const c = r.classify(id('t', 'write python to sort a list'));
    expect(c.decision).toMatchObject({ version: 'v7', tier: 'weak', rule: 'default' });
    expect(c.shadow).toMatchObject({ version: 'v8', tier: 'strong', rule: 'keyword', reason: 'keyword: keyword "python"' });
  });

  it('both versions see what the request carries besides text (here its declared tools)', () => {
    const agent: VersionConfig = { rules: [{ name: 'agent', tier: 'strong', when: [{ moreThanTools: 1 }] }], default: 'weak' };
    const r = new ClassifierRollout({ ...VERSIONS, agent }, { active: 'agent', shadow: 'v7' });
    const c = r.classify({ ...id('t', 'hi'), shape: { tools: 2 } });
    expect(c.decision).toMatchObject({ version: 'agent', rule: 'agent', reason: 'agent: 2 tools > 1' });
    const flipped = new ClassifierRollout({ ...VERSIONS, agent }, { active: 'v7', shadow: 'agent' }).classify({ ...id('t', 'hi'), shape: { tools: 2 } });
    expect(flipped.shadow).toMatchObject({ version: 'agent', tier: 'strong' });
  });

  it('is absent when none is configured', () => {
    expect(new ClassifierRollout(VERSIONS, { active: 'v7' }).classify(id('t', 'x')).shadow).toBeUndefined();
  });

  it('config check rejects unknown shadow and canary versions, and a canary of the active version', () => {
    const r = configSchema.safeParse({ classifier: { shadow: 'v9', canary: { version: 'v7', percent: 5 } } });
    expect(r.success).toBe(false);
    const messages = r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(messages).toEqual(expect.arrayContaining([expect.stringContaining('classifier.shadow: unknown classifier version "v9"'), 'classifier.canary.version: the canary version is the active version']));
    const header = configSchema.safeParse({ classifier: { versions: { v8: V8 }, canary: { version: 'v8', percent: 5, stickyBy: 'header' } } });
    expect(header.success).toBe(false);
  });
});
