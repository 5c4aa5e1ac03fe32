// pino JSON logs. Secrets are redacted by path wherever they might appear; prompt text is never passed to the
// logger unless `logging.logPrompts` is on (the call sites check it), so redaction is a second line of defence.
import { pino, type Logger, type DestinationStream } from 'pino';
// A CommonJS module: its class is a property of the default export (no named export Node can see).
import sonicBoom, { type SonicBoom } from 'sonic-boom';
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
const stdoutOf = new WeakMap<Logger, SonicBoom>();
const endingOf = new WeakMap<Logger, Promise<void>>();
// Streams with lines still to write: neither closed nor silenced (their reader gone). Written out synchronously
// when the process exits, as pino arms for its own.
const unclosed = new Set<SonicBoom>();
process.once('exit', flushAtExit);

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const stdout = destination ? undefined : stdoutStream();
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
 * pino's own default destination (asynchronous, so a slow log reader never blocks the event loop), built here on
 * sonic-boom 5 rather than pino's bundled sonic-boom 4. pino writes each fatal line out synchronously, and sonic-boom
 * 4's synchronous flush met any error but EAGAIN by sleeping 100 ms and trying again, for ever: a crash logged once
 * the log's reader had gone (`tiergate dev | head -1`, a log shipper that died) held the process, neither serving
 * nor exiting, so no supervisor restarted it. sonic-boom 5 throws the EPIPE, which pino's fatal swallows.
 */
function stdoutStream(): SonicBoom {
  const stream = new sonicBoom.SonicBoom({ fd: 1, sync: false });
  const failed = (err: NodeJS.ErrnoException) => {
    // The reader has gone: logging stops quietly, as pino's destination does.
    if (err.code === 'EPIPE') return silence(stream);
    // Any other failure of the log's own output is unhandled, and so a crash, as with pino's destination.
    stream.off('error', failed);
    stream.emit('error', err);
  };
  stream.on('error', failed);
  unclosed.add(stream);
  stream.once('close', () => unclosed.delete(stream));
  return stream;
}

function silence(stream: SonicBoom): void {
  const nothing = () => true;
  Object.assign(stream, { write: nothing, flush: nothing, flushSync: nothing, end: nothing, destroy: nothing });
  unclosed.delete(stream);
}

/** The lines a process exiting without endLogger still holds: written out now, while it still can. */
function flushAtExit(): void {
  for (const stream of unclosed) {
    try {
      stream.flushSync();
    } catch {
      // A reader gone (EPIPE) or a stream not yet open: nothing more can be written.
    }
  }
  unclosed.clear();
}

/**
 * Writes out what the logger still holds and ends its stdout, for a process about to call `process.exit`.
 *
 * Without it the exit-time flush writes synchronously, waiting on a log reader that is slow or has stopped reading
 * for as long as it takes. Ending the stream lets a write that is failing report its EPIPE, on which logging stops
 * quietly; a reader that is merely slow gets `deadlineMs`, after which the exit-time flush waits for it as before.
 */
export function endLogger(log: Logger, deadlineMs = 2_000): Promise<void> {
  const stream = stdoutOf.get(log);
  // A stream whose reader has gone has nothing left to write, and its end() does nothing, so it would never close.
  if (!stream || !unclosed.has(stream)) return Promise.resolve();
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
