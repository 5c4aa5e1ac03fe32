// The file of budget reconciles kept across a restart (src/budget/kept-reconciles.ts): what one process saves the
// next one takes, once; a file an earlier taker claimed and left is taken too, nothing else in the directory is;
// a torn line is skipped and counted; a directory or disk that refuses is logged, never thrown.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KEPT_RECONCILES_FILE, KeptReconcileFile, type KeptReconcile } from '../../src/budget/kept-reconciles.js';
import { captureLogger } from '../helpers/tiergate.js';

const reconcile = (id: string, tokens = 120): KeptReconcile => ({
  id,
  buckets: [{ key: `b:{acme}:tokens:day`, code: 'daily_token_budget', unit: 'tokens', limit: 1_000_000, resetAt: 1_800_000_000_000, expireAt: 1_800_000_600_000 }],
  tokens,
  microUsd: 42,
});

function file(dir: string) {
  const { log, logs } = captureLogger();
  const events = () => logs.map((l) => JSON.parse(l) as Record<string, unknown>).map(({ event, reconciles, lines }) => ({ event, ...(reconciles === undefined ? {} : { reconciles }), ...(lines === undefined ? {} : { lines }) }));
  return { kept: new KeptReconcileFile(dir, log), events };
}

describe('kept budget reconciles', () => {
  it('what one process saves (making the directory) the next takes, once, and the file is gone', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'tiergate-kept-')), 'spool');
    const first = file(dir);
    expect(first.kept.save([reconcile('a'), reconcile('b')])).toBe(true);
    expect(first.kept.save([reconcile('c')])).toBe(true); // appended
    expect(first.events()).toEqual([
      { event: 'budget.kept_reconciles_saved', reconciles: 2 },
      { event: 'budget.kept_reconciles_saved', reconciles: 1 },
    ]);
    const next = file(dir);
    expect(next.kept.take().map((k) => k.id)).toEqual(['a', 'b', 'c']);
    expect(next.events()).toEqual([{ event: 'budget.kept_reconciles_loaded', reconciles: 3 }]);
    expect(readdirSync(dir)).toEqual([]);
    expect(next.kept.take()).toEqual([]);
    expect(next.events()).toHaveLength(1); // nothing taken: nothing said
  });

  it("a file an earlier taker claimed and left is taken too; nothing else in the directory is", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-kept-'));
    const line = (k: KeptReconcile) => `${JSON.stringify(k)}\n`;
    // Its last line whole but without its newline: still a line of its own, not joined to the next file's.
    writeFileSync(join(dir, `${KEPT_RECONCILES_FILE}.123-abc.taking`), line(reconcile('left')).trimEnd());
    writeFileSync(join(dir, `${KEPT_RECONCILES_FILE}.456-def.taking`), line(reconcile('left too')).trimEnd());
    writeFileSync(join(dir, KEPT_RECONCILES_FILE), line(reconcile('saved')));
    const others = [`${KEPT_RECONCILES_FILE}.bak`, 'ledger.spool.jsonl', 'other.taking', `x${KEPT_RECONCILES_FILE}`];
    for (const name of others) writeFileSync(join(dir, name), line(reconcile(name)));
    const { kept } = file(dir);
    expect(kept.take().map((k) => k.id).sort()).toEqual(['left', 'left too', 'saved']);
    expect(readdirSync(dir).sort()).toEqual([...others].sort());
  });

  it('a line a crash cut short, or one that is not a reconcile, is skipped and counted; the rest are taken', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-kept-'));
    const good = JSON.stringify(reconcile('good'));
    const bad = [JSON.stringify({ ...reconcile('no-buckets'), buckets: [] }), JSON.stringify({ ...reconcile('negative'), tokens: -1 }), good.slice(0, 40)];
    writeFileSync(join(dir, KEPT_RECONCILES_FILE), `${good}\n\n${bad.join('\n')}`);
    const f = file(dir);
    expect(f.kept.take().map((k) => k.id)).toEqual(['good']);
    expect(f.events()).toEqual([
      { event: 'budget.kept_reconciles_skipped', lines: 3 },
      { event: 'budget.kept_reconciles_loaded', reconciles: 1 },
    ]);
  });

  it('no directory yet is nothing to take, silently; a directory that cannot be read, or a disk that refuses a save, is logged', () => {
    const root = mkdtempSync(join(tmpdir(), 'tiergate-kept-'));
    const missing = file(join(root, 'never-made'));
    expect(missing.kept.take()).toEqual([]);
    expect(missing.events()).toEqual([]);
    // A regular file where the directory should be: reading it fails (ENOTDIR), and so does making it.
    writeFileSync(join(root, 'a-file'), '');
    const blocked = file(join(root, 'a-file'));
    expect(blocked.kept.take()).toEqual([]);
    expect(blocked.kept.save([reconcile('x'), reconcile('y')])).toBe(false);
    expect(blocked.events()).toEqual([{ event: 'budget.kept_reconciles_unreadable' }, { event: 'budget.kept_reconciles_lost', reconciles: 2 }]);
  });

  it('a claimed file that cannot be read is logged, and the others are still taken', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-kept-'));
    // A directory under the claimed name: it is renamed like a file, and reading it fails (EISDIR).
    mkdirSync(join(dir, `${KEPT_RECONCILES_FILE}.1-x.taking`));
    writeFileSync(join(dir, KEPT_RECONCILES_FILE), `${JSON.stringify(reconcile('saved'))}\n`);
    const f = file(dir);
    expect(f.kept.take().map((k) => k.id)).toEqual(['saved']);
    expect(f.events()).toEqual([{ event: 'budget.kept_reconciles_unreadable' }, { event: 'budget.kept_reconciles_loaded', reconciles: 1 }]);
    expect(existsSync(join(dir, KEPT_RECONCILES_FILE))).toBe(false);
  });
});
