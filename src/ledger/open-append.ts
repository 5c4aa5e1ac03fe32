// A file opened for appending, with its size: where an append that fails part way is cut back to. Shared by the
// file sink's day files and the spool.
import { open, type FileHandle } from 'node:fs/promises';

/**
 * `path` opened for appending (created when missing), and its size. A disk failing at the size read (EIO) gets
 * the handle closed before the error goes on: left open, the garbage collector would close it, which Node warns
 * about (DEP0137) and says will become an error.
 */
export async function openForAppend(path: string): Promise<{ fh: FileHandle; size: number }> {
  const fh = await open(path, 'a');
  try {
    return { fh, size: (await fh.stat()).size };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}
