import { describe, expect, it } from 'vitest';
import { createLogger, endLogger } from '../../src/telemetry/logger.js';
import { captureLogger } from '../helpers/tiergate.js';

describe('logger redaction', () => {
  it('never writes credentials or prompt text', () => {
    const { log, logs } = captureLogger();
    log.info({
      event: 'x',
      headers: { authorization: 'Bearer sk-secret', 'x-api-key': 'k-secret' },
      messages: [{ role: 'user', content: 'my private prompt' }],
      prompt: 'another private prompt',
      apiKey: 'sk-also-secret',
    });
    const line = logs.join('');
    for (const secret of ['sk-secret', 'k-secret', 'private prompt', 'sk-also-secret']) expect(line).not.toContain(secret);
    expect(JSON.parse(line)).toMatchObject({ event: 'x', headers: { authorization: '[redacted]' } });
  });
});

describe('endLogger (before process.exit)', () => {
  it('ends a stdout logger once, however often asked (SIGINT after SIGTERM), and nothing is logged after', async () => {
    const log = createLogger('info');
    const child = log.child({ component: 'ledger' });
    // Ends when the stream has closed, not at the deadline (which would outlast the test's own timeout).
    const ending = endLogger(log, 60_000);
    expect(endLogger(log)).toBe(ending);
    await ending;
    expect(log.level).toBe('silent');
    // A late line from a timer must not throw on the ended stream, from a component's child logger either
    // (pino passes the new level on to the children made before it).
    expect(() => log.error({ event: 'late' })).not.toThrow();
    expect(() => child.error({ event: 'late' })).not.toThrow();
  });

  it('leaves a logger with a destination of its own alone', async () => {
    const { log, logs } = captureLogger();
    await endLogger(log);
    log.info({ event: 'still logging' });
    expect(logs.join('')).toContain('still logging');
  });
});
