// `tiergate dev` for the end-to-end tests: free ports everywhere, fast mock chunks, no logs.
import { startDevStack, type DevOptions, type DevStack } from '../../src/dev/dev-stack.js';

export function startTestDevStack(opts: DevOptions = {}): Promise<DevStack> {
  return startDevStack({
    port: 0,
    grpcListen: '127.0.0.1:0',
    adminListen: '127.0.0.1:0',
    backendPorts: { weak: 0, strong: 0 },
    chunkDelayMs: 1,
    env: { TIERGATE_LOG_LEVEL: 'silent' },
    ...opts,
  });
}
