// Holds the current runtime and swaps it atomically when the config file changes.
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { keyFileDigest } from '../auth/api-keys.js';
import type { InterpolationProblem } from './interpolate.js';
import { isBlankConfig } from './load.js';
import { refusedOnReload } from './reload-guards.js';
import { compileConfigText, type Runtime } from './runtime.js';

export interface ReloadListener {
  reloaded(runtime: Runtime): void;
  rejected(problems: InterpolationProblem[]): void;
}

/** What reading the config file came to: a new config, one refused, or the config already in force. */
export type ReloadOutcome = 'applied' | 'rejected' | 'unchanged';

/** Checks a compiled config needs that take time off the event loop (the classifier's ReDoS check); [] to pass. */
export type Vet = (runtime: Runtime) => Promise<InterpolationProblem[]>;

export class ConfigStore {
  private runtime: Runtime;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Set while the watched directory is gone: looks for it again. */
  private rearmTimer: NodeJS.Timeout | undefined;
  /**
   * The text last applied or being applied, which a rewrite of the same text need not apply again; undefined once
   * an apply or a read failed. So after a failure the file's next text is applied and reported: the config in force
   * (a bad edit undone), which would otherwise leave the failure reported, or the rejected text saved again (a vet
   * that failed for want of its worker is tried again).
   */
  private settledText: string | undefined;
  /** Counts applies, so a slow vet of an older edit never swaps in over a newer one. */
  private applies = 0;
  /** The directories of the config's key files (auth sha256File) outside its own, watched while it names them. */
  private readonly keyWatchers = new Map<string, FSWatcher>();
  /** Called once a new config is in force: watch() points the key-file watches at its files. */
  private onSwap: (() => void) | undefined;
  /** Reads the watched file now (reloadNow); set by watch(). */
  private reloadFile: (() => Promise<ReloadOutcome>) | undefined;

  constructor(
    initial: Runtime,
    initialText?: string,
    private readonly vet: Vet = async () => [],
  ) {
    this.runtime = initial;
    this.settledText = initialText;
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
    // Set before the vet: the config in force going back into the file while this one is vetted must be applied
    // again, or this one would swap in over what the file now holds.
    this.settledText = text;
    const compiled = compileSafely(text, env);
    const refused = compiled.ok ? refusedOnReload(this.runtime.config, compiled.runtime.config) : compiled.problems;
    if (!compiled.ok || refused.length > 0) {
      this.settledText = undefined;
      listener.rejected(refused);
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
      this.settledText = undefined;
      listener.rejected(problems);
      return false;
    }
    this.runtime = compiled.runtime;
    this.onSwap?.();
    listener.reloaded(compiled.runtime);
    return true;
  }

  /**
   * Watches the file's directory, not the file: editors replace files by rename and Kubernetes swaps a
   * ConfigMap by re-pointing the `..data` symlink, and both drop a watch on the file itself.
   */
  watch(configFile: string, env: NodeJS.ProcessEnv, listener: ReloadListener, debounceMs = 150, rearmMs = 1000, maxWaitMs = 10 * debounceMs): void {
    // Absolute, so that the directory's own events name it: a watch on "." (a config named without a directory)
    // reports nothing at all when the directory goes.
    const file = resolve(configFile);
    const dir = dirname(file);
    const name = basename(file);
    // `keys`: a key file (or a ConfigMap's `..data`) changed, so the file's text may be the config in force and
    // still need applying again.
    let keys = false;
    // When the first change still waiting was heard. Each change restarts the debounce, but never past
    // `maxWaitMs` from here: a file rewritten more often than the debounce (a generator on a loop, a sync
    // tool) would otherwise never be read at all.
    let pendingSince: number | undefined;
    const cancelPending = () => {
      clearTimeout(this.timer);
      pendingSince = undefined;
    };
    const scheduleReload = (keyFile = false) => {
      keys ||= keyFile;
      const now = Date.now();
      pendingSince ??= now;
      clearTimeout(this.timer);
      this.timer = setTimeout(
        () => {
          pendingSince = undefined;
          const forKeys = keys;
          keys = false;
          void this.reload(file, env, listener, forKeys);
        },
        Math.max(0, Math.min(debounceMs, pendingSince + maxWaitMs - now)),
      );
    };
    this.onSwap = () => this.watchKeyFiles(dir, scheduleReload);
    this.reloadFile = () => {
      cancelPending();
      return this.reload(file, env, listener, true);
    };
    const arm = () => {
      this.watcher = watch(dir, (_event, changed) => {
        // inotify names the watched directory itself when it is removed or moved away. Node reports no error:
        // the watch would end, or follow the old directory, and every later edit would go unseen.
        if (changed === basename(dir)) return lost();
        if (changed === name) return scheduleReload();
        if (changed && changed !== '..data' && !this.keyFileNamesIn(dir).has(changed)) return;
        scheduleReload(true);
      });
      this.watcher.on('error', (e) => listener.rejected([{ path: file, message: `watch failed: ${e.message}` }]));
    };
    const lost = () => {
      this.watcher?.close();
      this.watcher = undefined;
      cancelPending();
      // Whatever the directory holds now is applied and reported, even the config in force.
      this.settledText = undefined;
      if (rearm()) return;
      listener.rejected([{ path: file, message: `its directory ${dir} was removed; changes are applied again once it is back` }]);
      const retry = () => {
        if (!rearm()) this.rearmTimer = setTimeout(retry, rearmMs).unref();
      };
      this.rearmTimer = setTimeout(retry, rearmMs).unref();
    };
    /** Watches the directory at `dir` again (a new one, or the old one back) and reads the file; false while it is gone. */
    const rearm = () => {
      try {
        arm();
      } catch {
        return false;
      }
      scheduleReload();
      return true;
    };
    arm();
    this.onSwap();
  }

  /**
   * Reads the watched file and its key files now, as a change to them would (SIGHUP); undefined when no file is
   * watched (no --config, or the store is closed).
   */
  reloadNow(): Promise<ReloadOutcome> | undefined {
    return this.reloadFile?.();
  }

  /** The names of the config's key files in `dir`. */
  private keyFileNamesIn(dir: string): Set<string> {
    const names = new Set<string>();
    for (const path of this.runtime.auth.keyFiles.keys()) if (dirname(resolve(path)) === dir) names.add(basename(path));
    return names;
  }

  /**
   * Watches the directories of the key files the config in force names, besides its own (whose watch already
   * hears them): a Kubernetes Secret mounted apart from the ConfigMap changes by its own `..data` swap, and a key
   * revoked there applied only at the next edit of the config or the next restart.
   */
  private watchKeyFiles(configDir: string, scheduleReload: (keyFile: boolean) => void): void {
    const dirs = new Set<string>();
    for (const path of this.runtime.auth.keyFiles.keys()) dirs.add(dirname(resolve(path)));
    dirs.delete(configDir);
    for (const [dir, watcher] of this.keyWatchers) {
      if (dirs.has(dir)) continue;
      watcher.close();
      this.keyWatchers.delete(dir);
    }
    for (const dir of dirs) {
      if (this.keyWatchers.has(dir)) continue;
      try {
        const watcher = watch(dir, (_event, changed) => {
          if (!changed || changed === '..data' || this.keyFileNamesIn(dir).has(changed)) scheduleReload(true);
        });
        // Gone with its directory: the key file cannot be read now, which the next reload reports.
        watcher.on('error', () => {
          watcher.close();
          this.keyWatchers.delete(dir);
        });
        this.keyWatchers.set(dir, watcher);
      } catch {
        // Not there (the config was just read from it, so rarely): the next config swap tries again.
      }
    }
  }

  /** Whether a key file of the config in force holds another digest now, or cannot be read. */
  private keyFilesChanged(): boolean {
    for (const [path, digest] of this.runtime.auth.keyFiles) {
      try {
        if (keyFileDigest(path) !== digest) return true;
      } catch {
        return true;
      }
    }
    return false;
  }

  private async reload(file: string, env: NodeJS.ProcessEnv, listener: ReloadListener, forKeys = false): Promise<ReloadOutcome> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      this.settledText = undefined;
      listener.rejected([{ path: file, message: (e as Error).message }]);
      return 'rejected';
    }
    // The config in force, again: applied only when what its key files hold has changed.
    if (text === this.settledText && !(forKeys && this.keyFilesChanged())) return 'unchanged';
    // A file rewritten in place (`cat > file`, an editor that keeps the inode, a copy tool) is empty for a
    // moment, and a pause in the writing longer than the debounce made that moment a reload: an empty config is
    // the embedded defaults, whose auth is off, so every request was let in as tenant "default" until the rest
    // was written. Nobody means that by emptying the file; `{}` still asks for the defaults.
    if (isBlankConfig(text)) {
      this.settledText = undefined;
      listener.rejected([{ path: file, message: 'the file is empty (or holds only comments): the config in force is kept; write {} to ask for the embedded defaults' }]);
      return 'rejected';
    }
    return (await this.apply(text, env, listener)) ? 'applied' : 'rejected';
  }

  close(): void {
    clearTimeout(this.timer);
    clearTimeout(this.rearmTimer);
    this.watcher?.close();
    this.watcher = undefined;
    this.onSwap = undefined;
    this.reloadFile = undefined;
    for (const w of this.keyWatchers.values()) w.close();
    this.keyWatchers.clear();
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
