// The config store on its own: what counts as a change worth reloading, and a vet that fails. The reload's
// effect on streams (atomic swap, in-flight streams keep theirs, the ..data swap) is in lifecycle.test.ts.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigStore, type ReloadListener } from '../../src/config/config-store.js';
import { compileConfigText, type Runtime } from '../../src/config/runtime.js';

const text = (v: number) => `tiers: { weak: { model: small-v${v} }, strong: { model: large-v${v} } }\n`;
function runtime(t: string): Runtime {
  const r = compileConfigText(t, {});
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.runtime;
}
/** What the listener heard, in order: the weak model of each config applied, or each rejection's first problem. */
function recorder(): ReloadListener & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    reloaded: (rt) => events.push(`reloaded ${rt.tiers.get('weak')?.model}`),
    rejected: (problems) => events.push(`rejected ${problems[0]?.path}: ${problems[0]?.message}`),
  };
}
const settle = () => new Promise((r) => setTimeout(r, 250)); // well past the 20 ms debounce and the read

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/**
 * A store on config 1, watching a file that holds it in a directory of its own (`dir`, inside `root`; both removed
 * after the test). `vet` stands for the classifier's check; `rearmMs` is how often a removed directory is looked for.
 */
function watchedStore(debounceMs: number, opts: { vet?: (rt: Runtime) => Promise<[]>; rearmMs?: number; maxWaitMs?: number } = {}) {
  const root = mkdtempSync(join(tmpdir(), 'tiergate-store-'));
  const dir = join(root, 'config');
  mkdirSync(dir);
  const file = join(dir, 'tiergate.yaml');
  writeFileSync(file, text(1));
  const store = new ConfigStore(runtime(text(1)), text(1), opts.vet);
  const heard = recorder();
  store.watch(file, {}, heard, debounceMs, opts.rearmMs, opts.maxWaitMs);
  cleanups.push(() => store.close(), () => rmSync(root, { recursive: true, force: true }));
  return { root, dir, file, store, heard };
}
const BAD = 'tiers: { weak: { model: 7 } }\n';
const BAD_EVENT = 'rejected tiers.weak.model: Invalid input: expected string, received number';

it('a file saved again unchanged, or touched, is no reload; nor is one rewritten with the config last applied', async () => {
  const { file, store, heard } = watchedStore(20);

  // Each would count a reload and log one: an editor's save with no edit, a `touch`, a sync that rewrote the file.
  writeFileSync(file, text(1));
  await settle();
  utimesSync(file, new Date(), new Date());
  await settle();
  writeFileSync(file, text(2));
  await expect.poll(() => heard.events, { timeout: 3000 }).toEqual(['reloaded small-v2']);
  expect(store.current().tiers.get('weak')?.model).toBe('small-v2');
  // What was applied last is what a rewrite is compared with, not what the process started on.
  writeFileSync(file, text(2));
  await settle();
  writeFileSync(file, text(3));
  await expect.poll(() => heard.events, { timeout: 3000 }).toEqual(['reloaded small-v2', 'reloaded small-v3']);
});

it('a file rewritten more often than the debounce is still read, at most maxWaitMs after the first change', async () => {
  // Each write restarts the 300 ms debounce; before maxWaitMs, the file was read only once the writes stopped.
  const { file, heard } = watchedStore(300, { maxWaitMs: 600 });
  let v = 1;
  const writer = setInterval(() => writeFileSync(file, text(++v)), 50);
  cleanups.push(() => clearInterval(writer));
  try {
    // Some version applied while the writer is still at it (every version is a valid config). writeFileSync
    // empties the file before it writes, so a read can land in between: that read is refused as an empty file
    // (the config in force kept), as for any writer that saves in place, and is no failure of the wait.
    const reloads = () => heard.events.filter((e) => e.startsWith('reloaded'));
    await expect.poll(() => reloads().length, { timeout: 2500, interval: 25 }).toBeGreaterThan(0);
    expect(reloads()[0]).toMatch(/^reloaded small-v\d+$/);
    expect(heard.events.filter((e) => !e.startsWith('reloaded')).every((e) => e.includes('the file is empty'))).toBe(true);
    // The wait starts again after each read: ~1.2 s more of writes every 50 ms are two or three reads, not one
    // per write.
    const before = heard.events.length;
    await new Promise((r) => setTimeout(r, 1200));
    expect(heard.events.length - before).toBeLessThanOrEqual(3);
  } finally {
    clearInterval(writer);
  }
  // And the last version once the writes stop, as before.
  await expect.poll(() => heard.events.at(-1), { timeout: 3000 }).toBe(`reloaded small-v${v}`);
});

it('another file changing in the directory is no reload; a watch that fails is a rejection naming the file', async () => {
  const { dir, file, heard, store } = watchedStore(20);
  // After a rejection too, when the file itself would be read and applied again (and reported again).
  writeFileSync(file, BAD);
  await expect.poll(() => heard.events, { timeout: 3000 }).toEqual([BAD_EVENT]);
  writeFileSync(join(dir, 'notes.txt'), 'x');
  writeFileSync(join(dir, 'tiergate.yaml.swp'), text(2));
  await settle();
  expect(heard.events).toEqual([BAD_EVENT]);
  // What fs.watch reports as an error (inotify's watch limit reached, say) is counted like any failed reload.
  (store as unknown as { watcher: import('node:fs').FSWatcher }).watcher.emit('error', new Error('ENOSPC: System limit for number of file watchers reached'));
  expect(heard.events).toEqual([BAD_EVENT, `rejected ${file}: watch failed: ENOSPC: System limit for number of file watchers reached`]);
});

it('a vet that fails is a rejected config, never an error out of the reload (which runs from a file watch)', async () => {
  const store = new ConfigStore(runtime(text(1)), text(1), async () => {
    throw new Error('the regex check worker exited');
  });
  const heard = recorder();
  expect(await store.apply(text(2), {}, heard)).toBe(false);
  expect(heard.events).toEqual(['rejected (config): config checks failed: the regex check worker exited']);
  expect(store.current().tiers.get('weak')?.model).toBe('small-v1');
});

it('a config that does not compile is rejected with its problems; the last good one stays current', async () => {
  const store = new ConfigStore(runtime(text(1)), text(1));
  const heard = recorder();
  expect(await store.apply(BAD, {}, heard)).toBe(false);
  expect(heard.events).toEqual([BAD_EVENT]);
  expect(store.current().tiers.get('weak')?.model).toBe('small-v1');
  expect(await store.apply(text(2), {}, heard)).toBe(true);
  expect(heard.events.at(-1)).toBe('reloaded small-v2');
  expect(store.current().tiers.get('weak')?.model).toBe('small-v2');
});

it('an older edit whose vet finishes last never replaces a newer one', async () => {
  // The vet (the classifier's ReDoS check, off the event loop) takes as long as it takes: here the first edit's
  // is held until the second edit has been applied.
  let releaseFirst: () => void = () => undefined;
  const held = new Promise<void>((r) => (releaseFirst = r));
  const store = new ConfigStore(runtime(text(1)), text(1), async (rt) => {
    if (rt.tiers.get('weak')?.model === 'small-v2') await held;
    return [];
  });
  const heard = recorder();
  const older = store.apply(text(2), {}, heard);
  expect(await store.apply(text(3), {}, heard)).toBe(true);
  releaseFirst();
  expect(await older).toBe(false);
  expect(heard.events).toEqual(['reloaded small-v3']);
  expect(store.current().tiers.get('weak')?.model).toBe('small-v3');
});

it('a watched file that disappears is a rejection naming it; one that comes back is reloaded', async () => {
  const { file, store, heard } = watchedStore(20);
  rmSync(file);
  await expect.poll(() => heard.events, { timeout: 3000 }).toEqual([`rejected ${file}: ENOENT: no such file or directory, open '${file}'`]);
  expect(store.current().tiers.get('weak')?.model).toBe('small-v1');
  writeFileSync(file, text(2));
  await expect.poll(() => heard.events.at(-1), { timeout: 3000 }).toBe('reloaded small-v2');
});

it('a file that comes back with the config in force is reported reloaded, so the failure does not stay reported', async () => {
  // The metric and the alert follow the last outcome: a file briefly missing, then restored as it was.
  const { file, store, heard } = watchedStore(20);
  rmSync(file);
  await expect.poll(() => heard.events.length, { timeout: 3000 }).toBe(1);
  writeFileSync(file, text(1));
  await expect.poll(() => heard.events.at(-1), { timeout: 3000 }).toBe('reloaded small-v1');
  expect(store.current().tiers.get('weak')?.model).toBe('small-v1');
});

it('a bad edit reverted to the config in force is reported reloaded; saved again after that, it is no reload', async () => {
  // The usual fix of a bad edit is to undo it. Before, the file then matched the config in force and was skipped,
  // so tiergate_config_last_reload_success stayed 0 and the alert fired until some other change.
  const { file, heard } = watchedStore(20);
  writeFileSync(file, BAD);
  await expect.poll(() => heard.events, { timeout: 3000 }).toEqual([BAD_EVENT]);
  writeFileSync(file, text(1));
  await expect.poll(() => heard.events, { timeout: 3000 }).toEqual([BAD_EVENT, 'reloaded small-v1']);
  writeFileSync(file, text(1));
  await settle();
  expect(heard.events).toEqual([BAD_EVENT, 'reloaded small-v1']);
});

it('a rejected file saved again unchanged is tried again: a check that failed for want of its worker can pass', async () => {
  let vets = 0;
  const { file, store, heard } = watchedStore(20, {
    vet: async () => {
      if (++vets === 1) throw new Error('the regex check worker exited');
      return [];
    },
  });
  writeFileSync(file, text(2));
  await expect.poll(() => heard.events, { timeout: 3000 }).toEqual(['rejected (config): config checks failed: the regex check worker exited']);
  utimesSync(file, new Date(), new Date());
  await expect.poll(() => heard.events.at(-1), { timeout: 3000 }).toBe('reloaded small-v2');
  expect(store.current().tiers.get('weak')?.model).toBe('small-v2');
  // And a file that does not compile is reported again at each save, as every save of a bad file is.
  writeFileSync(file, BAD);
  await expect.poll(() => heard.events.at(-1), { timeout: 3000 }).toBe(BAD_EVENT);
  utimesSync(file, new Date(), new Date());
  await expect.poll(() => heard.events.filter((e) => e === BAD_EVENT), { timeout: 3000 }).toHaveLength(2);
});

it('an edit undone while it is vetted leaves the file\'s config in force, not the undone one', async () => {
  let releaseSecond: () => void = () => undefined;
  const held = new Promise<void>((r) => (releaseSecond = r));
  let vetting = false;
  const { file, store, heard } = watchedStore(20, {
    vet: async (rt) => {
      if (rt.tiers.get('weak')?.model === 'small-v2') {
        vetting = true;
        await held;
      }
      return [];
    },
  });
  writeFileSync(file, text(2));
  await expect.poll(() => vetting, { timeout: 3000 }).toBe(true);
  writeFileSync(file, text(1)); // undone before its check finished
  await expect.poll(() => heard.events, { timeout: 3000 }).toEqual(['reloaded small-v1']);
  releaseSecond();
  await settle();
  expect(heard.events).toEqual(['reloaded small-v1']);
  expect(store.current().tiers.get('weak')?.model).toBe('small-v1');
});

it('a directory removed and made again is watched again; its config is applied once it is back', async () => {
  // Node's watch reports no error when its directory goes: it just ends, and every later edit went unseen.
  const { dir, file, store, heard } = watchedStore(20, { rearmMs: 50 });
  rmSync(dir, { recursive: true });
  const gone = `rejected ${file}: its directory ${dir} was removed; changes are applied again once it is back`;
  await expect.poll(() => heard.events, { timeout: 3000 }).toContain(gone);
  await settle();
  // Back with the config in force: applied and reported all the same, since its removal was reported.
  mkdirSync(dir);
  writeFileSync(file, text(1));
  await expect.poll(() => heard.events.at(-1), { timeout: 3000 }).toBe('reloaded small-v1');
  writeFileSync(file, text(2));
  await expect.poll(() => heard.events.at(-1), { timeout: 3000 }).toBe('reloaded small-v2');
  expect(store.current().tiers.get('weak')?.model).toBe('small-v2');
  // Reported once, however often it was looked for; and no read of the file while its directory was gone.
  expect(heard.events).toEqual([gone, 'reloaded small-v1', 'reloaded small-v2']);
});

it('a directory replaced by another (renamed over) is the one watched: the old one is not', async () => {
  const { root, dir, file, store, heard } = watchedStore(20);
  const next = join(root, 'config-next');
  mkdirSync(next);
  writeFileSync(join(next, 'tiergate.yaml'), text(2));
  renameSync(dir, join(root, 'config-old'));
  renameSync(next, dir);
  await expect.poll(() => heard.events, { timeout: 3000 }).toEqual(['reloaded small-v2']);
  writeFileSync(join(root, 'config-old', 'tiergate.yaml'), text(4));
  await settle();
  writeFileSync(file, text(3));
  await expect.poll(() => heard.events, { timeout: 3000 }).toEqual(['reloaded small-v2', 'reloaded small-v3']);
  expect(store.current().tiers.get('weak')?.model).toBe('small-v3');
});

// process.chdir is not allowed in worker threads, the pool Stryker's runner uses (test/mutation/vitest.config.ts).
it.skipIf(!isMainThread)('a config named without its directory (the working directory) is watched the same: its removal is seen', async () => {
  const { dir, heard, store } = watchedStore(20, { rearmMs: 50 });
  store.close();
  // The same directory, named relative to the working directory: a watch on "." heard nothing when it went.
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    store.watch('tiergate.yaml', {}, heard, 20, 50);
  } finally {
    process.chdir(cwd);
  }
  rmSync(dir, { recursive: true });
  await expect.poll(() => heard.events, { timeout: 3000 }).toEqual([`rejected ${join(dir, 'tiergate.yaml')}: its directory ${dir} was removed; changes are applied again once it is back`]);
  mkdirSync(dir);
  writeFileSync(join(dir, 'tiergate.yaml'), text(2));
  await expect.poll(() => heard.events.at(-1), { timeout: 3000 }).toBe('reloaded small-v2');
});

it('closed while its directory is gone, the store stops looking for it', async () => {
  const { dir, file, store, heard } = watchedStore(20, { rearmMs: 30 });
  rmSync(dir, { recursive: true });
  await expect.poll(() => heard.events.length, { timeout: 3000 }).toBeGreaterThan(0);
  store.close();
  mkdirSync(dir);
  writeFileSync(file, text(2));
  await settle();
  expect(heard.events.some((e) => e.startsWith('reloaded'))).toBe(false);
  expect(store.current().tiers.get('weak')?.model).toBe('small-v1');
});

it('after close, an edit is not reloaded; close before any watch is harmless', async () => {
  new ConfigStore(runtime(text(1)), text(1)).close();
  const { file, store, heard } = watchedStore(300);
  writeFileSync(file, text(2));
  // Closed inside the debounce, once the change has been seen: the pending reload is cancelled too.
  await new Promise((r) => setTimeout(r, 100));
  store.close();
  writeFileSync(file, text(3));
  await new Promise((r) => setTimeout(r, 500));
  expect(heard.events).toEqual([]);
  expect(store.current().tiers.get('weak')?.model).toBe('small-v1');
});

it('a file emptied by a rewrite in place is refused, the config in force kept; {} still asks for the defaults', async () => {
  // Before: the empty moment of `cat > file` was a reload to the embedded defaults, whose auth is off.
  const { file, store, heard } = watchedStore(20);
  for (const blank of ['', '\n  \n', '# being rewritten\n']) {
    writeFileSync(file, blank);
    await settle();
    expect(store.current().tiers.get('weak')?.model).toBe('small-v1');
  }
  const refused = `rejected ${file}: the file is empty (or holds only comments): the config in force is kept; write {} to ask for the embedded defaults`;
  expect(heard.events).toEqual([refused, refused, refused]);
  writeFileSync(file, text(2));
  await settle();
  expect(store.current().tiers.get('weak')?.model).toBe('small-v2');
  writeFileSync(file, '{}\n');
  await settle();
  expect(heard.events.slice(3)).toEqual(['reloaded small-v2', 'reloaded weak-model']);
});

it('a reload may turn authentication on or keep it on, never off: that takes a restart', async () => {
  const keyed = (v: number) => `${text(v)}auth: { mode: api_key, keys: [{ id: app, sha256: ${'ab'.repeat(32)}, tenant: acme }] }\n`;
  const heard = recorder();
  const store = new ConfigStore(runtime(text(1)), text(1));
  expect(await store.apply(keyed(2), {}, heard)).toBe(true);
  expect(await store.apply(keyed(3), {}, heard)).toBe(true);
  // Off, whether by leaving auth out (the embedded default) or by naming it.
  expect(await store.apply(text(4), {}, heard)).toBe(false);
  expect(await store.apply(`${text(5)}auth: { mode: none }\n`, {}, heard)).toBe(false);
  expect(store.current().config.auth.mode).toBe('api_key');
  expect(store.current().tiers.get('weak')?.model).toBe('small-v3');
  const refused = heard.events.slice(2);
  expect(refused).toHaveLength(2);
  for (const e of refused) expect(e).toMatch(/^rejected auth\.mode: a reload cannot turn authentication off \(api_key → none\).*restart tiergate on this file$/);
  // A config that does not compile reports its own problems, not this one.
  expect(await store.apply(BAD, {}, heard)).toBe(false);
  expect(heard.events.at(-1)).toBe(BAD_EVENT);
});

describe('key files (auth sha256File)', () => {
  const digest = (c: string) => c.repeat(64);
  /** A Kubernetes Secret volume as the kubelet keeps it: the data in a timestamped directory, `..data` pointing at it, the key a symlink through it. */
  function secretVolume(root: string, value: string) {
    const dir = join(root, 'keys');
    mkdirSync(dir);
    let n = 0;
    const swap = (v: string) => {
      const data = `..2026_12_06_0${n++}`;
      mkdirSync(join(dir, data));
      writeFileSync(join(dir, data, 'platform'), `${v}\n`);
      symlinkSync(data, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    };
    swap(value);
    symlinkSync(join('..data', 'platform'), join(dir, 'platform'));
    return { file: join(dir, 'platform'), swap };
  }
  const authText = (keyFile: string) => `auth: { mode: api_key, keys: [{ id: platform, sha256File: ${keyFile}, tenant: acme }] }\n`;
  const principalDigest = (store: ConfigStore) => store.current().auth.principals[0]?.digest.toString('hex');

  it('a Secret rotated apart from the config applies without an edit of the config, under a new version', async () => {
    // Before: the file was read only when the config was, so a revoked key kept working until a restart.
    const root = mkdtempSync(join(tmpdir(), 'tiergate-keys-'));
    const secret = secretVolume(root, digest('a'));
    mkdirSync(join(root, 'config'));
    const file = join(root, 'config', 'tiergate.yaml');
    writeFileSync(file, authText(secret.file));
    const store = new ConfigStore(runtime(authText(secret.file)), authText(secret.file));
    const heard = recorder();
    store.watch(file, {}, heard, 20);
    cleanups.push(() => store.close(), () => rmSync(root, { recursive: true, force: true }));
    const first = store.current().version;
    expect(principalDigest(store)).toBe(digest('a'));

    secret.swap(digest('b'));
    await expect.poll(() => principalDigest(store), { timeout: 3000 }).toBe(digest('b'));
    expect(store.current().version).not.toBe(first);
    expect(heard.events).toHaveLength(1);

    // The Secret written again with the same key: nothing to apply, nothing reported.
    secret.swap(digest('b'));
    await settle();
    expect(heard.events).toHaveLength(1);

    // A key file that no longer holds a digest is rejected, and the key in force stays.
    secret.swap('not a digest');
    await expect.poll(() => heard.events.at(-1), { timeout: 3000 }).toBe('rejected auth.keys[0].sha256File: file must hold 64 hex characters (a SHA-256 digest)');
    expect(principalDigest(store)).toBe(digest('b'));
  });

  it("a key file beside the config, written in place, is heard by the config's own watch", async () => {
    const root = mkdtempSync(join(tmpdir(), 'tiergate-keys-'));
    const keyFile = join(root, 'platform.sha256');
    writeFileSync(keyFile, digest('c'));
    const file = join(root, 'tiergate.yaml');
    writeFileSync(file, authText(keyFile));
    const store = new ConfigStore(runtime(authText(keyFile)), authText(keyFile));
    store.watch(file, {}, recorder(), 20);
    cleanups.push(() => store.close(), () => rmSync(root, { recursive: true, force: true }));
    writeFileSync(keyFile, digest('d'));
    await expect.poll(() => principalDigest(store), { timeout: 3000 }).toBe(digest('d'));
  });
});

it('a change after a reloadNow that took a pending one waits the whole debounce again', async () => {
  const { file, store, heard } = watchedStore(300, { maxWaitMs: 400 });
  writeFileSync(file, text(2));
  await new Promise((r) => setTimeout(r, 30)); // heard, so a reload is pending
  expect(await store.reloadNow()).toBe('applied');
  await new Promise((r) => setTimeout(r, 500)); // past maxWaitMs from the change reloadNow took
  writeFileSync(file, text(3));
  await new Promise((r) => setTimeout(r, 100));
  expect(heard.events).toEqual(['reloaded small-v2']);
  await expect.poll(() => heard.events, { timeout: 3000 }).toEqual(['reloaded small-v2', 'reloaded small-v3']);
});

it('reloadNow (SIGHUP) reads the file at once, whatever the debounce, and says what it came to', async () => {
  const { file, store, heard } = watchedStore(60_000);
  expect(await store.reloadNow()).toBe('unchanged');
  writeFileSync(file, text(2));
  expect(await store.reloadNow()).toBe('applied');
  expect(store.current().tiers.get('weak')?.model).toBe('small-v2');
  writeFileSync(file, BAD);
  expect(await store.reloadNow()).toBe('rejected');
  expect(heard.events).toEqual(['reloaded small-v2', BAD_EVENT]);
  store.close();
  expect(store.reloadNow()).toBeUndefined();
  // A store that watches nothing has nothing to read.
  expect(new ConfigStore(runtime(text(1)), text(1)).reloadNow()).toBeUndefined();
});
