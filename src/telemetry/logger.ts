// pino JSON logs. Secrets are redacted by path wherever they might appear; prompt text is never passed to the
// logger unless `logging.logPrompts` is on (the call sites check it), so redaction is a second line of defence.
import { pino, type Logger, type DestinationStream } from 'pino';

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

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'tiergate' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export type { Logger };
