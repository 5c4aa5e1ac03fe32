// A ledger spool directory whose disk can be made to fail, for the ledger writer's tests.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A spool directory whose disk can fail: the directory is a symlink, pointed at a real directory (working) or
 * at itself (every open, read, mkdir and rename under it fails with ELOOP, an error that, like a disk's EIO,
 * says nothing about whether the file is there), switched atomically by a rename.
 */
export class SpoolDisk {
  private readonly root = mkdtempSync(join(tmpdir(), 'tiergate-ledger-faults-'));
  readonly dir = join(this.root, 'spool');
  constructor() {
    mkdirSync(join(this.root, 'disk'));
    this.set(true);
  }
  /** Everything on the disk is gone (a pod deleted with its emptyDir; the next process gets a new, empty one). */
  wipe(): void {
    rmSync(join(this.root, 'disk'), { recursive: true, force: true });
    mkdirSync(join(this.root, 'disk'));
  }
  set(ok: boolean): void {
    const next = join(this.root, 'spool.next');
    rmSync(next, { force: true });
    symlinkSync(ok ? 'disk' : 'spool', next);
    renameSync(next, this.dir);
  }
}
