// `tiergate dev` for the end-to-end tests: free ports everywhere, fast mock chunks, no logs; and what the
// tests read back through it (a chat stream as a client reads it, the ledger row of a request).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type OpenAI from 'openai';
import type { AddressInfo } from 'node:net';
import { createDataPlane, type DataPlaneOptions } from '../../src/dev/data-plane.js';
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

/**
 * A local data plane of its own, on a free port: the dev stack's with other backends or another filter. `stop`
 * drops its client connections, closes it and its ext_proc connections.
 */
export async function startDataPlane(opts: DataPlaneOptions): Promise<{ url: string; port: number; stop: () => Promise<void> }> {
  const dp = createDataPlane(opts);
  await new Promise<void>((r) => dp.server.listen(0, '127.0.0.1', r));
  const port = (dp.server.address() as AddressInfo).port;
  const stop = async () => {
    dp.server.closeAllConnections();
    await new Promise<void>((r) => dp.server.close(() => r()));
    dp.pool.close();
  };
  return { url: `http://127.0.0.1:${port}`, port, stop };
}

/**
 * A chat stream read the way many clients read it: choices[0] unguarded, so a chunk without choices (a usage
 * chunk the client did not ask for) throws. The text, the number of chunks and each chunk's usage field.
 */
export async function readChatStream(stream: AsyncIterable<OpenAI.ChatCompletionChunk>): Promise<{ text: string; chunks: number; usages: Array<OpenAI.CompletionUsage | null> }> {
  let text = '';
  let chunks = 0;
  const usages: Array<OpenAI.CompletionUsage | null> = [];
  for await (const chunk of stream) {
    chunks++;
    const first = chunk.choices[0];
    if (!first) throw new Error(`a chunk without choices reached the client: ${JSON.stringify(chunk)}`);
    text += first.delta?.content ?? '';
    usages.push(chunk.usage ?? null);
  }
  return { text, chunks, usages };
}

/**
 * The row of one request in the embedded default's ledger files (./tiergate-ledger). Today's file and the one of
 * the first call are both read: a run that crosses midnight UTC writes the row under whichever day it was on.
 */
const firstDay = new Date().toISOString().slice(0, 10);
export function ledgerRow(id: string): Record<string, unknown> | undefined {
  const days = new Set([firstDay, new Date().toISOString().slice(0, 10)]);
  return [...days]
    .map((d) => join('tiergate-ledger', `ledger-${d}.jsonl`))
    .filter((f) => existsSync(f))
    .flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((r) => r.request_id === id);
}
