// The ext_proc server runs with grpc-js' channelz off: tiergate serves no channelz service, so what channelz
// records per call and per message would be work nobody can read (docs/performance.md).
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { createExtProcServer } from '../../src/extproc/server.js';
import { CONTINUE } from '../../src/extproc/types.js';

/** How many servers grpc-js' channelz registry tracks in this process. */
function channelzServers(): Promise<number> {
  return new Promise((resolve, reject) => {
    const call = { request: { start_server_id: '0', max_results: '1000' } };
    grpc.getChannelzHandlers().GetServers(call as never, ((err: Error | null, res: { server: unknown[] }) => (err ? reject(err) : resolve(res.server.length))) as never);
  });
}

describe('ext_proc server options', () => {
  it('a default grpc-js server is tracked by channelz; tiergate\'s is not', async () => {
    const before = await channelzServers();
    // The control: the registry does count servers created with grpc-js' defaults.
    const plain = new grpc.Server();
    expect(await channelzServers()).toBe(before + 1);

    const handlers = {
      requestHeaders: () => CONTINUE,
      requestBody: () => CONTINUE,
      requestTrailers: () => CONTINUE,
      responseHeaders: () => CONTINUE,
      responseBody: () => CONTINUE,
      responseTrailers: () => CONTINUE,
      end: () => undefined,
    };
    const ext = createExtProcServer(() => handlers, {
      allowModeOverride: () => false,
      failureRule: () => 'continue',
      internalErrorReply: () => CONTINUE,
      hooks: { streamStarted() {}, streamEnded() {}, answered() {}, processingError() {} },
    });
    await ext.listen('127.0.0.1:0');
    expect(await channelzServers()).toBe(before + 1);
    await ext.shutdown(1000);
    plain.forceShutdown();
  });
});
