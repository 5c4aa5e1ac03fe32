// File handles in tests: FileHandle's prototype (to make a disk fail or hang on every handle opened from then
// on), the hung handles closed when a test ends, and the files a process holds open.
import { mkdtempSync, readdirSync, readlinkSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vi } from 'vitest';

type HandleMethods = Record<'stat' | 'sync', (...args: unknown[]) => Promise<unknown>>;

/** FileHandle's prototype, to spy on a method of every handle opened from now on. */
export async function fileHandlePrototype(): Promise<HandleMethods> {
  const fh = await open(join(mkdtempSync(join(tmpdir(), 'tiergate-probe-')), 'probe'), 'w');
  await fh.close();
  return Object.getPrototypeOf(fh) as HandleMethods;
}

/**
 * From now on every sync() a FileHandle starts never settles, as on a hung mount. `closeHung` closes the handles
 * it caught, for the test's end: a real hung fsync keeps its handle referenced, these would be closed by the
 * garbage collector, which Node warns about (DEP0137) and says will become an error.
 */
export async function hangSyncs(): Promise<{ sync: ReturnType<typeof vi.spyOn>; hung: FileHandle[]; closeHung: () => Promise<void> }> {
  const hung: FileHandle[] = [];
  const sync = vi.spyOn(await fileHandlePrototype(), 'sync').mockImplementation(function (this: FileHandle) {
    hung.push(this);
    return new Promise<never>(() => undefined);
  });
  return { sync, hung, closeHung: async () => void (await Promise.all(hung.map((fh) => fh.close()))) };
}

/** The files under `dir` this process holds open (Linux: /proc/self/fd). */
export function openIn(dir: string): string[] {
  const found: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(`${dir}/`)) found.push(target.slice(dir.length + 1));
    } catch {
      // closed meanwhile (the descriptor readdir itself used)
    }
  }
  return found.sort();
}
