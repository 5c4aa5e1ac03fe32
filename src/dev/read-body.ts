// Reads a whole HTTP message body (the dev servers buffer bodies as Envoy does for BUFFERED mode).
import type { IncomingMessage } from 'node:http';

export async function readBody(msg: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of msg) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
