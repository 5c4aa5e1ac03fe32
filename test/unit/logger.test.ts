import { describe, expect, it } from 'vitest';
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
