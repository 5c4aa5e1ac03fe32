// The docs point at themselves and at the tree in two ways: links (`[text](#anchor)`, `[text](path)`) and file
// names in code spans (`test/e2e/dev-upstream.test.ts`), which the README uses to say where a behaviour is tested
// or built. A heading reworded or a file renamed leaves such a pointer going nowhere, and nothing else notices:
// GitHub renders a dead anchor as a link that does not move. So every pointer is checked here.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import GithubSlugger from 'github-slugger';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const DOCS = ['README.md', 'docs/performance.md', 'protos/README.md'];
/** Top-level folders whose files the docs name in code spans. */
const TREE = ['src', 'test', 'bench', 'docs', 'envoy', 'kgateway-manifests', 'observability', 'examples', 'protos'];

/** The text outside fenced code blocks, line by line (a `# comment` in a shell block is no heading). */
function proseLines(text: string): string[] {
  let fenced = false;
  return text.split('\n').filter((line) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return false;
    }
    return !fenced;
  });
}

/** The anchors GitHub gives a Markdown file: one per heading (github-slugger, as GitHub numbers repeats) and each `<a id>`. */
function anchorsOf(text: string): Set<string> {
  const slugger = new GithubSlugger();
  const anchors = new Set<string>();
  for (const line of proseLines(text)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    // GitHub slugs the heading's rendered text: links keep their text, code spans lose their backticks.
    if (heading) anchors.add(slugger.slug((heading[1] as string).replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')));
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1] as string);
  }
  return anchors;
}

/** Every link target in the prose: `[text](target)`, external ones left out. */
function linksOf(text: string): string[] {
  return proseLines(text).flatMap((line) => [...line.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] as string)).filter((t) => !/^[a-z]+:/i.test(t));
}

/** Files of the tree named in code spans: `src/…`, `test/…`, a trailing `:line` or `:` dropped. */
function namedPathsOf(text: string): string[] {
  const spans = [...text.matchAll(/`([^`\s]+)`/g)].map((m) => (m[1] as string).replace(/:\d*$/, ''));
  // A pattern (`test/*.test.ts`, `src/{a,b}.ts`) or a placeholder (`<name>`) names no one file.
  return spans.filter((s) => TREE.some((dir) => s.startsWith(`${dir}/`)) && !/[*{}<>$]/.test(s));
}

describe('the docs point only at what exists', () => {
  for (const doc of DOCS) {
    const text = readFileSync(join(root, doc), 'utf8');
    it(`${doc}: every link reaches a heading, an anchor or a file`, () => {
      const dead = linksOf(text).filter((link) => {
        const [file, anchor] = link.split('#') as [string, string | undefined];
        const target = file === '' ? doc : normalize(join(dirname(doc), file));
        if (!existsSync(join(root, target))) return true;
        if (anchor === undefined) return false;
        return !anchorsOf(readFileSync(join(root, target), 'utf8')).has(anchor);
      });
      expect(dead).toEqual([]);
    });
    it(`${doc}: every file it names in code is in the tree`, () => {
      const missing = namedPathsOf(text).filter((p) => !existsSync(join(root, p)));
      expect(missing).toEqual([]);
    });
  }
});

describe('how the pointers are read', () => {
  it('finds the README\'s pointers (a reader that found none would pass every check above)', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    expect(linksOf(readme).length).toBeGreaterThan(50);
    expect(namedPathsOf(readme).length).toBeGreaterThan(200);
  });
  it('slugs headings as GitHub does: punctuation and code marks dropped, repeats numbered, fenced comments skipped', () => {
    const anchors = anchorsOf(['# tiergate', '### `envoy/envoy.yaml`', '## Limits: `npm run bench:budget`', '## Limits', '## Limits', '```sh', '# not a heading', '```', '- <a id="dashboard"></a>**Dashboard**'].join('\n'));
    expect([...anchors]).toEqual(['tiergate', 'envoyenvoyyaml', 'limits-npm-run-benchbudget', 'limits', 'limits-1', 'dashboard']);
  });
  it('reads links and named files, leaving out external links, patterns and line numbers kept apart', () => {
    const text = 'See [a](#x), [b](docs/performance.md#y) and [c](https://envoyproxy.io). Tested in `test/unit/x.test.ts:12` and `test/*.test.ts`; `npm test`; `src/a.ts`.\n```\n[d](#inside-a-fence)\n```';
    expect(linksOf(text)).toEqual(['#x', 'docs/performance.md#y']);
    expect(namedPathsOf(text)).toEqual(['test/unit/x.test.ts', 'src/a.ts']);
  });
});
