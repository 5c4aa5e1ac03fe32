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

/** Checks a compiled config needs that take time off the event loop (the classifier's ReDoS check); [] to pass. */
export type Vet = (runtime: Runtime) => Promise<InterpolationProblem[]>;

export class ConfigStore {
  private runtime: Runtime;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastText: string | undefined;
  /** Counts applies, so a slow vet of an older edit never swaps in over a newer one. */
  private applies = 0;

  constructor(
    initial: Runtime,
    initialText?: string,
    private readonly vet: Vet = async () => [],
  ) {
    this.runtime = initial;
    this.lastText = initialText;
  }

  current(): Runtime {
    return this.runtime;
  }

  /**
   * Validate, compile and vet `text`; on success it becomes current (new streams only), else the old one stays.
   * Resolves false also when a newer apply started while this one was vetted: the newer one decides.
   */
  async apply(text: string, env: NodeJS.ProcessEnv, listener: ReloadListener): Promise<boolean> {
    const apply = ++this.applies;
    const compiled = compileSafely(text, env);
    if (!compiled.ok) {
      listener.rejected(compiled.problems);
      return false;
    }
    let problems: InterpolationProblem[];
    try {
      problems = await this.vet(compiled.runtime);
    } catch (e) {
      problems = [{ path: '(config)', message: `config checks failed: ${e instanceof Error ? e.message : String(e)}` }];
    }
    if (apply !== this.applies) return false;
    if (problems.length > 0) {
      listener.rejected(problems);
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
    await this.apply(text, env, listener);
  }

  close(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
  }
}

function compileSafely(text: string, env: NodeJS.ProcessEnv): ReturnType<typeof compileConfigText> {
  try {
    return compileConfigText(text, env);
  } catch (e) {
    // Compiling reports problems rather than throwing (test/unit/config-fuzz.test.ts). Should it ever throw, a
    // reload runs from a file watch, where the error would end the process: every replica, on one edit.
    return { ok: false, problems: [{ path: '(config)', message: e instanceof Error ? e.message : String(e) }] };
  }
}
