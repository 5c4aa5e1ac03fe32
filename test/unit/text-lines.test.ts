// Text files read by the ledger and eval commands (src/text-lines.ts): the check of the paths named on a command
// line, gzip told by its magic bytes whatever the name, and lines read through it. The commands' suites run in
// child processes; these run in process.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { fileProblem, isGzip, textLines } from '../../src/text-lines.js';

const dir = mkdtempSync(join(tmpdir(), 'tiergate-text-lines-'));
const file = (name: string, bytes: Buffer | string) => {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
};

async function lines(path: string): Promise<string[]> {
  const out: string[] = [];
  for await (const line of textLines(path)) out.push(line);
  return out;
}

describe('fileProblem', () => {
  it('none when every path is a file; else the first that is missing or a directory, named', () => {
    const a = file('a.log', 'x');
    const b = file('b.log', 'y');
    expect(fileProblem([a, b], 'log file')).toBeUndefined();
    expect(fileProblem([], 'log file')).toBeUndefined();
    expect(fileProblem([a, join(dir, 'nope.log'), dir], 'log file')).toBe(`${join(dir, 'nope.log')}: no such file`);
    expect(fileProblem([a, dir, join(dir, 'nope.log')], 'labelled file')).toBe(`${dir}: a directory, not a labelled file`);
  });
});

describe('isGzip', () => {
  it("only both of gzip's magic bytes, whatever the name; a file too short to hold them is not gzip", () => {
    expect(isGzip(file('rows.jsonl', gzipSync('{}\n')))).toBe(true);
    expect(isGzip(file('rows.gz', '{}\n'))).toBe(false);
    expect(isGzip(file('empty', ''))).toBe(false);
    expect(isGzip(file('one', Buffer.from([0x1f])))).toBe(false);
    expect(isGzip(file('first', Buffer.from([0x1f, 0x00, 0x8b])))).toBe(false);
    expect(isGzip(file('second', Buffer.from([0x00, 0x8b])))).toBe(false);
  });
});

describe('textLines', () => {
  it('CRLF and LF lines, plain or gzip, UTF-8 split across chunks intact', async () => {
    const text = 'first\r\nsecond 한국어\nthird';
    expect(await lines(file('plain.log', text))).toEqual(['first', 'second 한국어', 'third']);
    expect(await lines(file('packed.log', gzipSync(text)))).toEqual(['first', 'second 한국어', 'third']);
    // 70,000 three-byte characters: read in 64 KiB chunks, some characters fall across two.
    const long = '가'.repeat(70_000);
    expect(await lines(file('long.log', `${long}\nend`))).toEqual([long, 'end']);
  });

  it('a gzip file cut short ends the iteration with an error naming the file', async () => {
    const cut = file('cut.log', gzipSync('a\nb\n'.repeat(1000)).subarray(0, 40));
    await expect(lines(cut)).rejects.toThrow(`${cut}: unexpected end of file`);
  });
});
