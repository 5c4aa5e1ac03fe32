// Settings tiergate reads once, when it starts: the listeners, the stores and their connections, the ledger's
// sinks and writer, the log level, the embedder. A reload that changes one of them is still taken (the rest of it
// applies at once), but that setting keeps its startup value until the process restarts. An operator who moves
// budgets to Redis by editing the ConfigMap must be told so, or every replica goes on counting on its own while
// `config.reloaded` says all is well.
import { isDeepStrictEqual } from 'node:util';
import type { Config } from './schema.js';

export const RESTART_ONLY_SETTINGS = [
  'server.listen',
  // Bound with the listener; the files it names are read again on their own (listener-tls.ts).
  'server.tls',
  'server.admin',
  // grpc-js takes these when the server is built.
  'server.http2StreamResetBurst',
  'server.http2StreamResetRate',
  // Child loggers copy their level when they are made, at start.
  'logging.level',
  // The ledger writer: its sinks, spool and batching, built at start.
  'ledger.sinks',
  'ledger.spoolDir',
  'ledger.queueSize',
  'ledger.batchSize',
  'ledger.writeTimeoutMs',
  'ledger.retryMs',
  'ledger.lingerMs',
  'ledger.logSpoolAtExit',
  'ledger.spoolMaxBytes',
  // The stores and their connections; the memory stores' sizes are fixed when they are made.
  'budgets.store',
  'budgets.redis',
  'cache.store',
  'cache.redis',
  'cache.maxEntries',
  'cache.maxBytes',
  'cache.semantic.embedder',
  'routing.affinity.store',
  'routing.affinity.redis',
  'routing.affinity.maxEntries',
] as const;

export type RestartOnlySetting = (typeof RESTART_ONLY_SETTINGS)[number];

function at(config: Config, path: string): unknown {
  let v: unknown = config;
  for (const key of path.split('.')) v = v === null || typeof v !== 'object' ? undefined : (v as Record<string, unknown>)[key];
  return v;
}

/**
 * The restart-only settings whose value in `next` differs from the one the process started with (names only:
 * the values can hold credentials, such as a Redis URL with its password). `overridden`: settings the command
 * line or the environment decides (`serve --listen`, TIERGATE_LOG_LEVEL); the file's value of those applies
 * after a restart no more than now, so a change to it asks for no restart.
 */
export function restartOnlyChanges(started: Config, next: Config, overridden: readonly RestartOnlySetting[] = []): RestartOnlySetting[] {
  return RESTART_ONLY_SETTINGS.filter((path) => !overridden.includes(path) && !isDeepStrictEqual(at(started, path), at(next, path)));
}
