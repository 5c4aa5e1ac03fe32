// vitest globalSetup: every temp directory a test run makes (spools, ledger files, Redis servers' data, the
// test processes' working directories) goes under one directory, removed when the run ends. Without it every
// run left its directories in the system temp dir (9,023 of them, 413 MB, after one day's runs on one machine).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'tiergate-vitest-'));
  // os.tmpdir() reads TMPDIR on every call, here and in every process started after this: vitest's test
  // processes, and the tiergate and redis-server processes the tests start.
  process.env.TMPDIR = root;
  return () => {
    try {
      rmSync(root, { recursive: true, force: true, maxRetries: 3 });
    } catch (err) {
      // A process still writing there must not fail a run whose tests passed; the directory is named for it.
      console.warn(`could not remove the test run's temp directory ${root}: ${(err as Error).message}`);
    }
  };
}
