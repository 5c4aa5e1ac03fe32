// The semantic cache's guards (src/cache/guards.ts), feature by feature: pairs of questions an embedder may find
// close that must not share an answer, and rephrasings that may. The integration suite
// (test/integration/semantic-cache.test.ts) shows the guards at work through a lookup; this one holds each rule.
import { describe, expect, it } from 'vitest';
import { contentWords, guardMismatch, questionFeatures } from '../../src/cache/guards.js';

/** Which guard refuses to let `b` be answered with `a`'s answer (undefined: none does). */
const mismatch = (a: string, b: string, lexical = true) => guardMismatch(questionFeatures(a), questionFeatures(b), lexical);

describe('semantic cache guards', () => {
  it.each([
    // Numbers, as a multiset, and counts written as words.
    ['What is 2+2?', 'What is 2+3?', 'numbers'],
    ['What is 2+2?', 'What is 2+2+2?', 'numbers'],
    ['Convert 1.5 miles', 'Convert 1,5 miles', 'numbers'],
    ['Name two rivers', 'Name three rivers', 'numbers'],
    ['Name a river once', 'Name a river twice', 'numbers'],
    // Code spans and fences.
    ['What does `ls -a` print?', 'What does `ls -l` print?', 'code'],
    ['Fix this: ```x = 1```', 'Fix this: ```x = 2```', 'code'],
    // URLs, whatever else they hold.
    ['Summarise https://example.com/a', 'Summarise https://example.com/b', 'urls'],
    // Quoted strings: straight, typographic, guillemets, CJK brackets, single quotes around words.
    ['Translate "good morning"', 'Translate "good night"', 'quotes'],
    ['Translate “good morning”', 'Translate “good night”', 'quotes'],
    ['Translate «bonjour»', 'Translate «bonsoir»', 'quotes'],
    ['번역 「안녕」', '번역 「잘가」', 'quotes'],
    ['번역 『안녕』', '번역 『잘가』', 'quotes'],
    ["Translate 'cat'", "Translate 'dog'", 'quotes'],
    // A name inside a sentence must be among the other question's words.
    ['What is the capital of France?', 'What is the capital of Germany?', 'entities'],
    // Negation, in English and in Korean.
    ['Is the sky blue?', 'Is the sky not blue?', 'negated'],
    ["Does it rain?", "Doesn't it rain?", 'negated'],
    ['Can I swim here?', 'Can I never swim here?', 'negated'],
    ['비가 와요?', '비가 안 와요?', 'negated'],
    ['비가 와요?', '비가 오지 않아요?', 'negated'],
    ['사과가 있어요?', '사과가 없어요?', 'negated'],
    // With the lexical guard, a content word added or changed.
    ['Play a flute', 'Play a large flute', 'words'],
    ['What is the capital of France?', 'What is the former capital of France?', 'words'],
  ])('%j and %j differ by %s', (a, b, guard) => {
    expect(mismatch(a, b)).toBe(guard);
    expect(mismatch(b, a)).toBe(guard);
  });

  it.each([
    // Case, word order, function words, punctuation.
    ['What is the capital of France?', 'the capital of france is what'],
    ['What is the capital of France?', 'capital of France?'],
    // Plurals of words longer than three letters; possessives.
    ['List the flutes', 'List the flute'],
    ["France's capital", 'capital of France'],
    // Number words in any case.
    ['Two rivers', 'two rivers'],
    // URLs in any case, without the punctuation after them in prose.
    ['Read https://Example.com/a.', 'read https://example.com/a'],
    // Quotes in any case, with the space inside them trimmed; "don't" and "France's" are not quotes.
    ['Translate " Good Morning "', 'translate "good morning"'],
    // A name written lower-case is still the name.
    ['Tell me about Paris', 'tell me about paris'],
    // "I" is never a name; a word at a sentence's start is not a name.
    ['Can I go? Paris is near.', 'can i go? paris is near.'],
    // Korean particles.
    ['설계를 설명해', '설계 설명해'],
    // Code, URLs and quotes as sets, numbers as a multiset: their order does not matter.
    ['Diff `a` and `b`', 'Diff `b` and `a`'],
    ['Add 2 to 3', 'Add 3 to 2'],
    // A code span is read trimmed, the same in backticks or a fence; taking it out leaves a space between words.
    ['Fix ```x = 1```', 'Fix ``` x = 1 ```'],
    ['What is `ls`', 'What is ```ls```'],
    ['Compare foo`x`bar', 'Compare foo bar `x`'],
    // A hyphenated name is its words: "Jean-Luc" is among the words of "jean-luc".
    ['Ask Jean-Luc about it', 'ask jean-luc about it'],
  ])('%j may be answered as %j', (a, b) => {
    expect(mismatch(a, b)).toBeUndefined();
    expect(mismatch(b, a)).toBeUndefined();
  });

  it('a thousands separator is not another number; the lexical guard, which reads digits as words, still tells them apart', () => {
    expect(questionFeatures('Is 1,000 a lot?').numbers).toEqual(['1000']);
    expect(mismatch('Is 1,000 a lot?', 'Is 1000 a lot?', false)).toBeUndefined();
    // A miss, never a wrong answer: the conservative side.
    expect(mismatch('Is 1,000 a lot?', 'Is 1000 a lot?')).toBe('words');
  });

  it('without the lexical guard, other content words pass; every other guard still holds', () => {
    expect(mismatch('Play a flute', 'Play a large flute', false)).toBeUndefined();
    expect(mismatch('What is 2+2?', 'What is 2+3?', false)).toBe('numbers');
    expect(mismatch('capital of France', 'capital of Germany', false)).toBe('entities');
  });

  it('the first guard that differs is named, in the order numbers, code, URLs, quotes, entities, negation, words', () => {
    const to = 'Is `y` 3 at https://b.example "r" near Rome, or, lime?';
    // Start from a question that differs in every feature, and make one more equal each step: the earliest
    // difference left is the one named.
    const steps: Array<[string, string]> = [
      ['2', '3'],
      ['`x`', '`y`'],
      ['a.example', 'b.example'],
      ['"q"', '"r"'],
      ['Paris', 'Rome'],
      [' not,', ''],
      ['lemon', 'lime'],
    ];
    let from = 'Is `x` 2 at https://a.example "q" near Paris, or not, lemon?';
    const named: Array<string | undefined> = [];
    for (const [was, is] of steps) {
      named.push(mismatch(from, to));
      from = from.replace(was, is);
    }
    named.push(mismatch(from, to));
    expect(named).toEqual(['numbers', 'code', 'urls', 'quotes', 'entities', 'negated', 'words', undefined]);
  });

  it('an entity must be among the other side\'s words, both ways', () => {
    // "Paris" in b is among a's words (written lower-case there), and a names no entity: no mismatch.
    expect(mismatch('what about paris', 'What about Paris')).toBeUndefined();
    // Each side names one the other lacks.
    expect(mismatch('Trains near Paris', 'trains near rome', false)).toBe('entities');
    expect(mismatch('trains near rome', 'Trains near Paris', false)).toBe('entities');
  });

  it('code, URLs and quotes are taken out before numbers, names and words are read', () => {
    // The 2 inside the code, the URL's path and the quote are not numbers of the question.
    const f = questionFeatures('Run `sleep 2` then open https://x.example/3 and say "4 Paris"');
    expect(f.numbers).toEqual([]);
    expect(f.code).toEqual(['sleep 2']);
    expect(f.urls).toEqual(['https://x.example/3']);
    expect(f.quotes).toEqual(['4 paris']);
    expect(f.entities).toEqual([]);
  });

  it('keeps no text of the question in its words: short hashes, and one key for the whole set', () => {
    const f = questionFeatures('Tell me about quokkas on Rottnest');
    expect(f.words.every((w) => /^[0-9a-f]{12}$/.test(w))).toBe(true);
    expect(f.entities.every((w) => /^[0-9a-f]{12}$/.test(w))).toBe(true);
    expect(f.wordsKey).toMatch(/^[0-9a-f]{24}$/);
    expect(JSON.stringify(f)).not.toMatch(/quokka|rottnest/i);
    // Features of two questions with the same content words share the key; another word changes it.
    expect(questionFeatures('quokkas on Rottnest, tell me').wordsKey).toBe(f.wordsKey);
    expect(questionFeatures('Tell me about quokkas near Rottnest').wordsKey).not.toBe(f.wordsKey);
  });

  it('content words: lower-cased, sorted, distinct, function words and possessives off, plurals off only past three letters', () => {
    expect(contentWords('The Cats and the cat’s toys, a bus and its glass')).toEqual(['bus', 'cat', 'glass', 'toy']);
    expect(contentWords("It's France's capital")).toEqual(['capital', 'france']);
    expect(contentWords('gas bus yes')).toEqual(['bus', 'gas', 'yes']);
    expect(contentWords('설계를 분석해서는')).toEqual(['분석', '설계']);
  });
});
