// The team's production rules, reproduced exactly (issue #2): keywords, then > 500 code points, then > 5
// messages, else weak. The > 600 UTF-8 bytes rule exists but is off in v7.
import type { VersionConfig } from './rules-schema.js';

export const V7_KEYWORDS = [
  '리팩터', '아키텍처', '설계', '분석', '최적화', '디버그', '마이그레이션',
  'refactor', 'architect', 'design', 'analyze', 'optimize', 'debug', 'migration',
  'complex', 'performance', 'security',
] as const;

export const V7: VersionConfig = {
  description: 'Production rules: strong keywords, long prompts, long conversations.',
  rules: [
    { name: 'keyword', tier: 'strong', enabled: true, when: [{ anyKeyword: [...V7_KEYWORDS] }] },
    { name: 'long_prompt', tier: 'strong', enabled: true, when: [{ moreThanChars: 500 }] },
    { name: 'long_prompt_bytes', tier: 'strong', enabled: false, when: [{ moreThanBytes: 600 }] },
    { name: 'many_messages', tier: 'strong', enabled: true, when: [{ moreThanMessages: 5 }] },
  ],
  default: 'weak',
};
