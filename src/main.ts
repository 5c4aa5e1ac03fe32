// Composition root: the only place that reads the environment, installs signal handlers and decides the
// shutdown order (health off → no new streams → drain → close → flush traces).
import { createApp, type App } from './app.js';
import { loadConfigFile, defaultConfig, parseConfigText, type LoadResult } from './config/load.js';
import { compileRuntime } from './config/runtime.js';
import type { ConfigStore } from './config/config-store.js';
import type { RestartOnlySetting } from './config/restart-only.js';
import { LOG_LEVELS, type Config } from './config/schema.js';
import { loadTokenizer } from './llm/tokenizer.js';
import { unwritableLedgerDirs } from './ledger/ledger-dirs.js';
import { vetRegexes } from './classify/regex-safety.js';
import { createLogger, endLogger, type Logger } from './telemetry/logger.js';
import { startTracing } from './telemetry/tracing.js';
import { logGrpcThrough } from './telemetry/grpc-log.js';
import { BUILD } from './version.js';
import { withDeadline } from './deadline-timer.js';

export interface ServeOptions {
  configFile?: string;
  listen?: string;
  admin?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * The process's own server: install SIGTERM/SIGINT handlers, and send grpc-js's log lines through the logger
   * (off for in-process use such as tests and `tiergate dev`).
   */
  handleSignals?: boolean;
  /** Config text to run on when no file is named (`tiergate dev`'s own defaults); else the embedded ones. */
  defaultConfigText?: string;
}

export interface Serving {
  app: App;
  log: Logger;
  grpcPort: number;
  adminPort: number;
  /**
   * Stops serving. `drainMs`: first report not ready (readiness, gRPC health) and go on taking new streams that
   * long, as SIGTERM does with `server.drainDelayMs`; without it, new streams are refused at once. `graceMs`:
   * how long streams in flight get to end (server.shutdownGraceMs unless given).
   */
  stop(opts?: { drainMs?: number; graceMs?: number }): Promise<void>;
}

export class ConfigError extends Error {
  constructor(readonly problems: { path: string; message: string }[]) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
  }
}

export async function loadInitialConfig(file: string | undefined, env: NodeJS.ProcessEnv, defaultText?: string): Promise<{ config: Config; text?: string }> {
  if (!file && defaultText !== undefined) {
    const parsed = parseConfigText(defaultText, env, 'defaults');
    if (!parsed.ok) throw new ConfigError(parsed.problems);
    return { config: parsed.config, text: parsed.source };
  }
  if (!file) return { config: defaultConfig() };
  const loaded: LoadResult = await loadConfigFile(file, env);
  if (!loaded.ok) throw new ConfigError(loaded.problems);
  return { config: loaded.config, text: loaded.source };
}

/** How long a starting server waits for its shared stores' Redis before it reports ready anyway. */
const STORE_CONNECT_WAIT_MS = 2000;

/**
 * TIERGATE_LOG_LEVEL, when set: upper or lower case (`DEBUG`), empty taken as unset (a manifest's `value: ""`). Anything
 * else refuses to start, naming the variable, as a bad `logging.level` does; pino's own words were "default
 * level:bogus must be included in custom levels".
 */
export function logLevel(env: NodeJS.ProcessEnv): (typeof LOG_LEVELS)[number] | undefined {
  const raw = env.TIERGATE_LOG_LEVEL?.trim().toLowerCase();
  if (!raw) return undefined;
  const level = LOG_LEVELS.find((l) => l === raw);
  if (level) return level;
  throw new ConfigError([{ path: 'TIERGATE_LOG_LEVEL', message: `expected one of ${LOG_LEVELS.map((l) => `"${l}"`).join('|')}, got ${JSON.stringify((env.TIERGATE_LOG_LEVEL ?? '').slice(0, 64))}` }]);
}

/** The highest exit code asked of exitAfter so far: the process ends with it, whichever caller exits first. */
let exitCodeAsked = 0;

/**
 * Exits once `stopped` settles and the log has been written out (see endLogger): with `code` (0), or 1 after
 * logging `server.stop_failed` when stopping threw. A failure there was an unhandled rejection: a stack trace on
 * stderr instead of a log line, and the log never ended. Two callers waiting on one stop (a crash while a
 * SIGTERM stops the process) end it with the higher code: the SIGTERM's, asked first, exited 0.
 */
export function exitAfter(stopped: Promise<void>, log: Logger, code = 0): void {
  exitCodeAsked = Math.max(exitCodeAsked, code);
  void stopped
    .then(
      () => 0,
      (err: unknown) => {
        log.error({ event: 'server.stop_failed', err: err instanceof Error ? err.message : String(err) });
        return 1;
      },
    )
    .then(async (failed) => {
      await endLogger(log);
      process.exit(Math.max(failed, exitCodeAsked));
    });
}

export async function serve(opts: ServeOptions): Promise<Serving> {
  const env = opts.env ?? process.env;
  const { config, text } = await loadInitialConfig(opts.configFile, env, opts.defaultConfigText);
  const compiled = compileRuntime(config, env);
  if (!compiled.ok) throw new ConfigError(compiled.problems);
  // With a `stdout` ledger sink, rows and log lines share the process's stdout. Written by two writers (the
  // sink through process.stdout, pino from a worker thread), a log line landed inside a row whenever the reader
  // fell behind and a row's write was split: the row was lost to `ledger rollup --logs`. Through the one handle
  // every write goes out whole and in order.
  const sharesStdout = config.ledger.sinks.some((s) => s.type === 'stdout');
  const log = createLogger(logLevel(env) ?? config.logging.level, sharesStdout ? process.stdout : undefined);
  if (opts.handleSignals) logGrpcThrough(log);
  // Before anything listens: a classifier regex that can backtrack on client text refuses the config.
  const unsafe = await vetRegexes(config, log);
  if (unsafe.length > 0) throw new ConfigError(unsafe);
  const unwritable = await unwritableLedgerDirs(config.ledger);
  if (unwritable.length > 0) throw new ConfigError(unwritable);
  const stopTracing = await startTracing(env, log);
  const overridden: RestartOnlySetting[] = [];
  if (opts.listen) overridden.push('server.listen');
  if (opts.admin) overridden.push('server.admin');
  if (logLevel(env)) overridden.push('logging.level');
  const app = createApp(compiled.runtime, log, { configText: text, defaultMetrics: true, overridden });
  if (opts.configFile) app.config.watch(opts.configFile, env, app.reloadListener);

  let grpcPort: number;
  let adminPort: number;
  try {
    // Loading the tokenizer's tables blocks the event loop for ~300 ms: done before serving, never mid-traffic.
    await loadTokenizer();
    grpcPort = await app.extproc.listen(opts.listen ?? config.server.listen, config.server.tls);
    adminPort = await app.admin.listen(opts.admin ?? config.server.admin);
  } catch (err) {
    // A start that fails half way (the admin port taken, after the gRPC one was bound) must not leave a process
    // behind that holds the gRPC port, its config watcher and its Redis connections, never ready and never
    // ending: it said what went wrong and went on running. Everything the app opened is closed first.
    await app.shutdown(0).catch(() => undefined);
    await stopTracing?.();
    throw err;
  }
  await app.storesConnected(STORE_CONNECT_WAIT_MS);
  app.markServing();
  log.info({ event: 'server.started', ...BUILD, grpc_port: grpcPort, admin_port: adminPort, config_version: compiled.runtime.version });

  let stopping: Promise<void> | undefined;
  const stop = ({ drainMs = 0, graceMs: givenGraceMs }: { drainMs?: number; graceMs?: number } = {}) =>
    (stopping ??= (async () => {
      if (drainMs > 0) {
        // Envoy learns that this replica is going from its health checks, Kubernetes from the endpoint's removal;
        // until then it still opens streams here, and a refused one is a 500 for its request.
        app.markDraining();
        log.info({ event: 'server.draining', drain_ms: drainMs });
        await new Promise((resolve) => setTimeout(resolve, drainMs));
      }
      // The grace period is read when it is needed, so a reload can change it.
      const graceMs = givenGraceMs ?? app.config.current().config.server.shutdownGraceMs;
      log.info({ event: 'server.stopping', grace_ms: graceMs });
      await app.shutdown(graceMs);
      await stopTracing?.();
      log.info({ event: 'server.stopped' });
    })());
  if (opts.handleSignals) {
    // SIGTERM comes from an orchestrator, whose data plane has to be given time to stop routing here; SIGINT from
    // someone at a terminal, who is not kept waiting.
    process.once('SIGTERM', () => exitAfter(stop({ drainMs: app.config.current().config.server.drainDelayMs }), log));
    process.once('SIGINT', () => exitAfter(stop(), log));
    reloadOnHangup(app.config, log);
    ignoreStraySignals(log);
    exitOnCrash(() => stop({ graceMs: CRASH_GRACE_MS }), log);
  }
  return { app, log, grpcPort, adminPort, stop };
}

/** A crashing process's shutdown: streams in flight get CRASH_GRACE_MS to end, and all of it CRASH_STOP_MS. */
export const CRASH_GRACE_MS = 2_000;
export const CRASH_STOP_MS = 15_000;

/**
 * An exception nothing caught (a bug, here or in a library; a promise rejected with no handler) still ends the
 * process, exit 1, as Node's default does. First it is said in the JSON log (`process.crashed`, at fatal), and
 * the process stops as on SIGINT, only sooner: streams in flight get CRASH_GRACE_MS to end, and the ledger stores
 * the rows it holds (in its sinks, the spool, or else the log). Node's default printed a stack trace to stderr,
 * outside the JSON log, and dropped those rows. A crash during a shutdown waits for that shutdown.
 */
export function exitOnCrash(stop: () => Promise<void>, log: Logger): void {
  let crashed = false;
  process.on('uncaughtException', (err, origin) => {
    // Another one while stopping: the first one's exit stands.
    if (crashed) return;
    crashed = true;
    const e = err instanceof Error ? err : new Error(String(err));
    log.fatal({ event: 'process.crashed', origin, error: e.message, stack: e.stack });
    exitAfter(withDeadline(stop(), CRASH_STOP_MS, undefined), log, 1);
  });
}

/**
 * SIGUSR1 and SIGUSR2 are logged and otherwise ignored. Node's default for SIGUSR1 opens its inspector on
 * 127.0.0.1:9229, a debugger that runs any code sent to it, in a process that holds the upstream keys and sees
 * every prompt (a listener is what keeps Node from opening it); its default for SIGUSR2 ends the process at once,
 * as SIGHUP's did, with streams cut and ledger rows lost. Neither has a meaning here: SIGTERM stops, SIGHUP reloads,
 * and `node --inspect` debugs.
 */
const IGNORED_SIGNALS = {
  SIGUSR1: "Node's default would open its inspector (a debugger port); start the process with --inspect to debug it",
  SIGUSR2: "Node's default would end the process at once; SIGTERM stops it gracefully",
} as const;

export function ignoreStraySignals(log: Logger): void {
  for (const [signal, reason] of Object.entries(IGNORED_SIGNALS)) process.on(signal, () => log.warn({ event: 'signal.ignored', signal, reason }));
}

/**
 * SIGHUP reads the config file now, as its change would. Node's default for it is to end the process at once:
 * a `kill -HUP` meant as a reload (nginx's and HAProxy's convention, a systemd ExecReload), or a terminal's
 * session ending, cut off every stream in flight and lost the ledger rows still in memory.
 */
export function reloadOnHangup(config: ConfigStore, log: Logger): void {
  process.on('SIGHUP', () => {
    const reloaded = config.reloadNow();
    if (!reloaded) {
      log.info({ event: 'config.reload_skipped', reason: 'SIGHUP: no config file is watched (none given with --config, or the server is stopping)' });
      return;
    }
    void reloaded.then((outcome) => {
      // A new config and a refused one are logged as a reload's are (config.reloaded, config.rejected).
      if (outcome === 'unchanged') log.info({ event: 'config.unchanged', reason: 'SIGHUP', version: config.current().version });
    });
  });
}
