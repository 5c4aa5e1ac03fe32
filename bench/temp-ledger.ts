// Where a bench's tiergate writes its ledger (a file sink, as the embedded default does): a temp directory removed
// when the process exits. Each server of a 12-round `npm run bench` wrote some 8 MB of rows, and the directories
// stayed in /tmp after every run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempLedgerDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tiergate-bench-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
