// What a SIGTERM'd or SIGINT'd process does once stopping settles (main.ts exitAfter).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { exitAfter } from '../../src/main.js';
import { captureLogger } from '../helpers/tiergate.js';

afterEach(() => vi.restoreAllMocks());

function exitCode(): Promise<number | undefined> {
  return new Promise((resolve) => vi.spyOn(process, 'exit').mockImplementation(((code?: number) => resolve(code)) as typeof process.exit));
}

describe('exitAfter', () => {
  it('exits 0 when stopping went well, logging nothing of its own', async () => {
    const { log, logs } = captureLogger();
    const code = exitCode();
    exitAfter(Promise.resolve(), log);
    expect(await code).toBe(0);
    expect(logs).toEqual([]);
  });

  it('exits 1 with server.stop_failed in the log when stopping threw (it was an unhandled rejection and a stack trace)', async () => {
    const { log, logs } = captureLogger();
    const code = exitCode();
    exitAfter(Promise.reject(new Error('ledger close failed')), log);
    expect(await code).toBe(1);
    expect(logs.map((l) => JSON.parse(l) as object)).toEqual([expect.objectContaining({ level: 'error', event: 'server.stop_failed', err: 'ledger close failed' })]);
  });
});
