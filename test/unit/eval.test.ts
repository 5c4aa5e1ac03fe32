// `tiergate eval` and `tiergate keywords` over small labelled files whose metrics are worked out by hand.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { compileClassifier } from '../../src/classify/engine.js';
import type { VersionConfig } from '../../src/classify/rules-schema.js';
import { V7, V7_KEYWORDS } from '../../src/classify/v7.js';
import { DEFAULT_SLO, evaluate, formatEval, versionReport } from '../../src/eval/evaluate.js';
import { formatKeywords, keywordCandidates, koreanStem, termsOf } from '../../src/eval/keywords.js';
import { formatOf, preview, readLabelledRows, toRow } from '../../src/eval/labelled-rows.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/eval/${name}`, import.meta.url));
// A deliberately different candidate: one keyword, nothing else.
const V8: VersionConfig = { rules: [{ name: 'keyword', tier: 'strong', when: [{ anyKeyword: ['python'] }] }], default: 'weak' };
const versions = [
  { name: 'v7', classify: compileClassifier('v7', V7) },
  { name: 'v8', classify: compileClassifier('v8', V8) },
];
const run = (file: string, listDisagreements = 20) =>
  evaluate(readLabelledRows(file), { file, versions, tiers: ['weak', 'strong'], strongTier: 'strong', weakTier: 'weak', slo: DEFAULT_SLO, listDisagreements });

describe('tiergate eval metrics (labelled.jsonl, worked by hand)', () => {
  // Truth strong: r1 r2 r3 r9; truth weak: r4–r8 r10.
  // v7 routes r1 (refactor) r3 (600 chars) r9 (분석) strong and r2 weak → TP 3, FN 1;
  //    it routes r6 (design) r8 (7 messages) strong → FP 2, TN 4.
  // v8 (only "python") routes r2 strong → TP 1, FN 3; r7 strong → FP 1, TN 5.
  it('per version: precision, recall, F1, misroute rate, weak-tier share, confusion matrix', async () => {
    const r = await run(fixture('labelled.jsonl'));
    const [v7, v8] = r.versions;
    expect(v7).toMatchObject({ version: 'v7', rows: 10, strong_precision: 3 / 5, strong_recall: 3 / 4, false_weak: 1, false_strong: 2, misroute_rate: 0.3, weak_tier_share: 0.5 });
    expect(v7?.f1).toBeCloseTo(2 / 3, 12);
    expect(v7?.confusion).toEqual({ strong: { weak: 1, strong: 3 }, weak: { weak: 4, strong: 2 } });
    expect(v7?.by_rule).toEqual({ default: 5, keyword: 3, long_prompt: 1, many_messages: 1 });
    expect(v8).toMatchObject({ version: 'v8', rows: 10, strong_precision: 0.5, strong_recall: 0.25, false_weak: 3, false_strong: 1, misroute_rate: 0.4, weak_tier_share: 0.8 });
    expect(v8?.f1).toBeCloseTo(1 / 3, 12);
    // Neither meets misroute ≤ 5%; v7's weak share 50% and v8's 80% both miss 60–70%.
    expect(v7?.slo).toEqual({ misroute: false, weak_share: false });
    expect(v8?.slo).toEqual({ misroute: false, weak_share: false });
  });

  it('counts unreadable, unlabelled and unknown-label rows apart, naming the unreadable lines', async () => {
    const r = await run(fixture('labelled.jsonl'));
    expect(r).toMatchObject({ rows: 10, skipped: 2, unlabelled: 1, unknown_label: 1 });
    expect(r.skipped_examples.map((b) => b.line)).toEqual([11, 14]);
    expect(r.skipped_examples[0]?.problem).toBe('not valid JSON');
    expect(r.skipped_examples[1]?.problem).toMatch(/^"messages" is not an array of chat messages/);
  });

  it('lists the rows where versions disagree, with each decision and its reason', async () => {
    const r = await run(fixture('labelled.jsonl'));
    // r1 r2 r3 r6 r7 r8 r9 disagree; the unlabelled "python" row does too (v7 weak, v8 strong); r4 r5 r10 agree.
    expect(r.disagreements.rows).toBe(8);
    expect(r.disagreements.listed.map((d) => d.id)).toEqual(['r1', 'r2', 'r3', 'r6', 'r7', 'r8', 'r9', 'u1']);
    expect(r.disagreements.listed[1]).toEqual({
      line: 2,
      id: 'r2',
      label: 'strong',
      decisions: [
        { version: 'v7', tier: 'weak', rule: 'default', reason: 'default: no rule matched' },
        { version: 'v8', tier: 'strong', rule: 'keyword', reason: 'keyword: keyword "python"' },
      ],
      prompt: 'Write a python script that scrapes prices',
    });
    const limited = await run(fixture('labelled.jsonl'), 2);
    expect(limited.disagreements).toMatchObject({ rows: 8, listed: [{ id: 'r1' }, { id: 'r2' }] });
    const text = formatEval(limited);
    expect(text).toContain('disagreements: 8 rows (first 2)');
    expect(text).toMatch(/misroute rate\s+30\.0%\s+40\.0%/);
  });

  it('the same rows as CSV (a quoted newline, a messages column holding JSON) give the same figures', async () => {
    const csv = await run(fixture('labelled.csv'));
    const jsonl = await run(fixture('labelled.jsonl'));
    expect(csv.rows).toBe(10);
    expect(csv.versions.map(({ version, confusion }) => ({ version, confusion }))).toEqual(jsonl.versions.map(({ version, confusion }) => ({ version, confusion })));
  });

  it('a byte-order mark before the first row (a Windows editor, a spreadsheet export) is no part of it, in either format', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tiergate-eval-bom-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const jsonl = await run(fixture('labelled.jsonl'));
    for (const name of ['labelled.jsonl', 'labelled.csv']) {
      const file = join(dir, name);
      await writeFile(file, `\uFEFF${await readFile(fixture(name), 'utf8')}`);
      const [r, plain] = [await run(file), await run(fixture(name))];
      // The fixtures' own unreadable rows (two in the JSON Lines file) stay the only ones.
      expect([name, r.rows, r.skipped, r.skipped_examples]).toEqual([name, 10, plain.skipped, plain.skipped_examples]);
      // And the first column keeps its name: the rows keep their ids (r1, r2, …, not their record numbers).
      const ids = async (f: string) => {
        const out: string[] = [];
        for await (const row of readLabelledRows(f)) if (row.ok) out.push(row.row.id);
        return out;
      };
      expect(await ids(file)).toEqual(await ids(fixture(name)));
      expect((await ids(file))[0]).toBe('r1');
      expect(r.versions.map((v) => v.confusion)).toEqual(jsonl.versions.map((v) => v.confusion));
    }
  });

  it('a gzip-compressed file (an export of a week\'s traffic) is read as the plain one, named .gz or not', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tiergate-eval-gz-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    for (const name of ['labelled.jsonl', 'labelled.csv']) {
      const plain = await run(fixture(name));
      const packed = gzipSync(await readFile(fixture(name)));
      // `.gz` after the format's own extension, and a compressed file that kept its plain name.
      for (const file of [join(dir, `${name}.gz`), join(dir, `packed-${name}`)]) {
        await writeFile(file, packed);
        const r = await run(file);
        expect([file, r.rows, r.skipped, r.skipped_examples]).toEqual([file, 10, plain.skipped, plain.skipped_examples]);
        expect(r.versions).toEqual(plain.versions);
      }
    }
  });

  it('a file that cannot be read to its end (a compressed one cut short) ends the rows with an error naming it, in either format', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tiergate-eval-cut-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    for (const name of ['labelled.jsonl', 'labelled.csv']) {
      const packed = gzipSync(await readFile(fixture(name)));
      const file = join(dir, `${name}.gz`);
      await writeFile(file, packed.subarray(0, packed.length - 12));
      // Piped into the CSV parser, the read error was an unhandled 'error' event: a crash with a stack trace.
      await expect(run(file)).rejects.toThrow(`${file}: unexpected end of file`);
    }
  });

  it('a row\'s "tools" (JSON Lines array, or JSON in a CSV column) reach rules on tool counts; anything else is refused', async () => {
    const agent = compileClassifier('agent', { rules: [{ name: 'agent', tier: 'strong', when: [{ moreThanTools: 1 }] }], default: 'weak' });
    const dir = await mkdtemp(join(tmpdir(), 'tiergate-eval-tools-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const tool = { type: 'function', function: { name: 'f' } };
    const jsonl = join(dir, 'tools.jsonl');
    await writeFile(jsonl, [{ prompt: 'hi', tools: [tool, tool], tier: 'strong' }, { prompt: 'hi', tools: [tool], tier: 'weak' }, { prompt: 'hi', tier: 'weak' }, { prompt: 'hi', tools: { a: 1 }, tier: 'weak' }].map((r) => JSON.stringify(r)).join('\n'));
    const csv = join(dir, 'tools.csv');
    await writeFile(csv, `prompt,tools,tier\nhi,"${JSON.stringify([tool, tool]).replaceAll('"', '""')}",strong\nhi,,weak\nhi,not json,weak\n`);
    const opts = { versions: [{ name: 'agent', classify: agent }], tiers: ['weak', 'strong'], strongTier: 'strong', weakTier: 'weak', slo: DEFAULT_SLO, listDisagreements: 0 };
    const fromJsonl = await evaluate(readLabelledRows(jsonl), { file: jsonl, ...opts });
    expect(fromJsonl).toMatchObject({ rows: 3, skipped: 1, skipped_examples: [{ line: 4, problem: '"tools" is not an array of tool definitions' }] });
    expect(fromJsonl.versions[0]).toMatchObject({ misroute_rate: 0, by_rule: { agent: 1, default: 2 } });
    const fromCsv = await evaluate(readLabelledRows(csv), { file: csv, ...opts });
    expect(fromCsv).toMatchObject({ rows: 2, skipped: 1, skipped_examples: [{ line: 3, problem: '"tools" is not valid JSON' }] });
    expect(fromCsv.versions[0]).toMatchObject({ misroute_rate: 0, by_rule: { agent: 1, default: 1 } });
  });

  it('a row may be a whole request body (chat, Responses or completions), read as tiergate reads it', async () => {
    const v = compileClassifier('m', {
      rules: [
        { name: 'media', tier: 'strong', when: [{ anyPart: ['image_url', 'input_image'] }] },
        { name: 'agent', tier: 'strong', when: [{ moreThanTools: 1 }] },
      ],
      default: 'weak',
    });
    const dir = await mkdtemp(join(tmpdir(), 'tiergate-eval-request-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const tool = { type: 'function', function: { name: 'f' } };
    const rows = [
      { id: 'chat-image', tier: 'strong', request: { model: 'auto', messages: [{ role: 'user', content: [{ type: 'text', text: 'what?' }, { type: 'image_url', image_url: { url: 'data:,' } }] }] } },
      { id: 'chat-tools', tier: 'strong', request: { model: 'auto', messages: [{ role: 'user', content: 'hi' }], tools: [tool], functions: [{ name: 'g' }] } },
      { id: 'responses-image', tier: 'strong', request: { model: 'auto', input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'data:,' }] }] } },
      { id: 'completion', tier: 'weak', request: { model: 'auto', prompt: 'Say hi' } },
      { id: 'no-messages', tier: 'weak', request: { model: 'auto', messages: [] } },
      { id: 'nothing', tier: 'weak', request: { model: 'auto' } },
    ];
    const file = join(dir, 'requests.jsonl');
    await writeFile(file, rows.map((r) => JSON.stringify(r)).join('\n'));
    const r = await evaluate(readLabelledRows(file), { file, versions: [{ name: 'm', classify: v }], tiers: ['weak', 'strong'], strongTier: 'strong', weakTier: 'weak', slo: DEFAULT_SLO, listDisagreements: 0 });
    expect(r).toMatchObject({ rows: 4, skipped: 2 });
    expect(r.versions[0]).toMatchObject({ misroute_rate: 0, by_rule: { media: 2, agent: 1, default: 1 } });
    expect(r.skipped_examples.map((b) => b.problem)).toEqual([
      expect.stringMatching(/^"request" is not a valid chat request \(.*messages/),
      '"request" has no "messages", "input" or "prompt"',
    ]);
  });

  it('meets the SLOs when the labels say so: a perfect classifier has 0% misroutes', async () => {
    async function* rows() {
      for (let i = 0; i < 100; i++) {
        const strong = i < 35;
        yield { ok: true as const, row: { line: i + 1, id: String(i), messages: [{ role: 'user' as const, content: strong ? 'debug this' : 'hi' }], tools: 0, label: strong ? 'strong' : 'weak' } };
      }
    }
    const r = await evaluate(rows(), { file: 'x', versions: [versions[0] as (typeof versions)[0]], tiers: ['weak', 'strong'], strongTier: 'strong', weakTier: 'weak', slo: DEFAULT_SLO, listDisagreements: 0 });
    expect(r.versions[0]).toMatchObject({ misroute_rate: 0, weak_tier_share: 0.65, strong_precision: 1, strong_recall: 1, f1: 1, slo: { misroute: true, weak_share: true } });
  });
});

describe('labelled rows, field by field (toRow, formatOf)', () => {
  const row = (rec: Record<string, unknown>, labelField?: string) => toRow(7, rec, labelField);
  const ok = (rec: Record<string, unknown>, labelField?: string) => {
    const r = row(rec, labelField);
    if (!r.ok) throw new Error(`refused: ${r.bad.problem}`);
    return r.row;
  };
  const problem = (rec: Record<string, unknown>) => {
    const r = row(rec);
    return r.ok ? 'accepted' : r.bad.problem;
  };

  it('the label: "tier", else "label", else --label-field alone; trimmed and lower-cased; blank or not a string is none', () => {
    expect(ok({ prompt: 'p', tier: ' Strong ' }).label).toBe('strong');
    expect(ok({ prompt: 'p', tier: 'weak', label: 'strong' }).label).toBe('weak');
    expect(ok({ prompt: 'p', label: 'STRONG' }).label).toBe('strong');
    expect(ok({ prompt: 'p', truth: 'strong', tier: 'weak' }, 'truth').label).toBe('strong');
    expect(ok({ prompt: 'p', tier: 'weak' }, 'truth').label).toBeUndefined();
    for (const tier of ['', '   ', 1, null, ['strong']]) expect(ok({ prompt: 'p', tier }).label, JSON.stringify(tier)).toBeUndefined();
  });

  it('the id: the row\'s own, else its line; an empty or null id is none, a 0 is one', () => {
    expect(ok({ prompt: 'p', id: 'ex-1' }).id).toBe('ex-1');
    expect(ok({ prompt: 'p', id: 0 }).id).toBe('0');
    for (const id of [undefined, null, '']) expect(ok({ prompt: 'p', id }).id).toBe('7');
  });

  it('what each unusable field is called (a CSV cell holds JSON as text; a blank cell is no field)', () => {
    expect(problem({ tier: 'weak' })).toBe('no "prompt" string or "messages" array');
    expect(problem({ prompt: 42 })).toBe('no "prompt" string or "messages" array');
    expect(problem({ messages: '[{' })).toBe('"messages" is not valid JSON');
    expect(problem({ messages: '[]' })).toMatch(/^"messages" is not an array of chat messages \(.+\)$/);
    expect(problem({ messages: [{ content: 'no role' }] })).toMatch(/^"messages" is not an array of chat messages \(.+\)$/);
    expect(problem({ request: '{' })).toBe('"request" is not valid JSON');
    for (const request of ['[1]', 'null', '"text"', [1], 7]) expect(problem({ request }), JSON.stringify(request)).toBe('"request" is not a JSON object');
    // Blank cells are absent: the prompt beside them is read.
    expect(ok({ prompt: 'hello', messages: '  ', request: '', tools: ' ' })).toMatchObject({ messages: [{ role: 'user', content: 'hello' }], tools: 0 });
    expect(ok({ messages: '[{"role":"user","content":"hi"}]', tools: '[{},{}]' })).toMatchObject({ messages: [{ role: 'user', content: 'hi' }], tools: 2 });
  });

  it('the format from the extension, any case, unless named; anything else is an error saying how to name it', () => {
    expect(['a.jsonl', 'a.NDJSON', 'a.json', 'a.CSV', 'a.tsv'].map((f) => formatOf(f))).toEqual(['jsonl', 'jsonl', 'jsonl', 'csv', 'tsv']);
    expect(['a.jsonl.gz', 'a.csv.GZ', 'a.tsv.gz'].map((f) => formatOf(f))).toEqual(['jsonl', 'csv', 'tsv']);
    expect(() => formatOf('a.gz')).toThrow('cannot tell the format of a.gz');
    expect(formatOf('a.txt', 'csv')).toBe('csv');
    expect(() => formatOf('prompts.txt')).toThrow('cannot tell the format of prompts.txt: name it with --format jsonl|csv|tsv');
    expect(() => formatOf('a.jsonl', 'xml')).toThrow('cannot tell the format of a.jsonl');
  });

  it('TSV: tabs split, quotes are plain text, blank lines are passed over, a short or long record is still read', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tiergate-eval-tsv-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'rows.tsv');
    await writeFile(file, 'id\tprompt\ttier\nq1\t"Refactor" this, he said\tstrong\n\nq2\tSay hi\tweak\nq3\tno tier column\nq4\tx\tweak\textra\nq5\t"all of it quoted"\tweak\n');
    const seen: unknown[] = [];
    for await (const r of readLabelledRows(file)) seen.push(r.ok ? [r.row.id, r.row.messages[0]?.content, r.row.label] : r.bad.line);
    expect(seen.slice(0, 2)).toEqual([
      ['q1', '"Refactor" this, he said', 'strong'],
      ['q2', 'Say hi', 'weak'],
    ]);
    // A record with too few or too many fields is read (relax_column_count) and judged like any row, not the
    // end of the file: q3 has no tier (unlabelled), q4 its label.
    expect(seen.slice(2)).toEqual([
      ['q3', 'no tier column', undefined],
      ['q4', 'x', 'weak'],
      // TSV has no quoting: a field in quotes keeps them, as the spreadsheet that wrote it showed them.
      ['q5', '"all of it quoted"', 'weak'],
    ]);
  });

  it('a prompt\'s preview: the last user message, whitespace folded, cut with an ellipsis past the width', () => {
    const msgs = [
      { role: 'user' as const, content: 'first question' },
      { role: 'assistant' as const, content: 'an answer' },
      { role: 'user' as const, content: '  the   last\n\tone  ' },
      { role: 'tool' as const, content: 'tool output', tool_call_id: 't' },
    ];
    expect(preview(msgs)).toBe('the last one');
    expect(preview([{ role: 'user', content: 'x'.repeat(80) }])).toBe('x'.repeat(80));
    expect(preview([{ role: 'user', content: 'x'.repeat(81) }])).toBe(`${'x'.repeat(79)}…`);
    expect(preview([{ role: 'user', content: '쿠버네티스'.repeat(20) }], 10)).toBe('쿠버네티스쿠버네티…');
    expect(preview([{ role: 'system', content: 'only a system prompt' }])).toBe('');
  });

  it('blank lines in a JSON Lines file are passed over, and the lines after them keep their numbers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tiergate-eval-blank-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'rows.jsonl');
    await writeFile(file, '\n   \n{"prompt":"a","tier":"weak"}\n\t\n{"prompt":"b"}\n');
    const seen: Array<[number, boolean]> = [];
    for await (const r of readLabelledRows(file)) seen.push([r.ok ? r.row.line : r.bad.line, r.ok]);
    expect(seen).toEqual([[3, true], [5, true]]);
  });
});

describe('tiergate eval metrics at their edges (versionReport)', () => {
  const matrix = (cells: Record<string, Record<string, number>>) => new Map(Object.entries(cells).map(([t, row]) => [t, new Map(Object.entries(row))]));
  const opts = { strongTier: 'strong', weakTier: 'weak', tiers: ['weak', 'strong'], slo: DEFAULT_SLO };
  const report = (cells: Record<string, Record<string, number>>, o: Partial<typeof opts> = {}) => versionReport('vx', matrix(cells), new Map(), { ...opts, ...o });

  it('no rows: every ratio is unknown (null, printed "-") and no SLO is met', () => {
    const r = report({});
    expect(r).toMatchObject({ rows: 0, strong_precision: null, strong_recall: null, f1: null, misroute_rate: null, weak_tier_share: null, confusion: {}, slo: { misroute: false, weak_share: false } });
    const text = formatEval({ file: 'f', rows: 0, skipped: 0, skipped_examples: [], unlabelled: 0, unknown_label: 0, strong_tier: 'strong', weak_tier: 'weak', slo: DEFAULT_SLO, versions: [r], disagreements: { rows: 0, listed: [] } });
    expect(text).toMatch(/^strong precision\s+-$/m);
    expect(text).toMatch(/^misroute rate\s+-$/m);
    expect(text).toMatch(/^SLO misroute ≤ 5\.0%\s+MISS$/m);
  });

  it('precision without a strong routing, recall without a strong row, F1 without either: null, not 0 or NaN', () => {
    // Nothing strong at all: precision and recall have no denominator.
    expect(report({ weak: { weak: 3 } })).toMatchObject({ strong_precision: null, strong_recall: null, f1: null, misroute_rate: 0, weak_tier_share: 1 });
    // Strong rows and strong routings, none of them right: both 0, so F1 (0/0) is null.
    expect(report({ strong: { weak: 2 }, weak: { strong: 1 } })).toMatchObject({ strong_precision: 0, strong_recall: 0, f1: null, misroute_rate: 1, false_weak: 2, false_strong: 1 });
  });

  it('an SLO met exactly is met: the misroute rate at its maximum, the weak share at either end of its range', () => {
    const slo = { maxMisroute: 0.25, weakShare: [0.5, 0.75] as [number, number] };
    expect(report({ weak: { weak: 2 }, strong: { strong: 1, weak: 1 } }, { slo })).toMatchObject({ misroute_rate: 0.25, weak_tier_share: 0.75, slo: { misroute: true, weak_share: true } });
    expect(report({ weak: { weak: 1 }, strong: { strong: 2, weak: 1 } }, { slo })).toMatchObject({ misroute_rate: 0.25, weak_tier_share: 0.5, slo: { misroute: true, weak_share: true } });
    expect(report({ weak: { weak: 1 }, strong: { weak: 3 } }, { slo })).toMatchObject({ slo: { misroute: false, weak_share: false } });
  });

  it('the confusion matrix: a row per true tier seen, a column per configured tier and per tier routed to', () => {
    const r = report({ strong: { weak: 1, legacy: 2 } }, { tiers: ['weak', 'strong', 'mid'] });
    expect(r.confusion).toEqual({ strong: { weak: 1, strong: 0, mid: 0, legacy: 2 } });
  });

  it('"decided by" lists the rules by how many rows each decided, most first', () => {
    const r = versionReport('vx', matrix({ weak: { weak: 6 } }), new Map([['a', 1], ['b', 3], ['c', 2]]), opts);
    expect(Object.entries(r.by_rule)).toEqual([['b', 3], ['c', 2], ['a', 1]]);
  });

  it('names the first five unreadable rows and counts them all', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tiergate-eval-bad-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'bad.jsonl');
    await writeFile(file, `${['{', '[]', '1', 'null', '{"x":1}', '"s"', '{'].join('\n')}\n{"prompt":"hi","tier":"weak"}\n`);
    const r = await run(file);
    expect([r.rows, r.skipped]).toEqual([1, 7]);
    expect(r.skipped_examples).toEqual([
      { line: 1, problem: 'not valid JSON' },
      { line: 2, problem: 'not a JSON object' },
      { line: 3, problem: 'not a JSON object' },
      { line: 4, problem: 'not a JSON object' },
      { line: 5, problem: 'no "prompt" string or "messages" array' },
    ]);
    expect(formatEval(r)).toContain('tiergate eval ' + file + ': 1 labelled rows scored (skipped 7 unreadable, 0 unlabelled, 0 with a label that is no tier)\n  line 1: not valid JSON\n  line 2: not a JSON object\n');
  });
});

describe('tiergate eval output', () => {
  it('prints what the README shows for the tuning example: each part of its block, line for line', async () => {
    const { loadConfigFile } = await import('../../src/config/load.js');
    const example = (name: string) => fileURLToPath(new URL(`../../examples/${name}`, import.meta.url));
    const loaded = await loadConfigFile(example('classifier-tuning.yaml'), {});
    if (!loaded.ok) throw new Error('examples/classifier-tuning.yaml does not load');
    const v8 = loaded.config.classifier.versions.v8 as VersionConfig;
    const file = example('labelled-prompts.jsonl');
    const report = await evaluate(readLabelledRows(file), {
      file: 'examples/labelled-prompts.jsonl',
      versions: [
        { name: 'v7', classify: compileClassifier('v7', V7) },
        { name: 'v8', classify: compileClassifier('v8', v8) },
      ],
      tiers: Object.keys(loaded.config.tiers),
      strongTier: 'strong',
      weakTier: 'weak',
      slo: DEFAULT_SLO,
      listDisagreements: 20,
    });
    const printed = formatEval(report);
    const readme = await readFile(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    const block = /--versions v7,v8\n```\n\n```\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const parts = (block as string).split('...\n');
    expect(parts.length).toBe(2);
    for (const part of parts) expect(printed).toContain(part);
    expect(printed.startsWith('tiergate eval examples/labelled-prompts.jsonl: 30 labelled rows scored\n\n')).toBe(true);
  });
});

describe('tiergate keywords', () => {
  it('Korean stems: particles and 하다-endings come off, never below two syllables', () => {
    expect(koreanStem('쿠버네티스에서')).toBe('쿠버네티스');
    expect(koreanStem('쿠버네티스를')).toBe('쿠버네티스');
    expect(koreanStem('업그레이드하는')).toBe('업그레이드');
    expect(koreanStem('재시작돼요')).toBe('재시작');
    expect(koreanStem('설계들을')).toBe('설계');
    expect(koreanStem('속도')).toBe('속도');
    // 이 and 가 follow the sound before them: a loanword ending in an open syllable keeps its 이.
    expect(koreanStem('게이트웨이')).toBe('게이트웨이');
    expect(koreanStem('데드락이')).toBe('데드락');
    expect(koreanStem('파드가')).toBe('파드');
    expect(koreanStem('평가')).toBe('평가');
  });

  it('Korean stems: the longest ending first, and an ending that follows a sound only after a Hangul syllable with it', () => {
    // 해주세요, not 요 then nothing: the list is tried longest first.
    expect(koreanStem('분석해주세요')).toBe('분석');
    expect(koreanStem('최적화해주시겠어요')).toBe('최적화');
    // 이 follows a closed syllable; compatibility jamo (ㅋ) and the jamo of Hangul Jamo Extended-B (U+D7B1) are no
    // syllables at all, so nothing after them is taken for a particle.
    expect(koreanStem('ㅋㅋㅋ이')).toBe('ㅋㅋㅋ이');
    expect(koreanStem('\u{D7B1}\u{D7B1}이')).toBe('\u{D7B1}\u{D7B1}이');
  });

  it('terms: hyphens and underscores at a term\'s end come off, inside it they stay; a term left under two letters goes', () => {
    expect(termsOf('a re-run of the data_ pipeline-- for a-- x__')).toEqual(new Set(['re-run', 'data', 'pipeline']));
  });

  it('terms drop English and Korean stop words and short tokens', () => {
    expect([...termsOf('How do I read a CSV file in Python?')]).toEqual(['read', 'csv', 'file', 'python']);
    expect(termsOf('그리고 쿠버네티스에서')).toEqual(new Set(['쿠버네티스']));
  });

  it('mines false-weak rows only, skips existing keywords, counts rows once and shows the weak-row cost', async () => {
    const r = await keywordCandidates(readLabelledRows(fixture('false-weak.jsonl')), {
      classify: compileClassifier('v7', V7),
      allRows: false,
      strongTier: 'strong',
      weakTier: 'weak',
      existing: V7_KEYWORDS,
      top: 50,
      minRows: 1,
    });
    // Rows 1–5 and 9 are labelled strong and routed weak by v7; 6–7 are correctly weak; row 8 is routed strong
    // (keyword "design"), so its words count nowhere.
    expect(r).toMatchObject({ false_weak_rows: 6, weak_rows: 2, skipped: 0 });
    const byTerm = new Map(r.candidates.map((c) => [c.term, c]));
    expect(byTerm.get('쿠버네티스')).toEqual({ term: '쿠버네티스', rows: 3, weak_rows: 0, example: '쿠버네티스에서 파드가 계속 재시작돼요' });
    expect(byTerm.get('python')).toMatchObject({ rows: 2, weak_rows: 0, example: 'Write a python script to parse logs' });
    expect(byTerm.get('write')).toMatchObject({ rows: 1, weak_rows: 2 });
    expect(byTerm.has('payments')).toBe(false);
    expect(byTerm.has('how')).toBe(false);
    expect(r.candidates[0]?.term).toBe('쿠버네티스');
    // Sorted by rows, then fewer weak rows first.
    const python = r.candidates.findIndex((c) => c.term === 'python');
    expect(python).toBe(1);
  });

  it('counts each term\'s weak rows wherever they come in the file, only for terms some false-weak row has; other labels count nowhere', async () => {
    const agent = compileClassifier('agent', { rules: [{ name: 'agent', tier: 'strong', when: [{ moreThanTools: 1 }] }], default: 'weak' });
    async function* rows() {
      const at = (line: number, content: string, label: string | undefined, tools = 0) => ({ ok: true as const, row: { line, id: String(line), messages: [{ role: 'user' as const, content }], tools, label } });
      yield at(1, 'terraform module layout', 'weak'); // weak before any false-weak row: still counted for terraform
      yield at(2, 'terraform drift again', 'strong');
      yield at(3, 'terraform state locking', 'strong');
      yield at(4, 'kafka consumer lag', 'strong');
      yield at(5, 'kafka partitions', 'strong');
      yield at(6, 'grafana alerting', 'weak'); // a term only weak rows have: never a candidate
      yield at(7, 'terraform workspaces', 'maybe'); // a label that is no tier: neither kind
      yield at(8, 'terraform plan output', 'strong', 2); // routed strong by its two tools: not a false weak
      yield { ok: false as const, bad: { line: 9, problem: 'not valid JSON' } };
    }
    const r = await keywordCandidates(rows(), { classify: agent, allRows: false, strongTier: 'strong', weakTier: 'weak', existing: [], top: 10, minRows: 1 });
    expect([r.false_weak_rows, r.weak_rows, r.skipped]).toEqual([4, 2, 1]);
    const byTerm = new Map(r.candidates.map((c) => [c.term, [c.rows, c.weak_rows]]));
    expect(byTerm.get('terraform')).toEqual([2, 1]);
    expect(byTerm.get('kafka')).toEqual([2, 0]);
    expect(byTerm.has('grafana')).toBe(false);
    expect(byTerm.has('plan')).toBe(false);
    // Two false-weak rows each: the one fewer weak rows would misroute comes first.
    expect(r.candidates.slice(0, 2).map((c) => c.term)).toEqual(['kafka', 'terraform']);
    const text = formatKeywords(r, 'rows.jsonl');
    expect(r.skipped_examples).toEqual([{ line: 9, problem: 'not valid JSON' }]);
    expect(text.split('\n').slice(0, 5)).toEqual([
      'keyword candidates from rows.jsonl: 4 false-weak rows, 2 correctly-weak rows, 1 unreadable rows skipped',
      // Why, as eval says it: a file that is all unreadable said only how many.
      '  line 9: not valid JSON',
      // The term column is as wide as the longest term and two spaces (terraform: 11).
      '  term         false-weak rows  weak rows   example',
      '  kafka                      2          0   "kafka consumer lag"',
      '  terraform                  2          1   "terraform drift again"',
    ]);
  });

  it('formats Korean terms two columns wide, so the counts line up; no candidate says why', () => {
    const r = { false_weak_rows: 2, weak_rows: 0, skipped: 0, skipped_examples: [], candidates: [
      { term: '쿠버네티스', rows: 2, weak_rows: 0, example: '쿠버네티스에서' },
      { term: 'python', rows: 2, weak_rows: 0, example: 'python' },
    ] };
    const lines = formatKeywords(r, 'f').split('\n');
    // 쿠버네티스 is five characters and ten columns wide, python six and six: both padded to twelve.
    expect(lines[2]).toBe(`  쿠버네티스  ${'2'.padStart(16)}${'0'.padStart(11)}   "쿠버네티스에서"`);
    expect(lines[3]).toBe(`  python      ${'2'.padStart(16)}${'0'.padStart(11)}   "python"`);
    expect(formatKeywords({ ...r, candidates: [] }, 'f')).toBe('keyword candidates from f: 2 false-weak rows, 0 correctly-weak rows\n  no candidates (none reached --min-rows)\n');
  });

  it('--min-rows and an existing keyword inside a word', async () => {
    const r = await keywordCandidates(readLabelledRows(fixture('false-weak.jsonl')), {
      allRows: true,
      strongTier: 'strong',
      weakTier: 'weak',
      existing: ['python', '쿠버'],
      top: 50,
      minRows: 2,
    });
    expect(r.false_weak_rows).toBe(9);
    expect(r.candidates.map((c) => c.term)).toEqual(['write']);
  });
});
