// grpc-js writes lines of its own (a listener it could not bind, and with GRPC_TRACE its tracers) to stderr as
// plain text ("E No address added out of total 1 resolved"), the one thing in a serving process's output that
// is not a JSON log event. Routed through tiergate's logger they are `grpc.log` events at the level grpc-js gave
// them; GRPC_VERBOSITY and GRPC_TRACE still decide which lines there are.
import { format } from 'node:util';
import { setLogger } from '@grpc/grpc-js';
import type { Logger } from './logger.js';

/** Process-wide (grpc-js has one logger): only for the process's own server, not one of several in a test. */
export function logGrpcThrough(log: Logger): void {
  const at =
    (level: 'error' | 'info' | 'debug') =>
    (...args: unknown[]): void =>
      log[level]({ event: 'grpc.log', message: format(...args) });
  setLogger({ error: at('error'), info: at('info'), debug: at('debug') });
}
