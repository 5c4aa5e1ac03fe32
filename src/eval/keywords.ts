// `tiergate keywords`: words and Korean word stems that are frequent in false-"weak" rows (labelled strong,
// routed weak) and not yet keywords: candidates for the next classifier version. Each candidate also shows how
// many correctly-weak rows contain it, because adding it would send those to the strong tier.
import { createRequire } from 'node:module';
import type { Classifier } from '../classify/engine.js';
import { joinedText } from '../classify/prompt-text.js';
import { noteSkipped, preview, skippedLines, type RowResult, type SkippedRows } from './labelled-rows.js';
import { withoutTrailing } from '../trailing-run.js';

export interface KeywordCandidate {
  term: string;
  /** False-weak rows containing the term (each row counted once). */
  rows: number;
  /** Correctly-weak rows containing it: what the term would misroute to strong if added. */
  weak_rows: number;
  example: string;
}

export interface KeywordReport extends SkippedRows {
  false_weak_rows: number;
  weak_rows: number;
  candidates: KeywordCandidate[];
}

export interface KeywordOptions {
  /** The version whose false-weak rows are mined; absent with `allRows`. */
  classify?: Classifier;
  /** Treat every row as a false-weak example (a pre-filtered export with no labels). */
  allRows: boolean;
  strongTier: string;
  weakTier: string;
  /** The version's current keywords: a term containing one already matches, so it is no candidate. */
  existing: readonly string[];
  top: number;
  minRows: number;
}

// stopwords-iso: the broadest maintained lists for both languages (its English one also drops request filler
// such as "please", "using", "want"). The package is one JSON file, loaded through require.
const STOPWORDS = createRequire(import.meta.url)('stopwords-iso') as Record<string, string[]>;
const STOP = new Set<string>([...(STOPWORDS.en ?? []), ...(STOPWORDS.ko ?? [])].map((w) => w.toLowerCase()));

// Korean attaches particles and endings to the stem ("설계를", "최적화해줘"). Stripping the common ones, longest
// first, gives stems that work as substring keywords (the engine matches substrings, so "성능" also catches
// "성능이"). Particles that alternate with the stem's last sound (이/가, 은/는, 을/를, 과/와, 으로/로, …) are
// stripped only after the syllable they attach to, so the 이 of "게이트웨이" stays. Nothing is stripped that
// would leave less than two syllables: "속도" keeps its "도".
type After = 'closed' | 'open' | 'any';
const KO_SUFFIXES: Array<[string, After]> = (
  [
    ...['해주시겠어요', '해주십시오', '해주세요', '했습니다', '하겠습니다', '해줄래', '해줘요', '합니다', '돼요', '해요', '하세요', '하려면'],
    ...['해줘', '해서', '하여', '하면', '하는', '하고', '하기', '했다', '하다', '되는', '되어', '된다', '적으로', '적인', '에서부터', '에게서'],
    ...['한테서', '에서는', '에서도', '에게는', '까지', '부터', '에서', '에게', '한테', '처럼', '보다', '에는', '에도', '할', '한', '해', '된', '돼'],
    ...['들', '에', '의', '도', '만', '요'],
  ].map((x): [string, After] => [x, 'any'])
)
  .concat(['으로부터', '으로서', '으로써', '이라고', '으로', '이나', '이랑', '이', '은', '을', '과'].map((x): [string, After] => [x, 'closed']))
  .concat(['로부터', '로서', '로써', '라고', '로', '나', '랑', '가', '는', '를', '와'].map((x): [string, After] => [x, 'open']))
  .sort((a, b) => b[0].length - a[0].length);

/** Whether a Hangul syllable ends in a consonant (has a final jamo, 받침). */
function closedSyllable(ch: string): boolean {
  const c = ch.charCodeAt(0) - 0xac00;
  return c >= 0 && c < 11172 && c % 28 !== 0;
}

export function koreanStem(word: string): string {
  let w = word;
  // Two passes: a plural or "하다" ending and then a particle ("설계들을", "분석해서는").
  for (let pass = 0; pass < 2; pass++) {
    const hit = KO_SUFFIXES.find(([x, after]) => {
      if (!w.endsWith(x) || w.length - x.length < 2) return false;
      if (after === 'any') return true;
      return closedSyllable(w[w.length - x.length - 1] as string) === (after === 'closed');
    });
    if (!hit) break;
    w = w.slice(0, -hit[0].length);
  }
  return w;
}

/** A hyphen or underscore left at a term's end ("pre-", "data_"), taken off. */
const JOINER = /^[-_]$/;

/** The distinct candidate terms of a text: Latin words of 3+ letters and Hangul stems of 2+ syllables. */
export function termsOf(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.toLowerCase().matchAll(/\p{Script=Latin}[\p{Script=Latin}\p{N}_-]{2,}|\p{Script=Hangul}{2,}/gu)) {
    const raw = m[0];
    const term = /\p{Script=Hangul}/u.test(raw) ? koreanStem(raw) : withoutTrailing(raw, JOINER);
    if (term.length < 2 || STOP.has(term) || STOP.has(raw)) continue;
    out.add(term);
  }
  return out;
}

export async function keywordCandidates(rows: AsyncIterable<RowResult>, o: KeywordOptions): Promise<KeywordReport> {
  const existing = o.existing.map((k) => k.toLowerCase());
  const counts = new Map<string, { rows: number; weak: number; example: string }>();
  let falseWeak = 0;
  let weak = 0;
  const skipped: SkippedRows = { skipped: 0, skipped_examples: [] };
  for await (const r of rows) {
    if (!r.ok) {
      noteSkipped(skipped, r.bad);
      continue;
    }
    const { messages, tools, label } = r.row;
    let kind: 'false_weak' | 'weak' | undefined;
    if (o.allRows) kind = 'false_weak';
    else if (o.classify && o.classify(messages, { tools }).tier === o.weakTier) kind = label === o.strongTier ? 'false_weak' : label === o.weakTier ? 'weak' : undefined;
    if (!kind) continue;
    if (kind === 'false_weak') falseWeak++;
    else weak++;
    const text = joinedText(messages);
    for (const term of termsOf(text)) {
      if (existing.some((k) => term.includes(k))) continue;
      let c = counts.get(term);
      if (kind === 'weak') {
        // Only terms already seen in a false-weak row can become candidates; others need no weak count.
        if (c) c.weak++;
        else counts.set(term, { rows: 0, weak: 1, example: '' });
        continue;
      }
      if (!c) counts.set(term, (c = { rows: 0, weak: 0, example: '' }));
      c.rows++;
      if (c.example === '') c.example = preview(messages);
    }
  }
  const candidates = [...counts.entries()]
    .filter(([, c]) => c.rows >= o.minRows)
    .map(([term, c]) => ({ term, rows: c.rows, weak_rows: c.weak, example: c.example }))
    .sort((a, b) => b.rows - a.rows || a.weak_rows - b.weak_rows || a.term.localeCompare(b.term))
    .slice(0, o.top);
  return { false_weak_rows: falseWeak, weak_rows: weak, ...skipped, candidates };
}

export function formatKeywords(r: KeywordReport, source: string): string {
  const out = [`keyword candidates from ${source}: ${r.false_weak_rows} false-weak rows, ${r.weak_rows} correctly-weak rows${r.skipped ? `, ${r.skipped} unreadable rows skipped` : ''}`, ...skippedLines(r)];
  if (r.candidates.length === 0) {
    out.push('  no candidates (none reached --min-rows)');
    return `${out.join('\n')}\n`;
  }
  const tw = Math.max(4, ...r.candidates.map((c) => displayWidth(c.term) + 2));
  const pad = (t: string) => t + ' '.repeat(tw - displayWidth(t));
  out.push(`  ${pad('term')}${'false-weak rows'.padStart(16)}${'weak rows'.padStart(11)}   example`);
  for (const c of r.candidates) {
    out.push(`  ${pad(c.term)}${String(c.rows).padStart(16)}${String(c.weak_rows).padStart(11)}   ${JSON.stringify(c.example)}`);
  }
  return `${out.join('\n')}\n`;
}

/** Terminal columns: Hangul and CJK characters take two, so Korean terms line up with English ones. */
function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) w += /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\uff00-\uff60]/.test(ch) ? 2 : 1;
  return w;
}
