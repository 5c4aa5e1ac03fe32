// Reads a whole HTTP message body (the dev servers buffer bodies as Envoy does for BUFFERED mode).
import type { IncomingMessage } from 'node:http';

/** The whole body, however large: what the mock backends read. */
export function readBody(msg: IncomingMessage): Promise<Buffer> {
  return readWithin(msg, Infinity);
}

/**
 * Reads a body as Envoy buffers one: whole, unless it outgrows `limit`. Then it resolves at once with what came so
 * far (more than `limit` bytes, which the caller answers as too large) and the rest is read and dropped, so a
 * client uploading without end costs no memory and its connection is still there for the reply. Rejects when the
 * peer goes away before the end.
 */
export function readWithin(msg: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size > limit) finish();
    };
    const onEnd = () => finish();
    const onGone = () => {
      stop();
      reject(new Error('the peer went away before the body ended'));
    };
    const stop = () => {
      msg.off('data', onData).off('end', onEnd).off('error', onGone).off('close', onClose);
      // The rest (if any) is read and dropped.
      msg.on('error', () => undefined).resume();
    };
    // 'close' after 'end' is the normal course; before it, the body was cut short.
    const onClose = () => {
      if (!msg.complete) onGone();
    };
    const finish = () => {
      stop();
      resolve(Buffer.concat(chunks));
    };
    msg.on('data', onData).on('end', onEnd).on('error', onGone).on('close', onClose);
  });
}
