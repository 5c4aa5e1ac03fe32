// The directories the ledger writes to, checked before anything listens. The spool is where rows wait while a
// sink is down: one that cannot be made (a path off the volume under the Deployment's readOnlyRootFilesystem, a
// file where a directory should be) was found out at the first outage, when every row went to the log as
// `ledger.rows_unsaved` instead; until then the replica reported ready. A file sink's directory likewise.
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import { withDeadline } from '../deadline-timer.js';

/** How long a directory may take to be made and checked; a disk that does not answer is a problem too. */
export const DIR_CHECK_MS = 5_000;

/** One problem per ledger directory that cannot be made or written to, named by its config path. */
export async function unwritableLedgerDirs(ledger: Config['ledger']): Promise<Array<{ path: string; message: string }>> {
  const dirs: Array<[string, string]> = [['ledger.spoolDir', ledger.spoolDir]];
  ledger.sinks.forEach((s, i) => {
    if (s.type === 'file') dirs.push([`ledger.sinks[${i}].dir`, s.dir]);
  });
  const problems = await Promise.all(
    dirs.map(async ([path, dir]) => {
      const made = mkdir(dir, { recursive: true }).then(() => access(dir, constants.W_OK));
      const failure = await withDeadline(
        made.then(
          () => undefined,
          (err: NodeJS.ErrnoException) => err.code ?? err.message,
        ),
        DIR_CHECK_MS,
        `no answer within ${DIR_CHECK_MS} ms`,
      );
      return failure === undefined ? undefined : { path, message: `${JSON.stringify(dir)} cannot be made or written to (${failure})` };
    }),
  );
  return problems.filter((p) => p !== undefined);
}
