// Guards beyond the similarity threshold. Two questions can be close in embedding space and still want different
// answers: "What is 2+2?" and "What is 2+3?", "capital of France" and "capital of Germany", a question and its
// negation. The semantic cache answers only when these features of the new question equal the cached one's:
// numbers, code spans, URLs, quoted strings, named entities (capitalised words inside a sentence), and whether
// the question is negated. With the lexical guard (on by default) the content words must be the same too:
// function words, word order, case, plurals and Korean particles may differ, an added or changed word may not
// ("a large flute" is not "a flute"). Only these features are kept with an entry, never the question's text:
// words and entities are kept as short hashes (which hide the text from a casual reader of the store, though a
// dictionary could recover common words).
import { createHash } from 'node:crypto';
import { koreanStem } from '../eval/keywords.js';
import { withoutTrailing } from '../trailing-run.js';

export interface QuestionFeatures {
  numbers: string[];
  code: string[];
  urls: string[];
  quotes: string[];
  /** Hashes of capitalised words inside a sentence: each must be among the other question's words. */
  entities: string[];
  negated: boolean;
  /** Hashes of the content words, sorted. */
  words: string[];
  /** One hash of the whole content-word set: the lexical guard, and the bucket that goes with it. */
  wordsKey: string;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
/** Punctuation after a URL in prose ("see https://x.y/z."), not part of it. */
const URL_END = /^[.,;:!?)\]]$/;
/** What is taken off both ends of a word before it is read as a name ("(Paris)," → "Paris"). */
const NOT_A_LETTER = /^\P{L}$/u;
const FENCE_RE = /```[\s\S]*?```/g;
const TICK_RE = /`[^`\n]+`/g;
// Straight and typographic double quotes, guillemets, CJK brackets; single quotes only around words
// (so that "don't" and "France's" are not quotes).
const QUOTE_RE = /"([^"\n]{1,200})"|“([^”\n]{1,200})”|«([^»\n]{1,200})»|「([^」\n]{1,200})」|『([^』\n]{1,200})』|(?<![\p{L}\p{N}])'([^'\n]{1,200})'(?![\p{L}\p{N}])/gu;
const NUMBER_RE = /\d+(?:[.,]\d+)*/g;
// Counts written as words are numbers too: "two men" is not "three men".
const NUMBER_WORD_RE = /\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion|trillion|first|second|third|fourth|fifth|half|dozen|once|twice|both|several|few|many)\b/gi;
// Function words the lexical guard ignores: articles, auxiliaries, pronouns, prepositions, conjunctions.
const FUNCTION_WORDS = new Set(
  (
    "a an the this that these those is are was were be been being am has have had having do does did done will would shall should can could may might must " +
    "of to in on at by for with from into onto about as and or but if then than so just also too there here it its it's i me my mine you your yours he him his " +
    "she her hers they them their theirs we us our ours who whom whose which what when where why how please"
  ).split(' '),
);
const NEGATION_EN = /\b(?:not|no|never|none|nobody|nothing|neither|nor|without|cannot)\b|n't\b/i;
// Korean negation: 안/못 before a verb, -지 않다/없다/말다, 아니다.
const NEGATION_KO = /(?:^|\s)(?:안|못)\s|않|없|아니|말고|마세요|말아/u;

function unique(xs: Iterable<string>): string[] {
  return [...new Set(xs)].sort();
}

export function questionFeatures(text: string): QuestionFeatures {
  let rest = text;
  const take = (re: RegExp, map: (m: RegExpMatchArray) => string): string[] => {
    const found: string[] = [];
    rest = rest.replace(re, (...args) => {
      found.push(map(args.slice(0, -2) as unknown as RegExpMatchArray));
      return ' ';
    });
    return found;
  };
  const urls = take(URL_RE, (m) => withoutTrailing(m[0], URL_END).toLowerCase());
  const code = [...take(FENCE_RE, (m) => m[0].slice(3, -3).trim()), ...take(TICK_RE, (m) => m[0].slice(1, -1).trim())];
  const quotes = take(QUOTE_RE, (m) => (m.slice(1).find((g) => g !== undefined) ?? '').trim().toLowerCase());
  const numbers = [...(rest.match(NUMBER_RE) ?? []).map((n) => n.replace(/,(?=\d{3}\b)/g, '')), ...(rest.match(NUMBER_WORD_RE) ?? []).map((w) => w.toLowerCase())];
  const words = unique(contentWords(rest).map(wordHash));
  return {
    // A multiset: "2+2" and "2+2+2" differ.
    numbers: numbers.sort(),
    code: unique(code),
    urls: unique(urls),
    quotes: unique(quotes),
    entities: unique(entitiesOf(rest).map(wordHash)),
    negated: NEGATION_EN.test(rest) || NEGATION_KO.test(rest),
    words,
    wordsKey: createHash('sha256').update('tiergate-words-v1').update(words.join(' ')).digest('hex').slice(0, 24),
  };
}

function wordHash(w: string): string {
  return createHash('sha256').update('tiergate-word-v1').update(w).digest('hex').slice(0, 12);
}

/** The distinct content words, sorted: lower-cased, function words dropped, plurals and Korean particles off. */
export function contentWords(text: string): string[] {
  const out = new Set<string>();
  for (const raw of text.toLowerCase().match(/[\p{L}\p{N}]+(?:['’][\p{L}]+)?/gu) ?? []) {
    const w = raw.replace(/['’]s$/, '');
    if (FUNCTION_WORDS.has(w)) continue;
    if (/\p{Script=Hangul}/u.test(w)) out.add(koreanStem(w));
    else out.add(w.length > 3 ? w.replace(/(?<=[^s])s$/, '') : w);
  }
  return [...out].sort();
}

/** Capitalised Latin words that do not start a sentence, as content words ("France's" → "france"). */
function entitiesOf(text: string): string[] {
  const out: string[] = [];
  for (const sentence of text.split(/(?<=[.!?])\s+|\n+/)) {
    const words = sentence.trim().split(/\s+/);
    for (let i = 1; i < words.length; i++) {
      const w = withoutTrailing((words[i] as string).replace(/^\P{L}+/u, ''), NOT_A_LETTER).replace(/['’]s$/, '');
      if (w.length > 1 && /^\p{Lu}/u.test(w) && w !== 'I') out.push(...contentWords(w));
    }
  }
  return out;
}

const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The features that must be equal for a cached answer to serve a new question; undefined when all are. */
export function guardMismatch(a: QuestionFeatures, b: QuestionFeatures, lexical = true): keyof QuestionFeatures | undefined {
  if (!same(a.numbers, b.numbers)) return 'numbers';
  if (!same(a.code, b.code)) return 'code';
  if (!same(a.urls, b.urls)) return 'urls';
  if (!same(a.quotes, b.quotes)) return 'quotes';
  // An entity written lower-case is still the same entity: each side's entities must be among the other's words.
  const wa = new Set(a.words);
  const wb = new Set(b.words);
  if (!a.entities.every((e) => wb.has(e)) || !b.entities.every((e) => wa.has(e))) return 'entities';
  if (a.negated !== b.negated) return 'negated';
  if (lexical && a.wordsKey !== b.wordsKey) return 'words';
  return undefined;
}
