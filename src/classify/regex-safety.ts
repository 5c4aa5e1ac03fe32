// A ReDoS check of the classifier's regex conditions, before a config is used. The pattern runs on text every
// client writes (up to limits.maxRequestBodyBytes of it) on the thread that answers Envoy, and V8's engine
// backtracks: `(\w+\s?)+$` takes exponential time, `[a-z]+@[a-z]+\.com` quadratic, so one request of a few
// kilobytes could hold every stream of the process past Envoy's message timeout. `recheck` (the ReDoS checker
// of the ECMAScript regex semantics: automaton analysis, then the attack string confirmed) decides each
// pattern; one it finds vulnerable is a config problem unless the condition says `allowSlow: true`.
//
// The check takes tens to hundreds of milliseconds a pattern, so it runs at start, in `tiergate config check` and
// before a reload is swapped in, never per request, and each pattern once per process. It runs in a worker thread
// of its own that exits when done: recheck's default backends keep an agent alive for the life of the process
// (its native binary in a child process of ~70 MB, or its JS build in a worker of ~60 MB), for a check that runs
// once. In our worker its JS build runs synchronously, the event loop that answers Envoy stays free, and the
// memory goes with the worker (measured: 4 patterns in 1.5 s, the loop held 13 ms at most, 9 MB left after).
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Diagnostics } from 'recheck';
import type { Config } from '../config/schema.js';
import type { InterpolationProblem } from '../config/interpolate.js';
import type { Logger } from '../telemetry/logger.js';

/** A pattern recheck cannot decide in this time is accepted, and reported as unchecked. */
const CHECK_TIMEOUT_MS = 10_000;
/** Verdicts by `flags/source`: a reload re-checks only the patterns it adds. Bounded by what configs hold. */
const verdicts = new Map<string, Diagnostics>();

export interface RegexSafety {
  /** Patterns that can take more than linear time, without `allowSlow`: the config must not be used. */
  problems: InterpolationProblem[];
  /** Patterns recheck could not decide (too complex, or past its timeout): accepted, worth a look. */
  unchecked: InterpolationProblem[];
}

export async function regexSafety(config: Pick<Config, 'classifier'>): Promise<RegexSafety> {
  const found: Array<{ path: string; source: string; flags: string }> = [];
  for (const [version, v] of Object.entries(config.classifier.versions)) {
    v.rules.forEach((rule, r) => {
      if (rule.enabled === false) return;
      rule.when.forEach((c, i) => {
        if ('regex' in c && c.allowSlow !== true) found.push({ path: `classifier.versions.${version}.rules[${r}].when[${i}].regex`, source: c.regex, flags: c.flags ?? '' });
      });
    });
  }
  const out: RegexSafety = { problems: [], unchecked: [] };
  const now = new Map<string, Diagnostics>();
  for (const f of found) {
    const known = verdicts.get(keyOf(f));
    if (known) now.set(keyOf(f), known);
  }
  const fresh = [...new Map(found.filter((f) => !now.has(keyOf(f))).map((f) => [keyOf(f), f])).values()];
  if (fresh.length > 0) {
    const results = await checkInWorker(fresh.map((f) => [f.source, f.flags]));
    fresh.forEach((f, i) => {
      const d = results[i] as Diagnostics;
      now.set(keyOf(f), d);
      // An error of the checker itself is not remembered: the next load tries again.
      if (!(d.status === 'unknown' && d.error.kind === 'unexpected')) verdicts.set(keyOf(f), d);
    });
  }
  found.forEach((f) => {
    const d = now.get(keyOf(f)) as Diagnostics;
    if (d.status === 'vulnerable') {
      const attack = d.attack.pattern.length <= 120 ? ` (for example ${d.attack.pattern})` : '';
      out.problems.push({
        path: f.path,
        message: `/${f.source}/${f.flags} can take ${d.complexity.type} time on text a client chooses${attack}, holding every stream of the process; rewrite it, or set allowSlow: true on the condition to accept that`,
      });
    } else if (d.status === 'unknown') {
      out.unchecked.push({ path: f.path, message: `/${f.source}/${f.flags} could not be checked for ReDoS (${d.error.kind}); accepted` });
    }
  });
  return out;
}

/** For start and reload: the problems that refuse the config; undecided patterns are logged and accepted. */
export async function vetRegexes(config: Pick<Config, 'classifier'>, log: Logger): Promise<InterpolationProblem[]> {
  const safety = await regexSafety(config);
  for (const u of safety.unchecked) log.warn({ event: 'config.regex_unchecked', path: u.path, message: u.message });
  return safety.problems;
}

const keyOf = (f: { source: string; flags: string }) => `${f.flags}/${f.source}`;

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { checkSync } = require(workerData.recheck);
parentPort.postMessage(workerData.patterns.map(([source, flags]) => {
  try { return checkSync(source, flags, { timeout: workerData.timeoutMs }); }
  catch (e) { return { status: 'unknown', error: { kind: 'unexpected', message: String(e && e.message || e) } }; }
}));`;

/** recheck's JS build in a worker thread of ours (see above); resolves with one verdict per pattern, in order. */
function checkInWorker(patterns: Array<[string, string]>): Promise<Diagnostics[]> {
  const recheck = createRequire(import.meta.url).resolve('recheck');
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER, {
      eval: true,
      workerData: { recheck, patterns, timeoutMs: CHECK_TIMEOUT_MS },
      // The pure backend runs the check in this thread, not in an agent that would outlive it.
      env: { ...process.env, RECHECK_SYNC_BACKEND: 'pure' },
    });
    worker.once('message', (m: Diagnostics[]) => {
      resolve(m);
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the regex check's worker exited (${code}) before answering`)));
  });
}
