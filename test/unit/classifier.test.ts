import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileClassifier } from '../../src/classify/engine.js';
import { codePointLength, joinedText } from '../../src/classify/prompt-text.js';
import { V7, V7_KEYWORDS } from '../../src/classify/v7.js';
import type { ChatMessage } from '../../src/llm/openai-request.js';
import { declaredTools, parseLlmRequest } from '../../src/llm/parse-request.js';
import { FIXTURES } from '../helpers/shared-data.js';
import { fuzzRuns } from '../helpers/generated.js';

const v7 = compileClassifier('v7', V7);
const user = (content: ChatMessage['content']): ChatMessage => ({ role: 'user', content });

describe('v7 classifier', () => {
  it.each([...V7_KEYWORDS])('keyword %s → strong', (kw) => {
    const d = v7([user(`please help: ${kw} this`)]);
    expect(d).toMatchObject({ tier: 'strong', rule: 'keyword', version: 'v7' });
    expect(d.reason).toContain(kw);
  });

  it.each([
    ['Korean keyword inside a word', '이 코드의 리팩터링이 필요해요', 'strong', 'keyword'],
    ['Korean non-keyword', '안녕하세요 날씨가 좋네요', 'weak', 'default'],
    ['upper-case keyword (text is lower-cased)', 'REFACTOR the loop', 'strong', 'keyword'],
    ['substring match inside another word', 'the designer liked it', 'strong', 'keyword'],
    ['plain small talk', 'Say hi', 'weak', 'default'],
  ])('%s', (_name, text, tier, rule) => {
    expect(v7([user(text)])).toMatchObject({ tier, rule });
  });

  it.each([
    [500, 'weak'],
    [501, 'strong'],
  ])('%i ASCII characters → %s (strong only when longer than 500)', (n, tier) => {
    expect(v7([user('a'.repeat(n))]).tier).toBe(tier);
  });

  it.each([
    // 500 emoji are 1000 UTF-16 units but 500 code points: still weak, as Python's len would say.
    [500, 'weak'],
    [501, 'strong'],
  ])('%i emoji → %s (counted in code points, not UTF-16 units)', (n, tier) => {
    expect(v7([user('😀'.repeat(n))]).tier).toBe(tier);
  });

  it('counts 500 Korean syllables as 500 characters (600+ bytes: the byte rule is off in v7)', () => {
    const text = '가'.repeat(500);
    expect(Buffer.byteLength(text)).toBe(1500);
    expect(v7([user(text)]).tier).toBe('weak');
  });

  it('joins messages with one space before measuring', () => {
    // 250 + 1 (joining space) + 250 = 501 > 500
    expect(v7([user('a'.repeat(250)), { role: 'assistant', content: 'b'.repeat(250) }])).toMatchObject({ tier: 'strong', rule: 'long_prompt' });
    expect(v7([user('a'.repeat(250)), { role: 'assistant', content: 'b'.repeat(249) }]).tier).toBe('weak');
  });

  it.each([
    [5, 'weak'],
    [6, 'strong'],
  ])('%i messages → %s (empty and null contents count as messages)', (n, tier) => {
    const msgs: ChatMessage[] = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? user('hi') : { role: 'assistant', content: i === 1 ? null : '' }));
    expect(v7(msgs).tier).toBe(tier);
  });

  it('reads text parts of an array content and ignores image parts', () => {
    const msg = user([
      { type: 'text', text: 'look at' },
      { type: 'image_url', image_url: { url: 'https://example.com/debug.png' } },
      { type: 'text', text: 'this' },
    ]);
    expect(joinedText([msg])).toBe('look at this');
    expect(v7([msg]).tier).toBe('weak');
    expect(v7([user([{ type: 'text', text: 'Analyze' }, { type: 'text', text: 'it' }])])).toMatchObject({ tier: 'strong', rule: 'keyword' });
  });

  it('skips empty contents when joining (no double spaces)', () => {
    expect(joinedText([user('a'), user(''), user(null), user('b')])).toBe('a b');
  });

  it('uses system and tool messages too', () => {
    expect(v7([{ role: 'system', content: 'You review security issues.' }, user('hi')]).tier).toBe('strong');
    expect(v7([{ role: 'tool', content: 'profile: performance data', tool_call_id: 't1' }]).tier).toBe('strong');
  });
});

describe('rule engine', () => {
  it('applies rules in order; first match wins; the reason names the rule and evidence', () => {
    const c = compileClassifier('t1', {
      rules: [
        { name: 'many', tier: 'strong', enabled: true, when: [{ moreThanMessages: 1 }] },
        { name: 'kw', tier: 'weak', enabled: true, when: [{ anyKeyword: ['hello'] }] },
      ],
      default: 'weak',
    });
    expect(c([user('hello'), user('x')])).toEqual({ tier: 'strong', version: 't1', rule: 'many', reason: 'many: 2 messages > 1' });
    expect(c([user('hello')])).toEqual({ tier: 'weak', version: 't1', rule: 'kw', reason: 'kw: keyword "hello"' });
  });

  it('matches keywords as literal text, regex characters included, and names the first keyword of the list', () => {
    const c = compileClassifier('t3', { rules: [{ name: 'kw', tier: 'strong', enabled: true, when: [{ anyKeyword: ['a.b', 'C++', '(x|y)', 'tail'] }] }], default: 'weak' });
    expect(c([user('axb')]).rule).toBe('default');
    expect(c([user('x')]).rule).toBe('default');
    expect(c([user('written in c++')]).reason).toBe('kw: keyword "c++"');
    expect(c([user('(x|y) and a.b')]).reason).toBe('kw: keyword "a.b"'); // list order, not position in the text
    expect(c([user('cut the tail')]).reason).toBe('kw: keyword "tail"');
  });

  it('requires every condition of a rule, restricts text to the listed roles, supports regex and bytes', () => {
    const c = compileClassifier('t2', {
      rules: [
        { name: 'user_code', tier: 'strong', enabled: true, roles: ['user'], when: [{ regex: '```' }, { moreThanBytes: 10 }] },
        { name: 'off', tier: 'strong', enabled: false, when: [{ moreThanChars: 0 }] },
      ],
      default: 'weak',
    });
    expect(c([user('```x```')]).rule).toBe('default'); // 7 bytes: second condition fails
    expect(c([user('```const x = 1```')]).rule).toBe('user_code');
    expect(c([{ role: 'system', content: '```const x = 1```' }]).rule).toBe('default'); // role not considered
  });

  it("names every condition that held in the reason; bytes are 'more than', counted in UTF-8; regex flags apply", () => {
    const c = compileClassifier('t4', {
      rules: [
        { name: 'both', tier: 'strong', enabled: true, when: [{ regex: '^sql' }, { moreThanBytes: 6 }] },
        // The text is lower-cased before rules read it: an upper-case pattern matches only with the `i` flag.
        { name: 'select_i', tier: 'strong', enabled: true, when: [{ regex: 'SELECT', flags: 'i' }] },
        { name: 'select', tier: 'strong', enabled: true, when: [{ regex: 'WHERE' }] },
        { name: 'bytes', tier: 'strong', enabled: true, when: [{ moreThanBytes: 6 }] },
      ],
      default: 'weak',
    });
    expect(c([user('sql it')])).toMatchObject({ rule: 'default' }); // 6 bytes: not more than 6
    expect(c([user('sql itx')])).toEqual({ tier: 'strong', version: 't4', rule: 'both', reason: 'both: regex /^sql/, 7 bytes > 6' });
    expect(c([user('Select 1')]).reason).toBe('select_i: regex /SELECT/');
    expect(c([user('where')]).rule).toBe('default');
    // 2 characters, 6 bytes (a Hangul syllable takes 3 in UTF-8); one more ASCII character makes 7.
    expect(c([user('세상')]).rule).toBe('default');
    expect(c([user('세상!')]).reason).toBe('bytes: 7 bytes > 6');
  });

  it('a part of another type is not text, whatever fields it carries', () => {
    const c = compileClassifier('t5', { rules: [{ name: 'kw', tier: 'strong', enabled: true, when: [{ anyKeyword: ['refactor'] }] }], default: 'weak' });
    const odd = [{ type: 'image_url', text: 'refactor', image_url: { url: 'data:,' } }] as unknown as ChatMessage['content'];
    expect(c([user(odd)]).rule).toBe('default');
    expect(c([user([{ type: 'text', text: 'refactor' }])]).rule).toBe('kw');
  });

  it('refuses a near-threshold band it cannot measure', () => {
    const rule = (when: object[]) => ({ rules: [{ name: 'r', tier: 'strong', enabled: true, when }], default: 'weak' });
    expect(() => compileClassifier('b1', { ...rule([{ moreThanChars: 5 }, { moreThanMessages: 2 }]), nearThreshold: [{ rule: 'r', from: 1, to: 3, tier: 'strong' }] } as never)).toThrow(/exactly one numeric condition/);
    expect(() => compileClassifier('b2', { ...rule([{ anyKeyword: ['x'] }]), nearThreshold: [{ rule: 'r', from: 1, to: 3, tier: 'strong' }] } as never)).toThrow(/exactly one numeric condition/);
    expect(() => compileClassifier('b3', { ...rule([{ moreThanChars: 5 }]), nearThreshold: [{ rule: 'other', from: 1, to: 3, tier: 'strong' }] } as never)).toThrow(/names rule other/);
    expect(() => compileClassifier('b4', { ...rule([{ moreThanChars: 5 }, { anyKeyword: ['x'] }]), nearThreshold: [{ rule: 'r', from: 1, to: 3, tier: 'strong' }] } as never)).not.toThrow();
  });

  describe('what a request carries: content part types and declared tools', () => {
    const image = { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } };
    const audio = { type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } };
    const media = compileClassifier('m', {
      rules: [
        { name: 'media', tier: 'strong', enabled: true, when: [{ anyPart: ['input_audio', 'image_url', 'input_image'] }] },
        { name: 'agent', tier: 'strong', enabled: true, when: [{ moreThanTools: 2 }] },
      ],
      default: 'weak',
    });

    it('anyPart holds when any message has a part of a listed type, and names the first listed type present', () => {
      expect(media([user([{ type: 'text', text: 'what is this?' }, image])])).toEqual({ tier: 'strong', version: 'm', rule: 'media', reason: 'media: part "image_url"' });
      // Part order does not decide the reason: list order does, as for keywords.
      expect(media([user([image, audio])]).reason).toBe('media: part "input_audio"');
      // An earlier turn's image counts: the backend receives the whole conversation.
      expect(media([user([image]), { role: 'assistant', content: 'a cat' }, user('and now?')]).rule).toBe('media');
      // Text parts, string content and unlisted types do not.
      expect(media([user([{ type: 'text', text: 'hi' }])]).rule).toBe('default');
      expect(media([user('image_url')]).rule).toBe('default');
      expect(media([user([{ type: 'file', file: { file_id: 'f1' } }])]).rule).toBe('default');
    });

    it('anyPart looks only at the rule’s roles', () => {
      const userOnly = compileClassifier('u', { rules: [{ name: 'media', tier: 'strong', enabled: true, roles: ['user'], when: [{ anyPart: ['image_url'] }] }], default: 'weak' });
      expect(userOnly([{ role: 'system', content: [image] as ChatMessage['content'] }, user('hi')]).rule).toBe('default');
      expect(userOnly([{ role: 'system', content: 'be brief' }, user([image])]).rule).toBe('media');
    });

    it('moreThanTools counts the tools the request declares; none when the caller gives no shape', () => {
      expect(media([user('hi')], { tools: 3 })).toEqual({ tier: 'strong', version: 'm', rule: 'agent', reason: 'agent: 3 tools > 2' });
      expect(media([user('hi')], { tools: 2 }).rule).toBe('default');
      expect(media([user('hi')]).rule).toBe('default');
    });

    it('moreThanTools can carry a near_threshold band', () => {
      const banded = compileClassifier('b', {
        rules: [{ name: 'agent', tier: 'strong', enabled: true, when: [{ moreThanTools: 4 }] }],
        default: 'weak',
        nearThreshold: [{ rule: 'agent', from: 3, to: 5, tier: 'strong' }],
      });
      expect(banded([user('hi')], { tools: 3 })).toMatchObject({ rule: 'near_threshold', reason: 'near_threshold: 3 tools within 3–5 of agent (> 4 tools)' });
      expect(banded([user('hi')], { tools: 6 }).rule).toBe('agent');
      expect(banded([user('hi')], { tools: 2 }).rule).toBe('default');
    });

    it('scope: last reads only the last message of the rule\'s roles: the question, not an agent\'s system prompt', () => {
      const lastQuestion = compileClassifier('q', {
        rules: [
          { name: 'long_question', tier: 'strong', enabled: true, roles: ['user'], scope: 'last', when: [{ moreThanChars: 20 }] },
          { name: 'last_any', tier: 'strong', enabled: true, scope: 'last', when: [{ anyKeyword: ['stack trace'] }] },
          { name: 'media_now', tier: 'strong', enabled: true, roles: ['user'], scope: 'last', when: [{ anyPart: ['image_url'] }] },
        ],
        default: 'weak',
        nearThreshold: [{ rule: 'long_question', from: 18, to: 22, tier: 'strong' }],
      });
      const system: ChatMessage = { role: 'system', content: 'You are a coding agent. '.repeat(400) };
      // A ~10,000-character system prompt and a short last question: weak (v7 sends it strong on length).
      expect(lastQuestion([system, user('a much longer first question than that'), { role: 'assistant', content: 'ok' }, user('thanks')])).toMatchObject({ tier: 'weak', rule: 'default' });
      expect(v7([system, user('thanks')]).rule).toBe('long_prompt');
      expect(lastQuestion([system, user('why does this loop never end?')])).toEqual({ tier: 'strong', version: 'q', rule: 'long_question', reason: 'long_question: 29 chars > 20' });
      // The band measures the same selection.
      expect(lastQuestion([system, user('x'.repeat(300)), user('y'.repeat(19))])).toMatchObject({ rule: 'near_threshold', reason: 'near_threshold: 19 chars within 18–22 of long_question (> 20 chars)' });
      // Without roles, the last message whatever its role (here a tool's result).
      expect(lastQuestion([user('run it'), { role: 'tool', content: 'Stack trace: …', tool_call_id: 't' }]).rule).toBe('last_any');
      expect(lastQuestion([{ role: 'tool', content: 'Stack trace: …', tool_call_id: 't' }, user('run it')]).rule).toBe('default');
      // An image in an earlier turn is not in the last question; one in the last question is.
      expect(lastQuestion([user([image]), { role: 'assistant', content: 'a cat' }, user('ok')]).rule).toBe('default');
      expect(lastQuestion([user('hi'), { role: 'assistant', content: 'hello' }, user([image])]).rule).toBe('media_now');
      // No message of the roles: nothing to read, the rule does not hold.
      expect(lastQuestion([{ role: 'system', content: 'x'.repeat(100) }]).rule).toBe('default');
    });

    it('on real OpenAI request bodies (recorded): images and audio are media, a declared tool is an agent; v7 sends all weak', () => {
      const real = compileClassifier('r', {
        rules: [
          { name: 'media', tier: 'strong', enabled: true, when: [{ anyPart: ['image_url', 'input_audio'] }] },
          { name: 'agent', tier: 'strong', enabled: true, when: [{ moreThanTools: 0 }] },
        ],
        default: 'weak',
      });
      const decide = (name: string) => {
        const llm = parseLlmRequest('chat', readFileSync(join(FIXTURES, `${name}.request.json`)));
        const shape = { tools: declaredTools(llm) };
        return { mine: real(llm.messages, shape).reason, v7: v7(llm.messages, shape).tier };
      };
      expect(decide('chat-image-to-text')).toEqual({ mine: 'media: part "image_url"', v7: 'weak' });
      expect(decide('chat-multimodal')).toEqual({ mine: 'media: part "image_url"', v7: 'weak' });
      expect(decide('chat-audio-to-text')).toEqual({ mine: 'media: part "input_audio"', v7: 'weak' });
      expect(decide('chat-tools')).toEqual({ mine: 'agent: 1 tools > 0', v7: 'weak' });
      expect(decide('chat-parallel-tools')).toEqual({ mine: 'agent: 1 tools > 0', v7: 'weak' });
      expect(decide('chat-basic')).toEqual({ mine: 'default: no rule matched', v7: 'weak' });
    });

    it('v7 is unchanged by either: an image or tools alone stay weak', () => {
      expect(v7([user([image])], { tools: 20 })).toMatchObject({ tier: 'weak', rule: 'default' });
    });
  });

  it('decides as a plain reading of the rules would, for generated rules (roles, scope, text, parts, counts) and conversations', () => {
    // The engine shares each selection's text and part types between rules; the reference recomputes everything
    // for every rule, so a wrong sharing (a key that mixes up two selections) shows as a different decision.
    const ROLES = ['system', 'user', 'assistant', 'tool'] as const;
    const WORDS = ['alpha', 'beta', 'gamma', 'Delta', '설계'];
    const part = fc.oneof(
      fc.constantFrom(...WORDS).map((text) => ({ type: 'text', text })),
      fc.constantFrom('image_url', 'input_audio', 'file').map((type) => ({ type })),
    );
    const message = fc.record({
      role: fc.constantFrom(...ROLES),
      content: fc.oneof(fc.constantFrom(...WORDS, ''), fc.array(part, { maxLength: 3 }), fc.constant(null)),
    });
    const condition = fc.oneof(
      fc.record({ anyKeyword: fc.subarray(WORDS, { minLength: 1 }) }),
      fc.record({ moreThanChars: fc.integer({ min: 0, max: 12 }) }),
      fc.record({ anyPart: fc.subarray(['image_url', 'input_audio', 'file', 'text'], { minLength: 1 }) }),
      fc.record({ moreThanMessages: fc.integer({ min: 0, max: 4 }) }),
      fc.record({ moreThanTools: fc.integer({ min: 0, max: 3 }) }),
    );
    const rule = fc.record({
      roles: fc.option(fc.subarray([...ROLES], { minLength: 1 }), { nil: undefined }),
      scope: fc.constantFrom(undefined, 'all' as const, 'last' as const),
      when: fc.array(condition, { minLength: 1, maxLength: 2 }),
    });
    const text = (m: { content: unknown }) =>
      typeof m.content === 'string' ? m.content : Array.isArray(m.content) ? m.content.filter((p) => p.type === 'text').map((p) => p.text).join(' ') : '';
    type GenRule = { roles?: string[]; scope?: 'all' | 'last'; when: Array<Record<string, unknown>> };
    function reference(rules: GenRule[], messages: Array<{ role: string; content: unknown }>, tools: number): string {
      for (const [i, r] of rules.entries()) {
        let selected = r.roles ? messages.filter((m) => r.roles?.includes(m.role)) : messages;
        if (r.scope === 'last') selected = selected.slice(-1);
        const joined = selected.map(text).filter((t) => t !== '').join(' ').toLowerCase();
        const types = new Set(selected.flatMap((m) => (Array.isArray(m.content) ? m.content.map((p: { type: string }) => p.type) : [])));
        const holds = (c: Record<string, unknown>) =>
          'anyKeyword' in c ? (c.anyKeyword as string[]).some((k) => joined.includes(k.toLowerCase()))
          : 'moreThanChars' in c ? [...joined].length > (c.moreThanChars as number)
          : 'anyPart' in c ? (c.anyPart as string[]).some((t) => types.has(t))
          : 'moreThanMessages' in c ? messages.length > (c.moreThanMessages as number)
          : tools > (c.moreThanTools as number);
        if (r.when.every(holds)) return `r${i}`;
      }
      return 'default';
    }
    fc.assert(
      fc.property(fc.array(rule, { minLength: 1, maxLength: 4 }), fc.array(message, { minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 4 }), (rules, messages, tools) => {
        const c = compileClassifier('gen', { rules: rules.map((r, i) => ({ name: `r${i}`, tier: 'strong', enabled: true, ...r })) as never, default: 'weak' });
        expect(c(messages as ChatMessage[], { tools }).rule).toBe(reference(rules as GenRule[], messages, tools));
      }),
      { numRuns: fuzzRuns(3000) },
    );
  });

  it('measures code points correctly on lone surrogates', () => {
    expect(codePointLength('a\ud83d')).toBe(2);
    expect(codePointLength('😀😀')).toBe(2);
    expect(codePointLength('\ud800\ud800\udc00')).toBe(2); // a lone high surrogate, then a pair
    expect(codePointLength('\udc00\ud800')).toBe(2); // a low surrogate before a high one is no pair
    expect(codePointLength('😀😀'.toLowerCase() + 'x'.repeat(1000))).toBe(1002); // the global regex starts afresh
  });

  it('counts code points as the string iterator does, for any UTF-16 units (one-byte and two-byte strings)', () => {
    const units = fc.oneof(fc.integer({ min: 0, max: 0xff }), fc.integer({ min: 0xd7f0, max: 0xe010 }), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(
      fc.property(fc.array(units, { maxLength: 64, size: 'max' }), (us) => {
        const s = String.fromCharCode(...us);
        expect(codePointLength(s)).toBe([...s].length);
      }),
      { numRuns: fuzzRuns(2000) },
    );
  });
});
