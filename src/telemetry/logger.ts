// pino JSON logs. Secrets are redacted by path wherever they might appear; prompt text is never passed to the
// logger unless `logging.logPrompts` is on (the call sites check it), so redaction is a second line of defence.
import { pino, type Logger, type DestinationStream } from 'pino';
import { withDeadline } from '../deadline-timer.js';

export const REDACT_PATHS = [
  'authorization',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers.cookie',
  '*.authorization',
  '*["x-api-key"]',
  'apiKey',
  '*.apiKey',
  'prompt',
  '*.prompt',
  'messages',
  '*.messages',
];

// The stdout stream of each logger built here without a destination of its own, for endLogger.
const stdoutOf = new WeakMap<Logger, ReturnType<typeof pino.destination>>();
const endingOf = new WeakMap<Logger, Promise<void>>();

export function createLogger(level: string, destination?: DestinationStream): Logger {
  // pino's own default, asynchronous so a slow log reader never blocks the event loop, made here so that shutdown
  // can end it (endLogger).
  const stdout = destination ? undefined : pino.destination({ dest: 1, sync: false });
  const log = pino(
    {
      level,
      base: { service: 'tiergate' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? stdout,
  );
  if (stdout) stdoutOf.set(log, stdout);
  return log;
}

/**
 * Writes out what the logger still holds and ends its stdout, for a process about to call `process.exit`.
 *
 * Without it pino flushes at exit with sonic-boom 4's flushSync, which sleeps and retries on any write error but
 * EAGAIN: when stdout is a pipe whose reader has gone (`tiergate serve | head`, a log shipper that died), a line
 * still queued behind the write that is failing is retried every 100 ms for ever and the process never exits.
 * Ending the stream lets the failing write report its EPIPE, on which pino stops logging quietly; a reader that is
 * merely slow gets `deadlineMs`, after which the exit-time flush waits for it as before.
 */
export function endLogger(log: Logger, deadlineMs = 2_000): Promise<void> {
  const stream = stdoutOf.get(log);
  // pino answers EPIPE by putting no-ops in place of the stream's methods (its filterBrokenPipe): nothing is left to
  // write and the exit-time flush does nothing, so there is nothing to wait for; end() would never close.
  if (!stream || Object.hasOwn(stream, 'end')) return Promise.resolve();
  // Once per logger: SIGINT after SIGTERM waits for the same end (a second end() would throw).
  let ending = endingOf.get(log);
  if (ending) return ending;
  // Nothing more is logged: a line written after the end would throw ("SonicBoom destroyed").
  log.level = 'silent';
  const ended = new Promise<void>((resolve) => {
    stream.once('close', () => resolve());
    stream.once('error', () => resolve());
    stream.end();
  });
  ending = withDeadline(ended, deadlineMs, undefined);
  endingOf.set(log, ending);
  return ending;
}

export type { Logger };
