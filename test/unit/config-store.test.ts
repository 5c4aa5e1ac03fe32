// The config store on its own: what counts as a change worth reloading, and a vet that fails. The reload's
// effect on streams (atomic swap, in-flight streams keep theirs, the ..data swap) is in lifecycle.test.ts.
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
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

/** A store on config 1, watching a file that holds it in a directory of its own (removed after the test). */
function watchedStore(debounceMs: number) {
  const dir = mkdtempSync(join(tmpdir(), 'tiergate-store-'));
  const file = join(dir, 'tiergate.yaml');
  writeFileSync(file, text(1));
  const store = new ConfigStore(runtime(text(1)), text(1));
  const heard = recorder();
  store.watch(file, {}, heard, debounceMs);
  cleanups.push(() => store.close(), () => rmSync(dir, { recursive: true, force: true }));
  return { file, store, heard };
}

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
  expect(await store.apply('tiers: { weak: { model: 7 } }\n', {}, heard)).toBe(false);
  expect(heard.events).toEqual(['rejected tiers.weak.model: Invalid input: expected string, received number']);
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
