// Holds the current runtime and swaps it atomically when the config file changes.
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { InterpolationProblem } from './interpolate.js';
import { compileConfigText, type Runtime } from './runtime.js';

export interface ReloadListener {
  reloaded(runtime: Runtime): void;
  rejected(problems: InterpolationProblem[]): void;
}

export class ConfigStore {
  private runtime: Runtime;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastText: string | undefined;

  constructor(initial: Runtime, initialText?: string) {
    this.runtime = initial;
    this.lastText = initialText;
  }

  current(): Runtime {
    return this.runtime;
  }

  /** Validate and compile `text`; on success it becomes current (new streams only), else the old one stays. */
  apply(text: string, env: NodeJS.ProcessEnv, listener: ReloadListener): boolean {
    let compiled: ReturnType<typeof compileConfigText>;
    try {
      compiled = compileConfigText(text, env);
    } catch (e) {
      // Compiling reports problems rather than throwing (test/unit/config-fuzz.test.ts). Should it ever throw, a
      // reload runs from a file watch, where the error would end the process: every replica, on one edit.
      compiled = { ok: false, problems: [{ path: '(config)', message: e instanceof Error ? e.message : String(e) }] };
    }
    if (!compiled.ok) {
      listener.rejected(compiled.problems);
      return false;
    }
    this.runtime = compiled.runtime;
    this.lastText = text;
    listener.reloaded(compiled.runtime);
    return true;
  }

  /**
   * Watches the file's directory, not the file: editors replace files by rename and Kubernetes swaps a
   * ConfigMap by re-pointing the `..data` symlink, and both drop a watch on the file itself.
   */
  watch(file: string, env: NodeJS.ProcessEnv, listener: ReloadListener, debounceMs = 150): void {
    const name = basename(file);
    this.watcher = watch(dirname(file), (_event, changed) => {
      if (changed && changed !== name && changed !== '..data') return;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.reload(file, env, listener), debounceMs);
    });
    this.watcher.on('error', (e) => listener.rejected([{ path: file, message: `watch failed: ${e.message}` }]));
  }

  private async reload(file: string, env: NodeJS.ProcessEnv, listener: ReloadListener): Promise<void> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      listener.rejected([{ path: file, message: (e as Error).message }]);
      return;
    }
    if (text === this.lastText) return;
    this.apply(text, env, listener);
  }

  close(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
  }
}
