// The ledger's directories, checked before anything listens (src/ledger/ledger-dirs.ts).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { defaultConfig } from '../../src/config/load.js';
import { unwritableLedgerDirs } from '../../src/ledger/ledger-dirs.js';

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tiergate-ledger-dirs-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const ledgerWith = (spoolDir: string, sinkDirs: string[]) => ({
  ...defaultConfig().ledger,
  spoolDir,
  sinks: [...sinkDirs.map((dir, i) => ({ type: 'file' as const, name: `file${i}`, dir, fsyncIntervalMs: 1000 })), { type: 'stdout' as const, name: 'stdout' }],
});

describe('unwritableLedgerDirs', () => {
  it('makes the spool and every file sink directory that is not there yet, and finds nothing wrong', async () => {
    const root = scratch();
    const dirs = [join(root, 'spool'), join(root, 'a/b/ledger')];
    expect(await unwritableLedgerDirs(ledgerWith(dirs[0] as string, [dirs[1] as string]))).toEqual([]);
    for (const d of dirs) expect(existsSync(d)).toBe(true);
  });

  it('names each directory that cannot be made by its config path, with the reason (a file where a directory should be)', async () => {
    const root = scratch();
    const file = join(root, 'not-a-dir');
    writeFileSync(file, '');
    const ok = join(root, 'ok');
    expect(await unwritableLedgerDirs(ledgerWith(join(file, 'spool'), [ok, join(file, 'ledger')]))).toEqual([
      { path: 'ledger.spoolDir', message: `${JSON.stringify(join(file, 'spool'))} cannot be made or written to (ENOTDIR)` },
      { path: 'ledger.sinks[1].dir', message: `${JSON.stringify(join(file, 'ledger'))} cannot be made or written to (ENOTDIR)` },
    ]);
  });
});
