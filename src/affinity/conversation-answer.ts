// The answer to POST /v1/conversations, read for the id of the conversation it created, so that the id can be
// claimed for the tenant that created it (routing.affinity.isolation): a conversation holds its items on the
// backend under tiergate's one upstream credential, like a stored response. The answer is a small JSON object
// ({"id":"conv_…","object":"conversation",…}); it passes to the client untouched, and only a copy of its plain
// bytes is kept until it ends, bounded.
import { bodyDecoder, type StreamDecoder } from '../usage/content-encoding.js';

/** Far above a conversation object with its 16 metadata pairs; an answer beyond it is not one. */
const MAX_ANSWER_BYTES = 64 * 1024;

export class ConversationAnswer {
  private parts: Buffer[] = [];
  private bytes = 0;
  private decoder: StreamDecoder | undefined;
  /** Nothing to claim: a failed request, a coding tiergate cannot undo, a corrupt or oversized body. */
  private spoiled = false;

  /** The answer's status and content coding: only a success names a new conversation. */
  headers(status: number | undefined, contentEncoding: string | undefined): void {
    if (status === undefined || status < 200 || status > 299) {
      this.spoiled = true;
      return;
    }
    const decode = bodyDecoder(contentEncoding);
    if (decode === null) this.spoiled = true;
    else if (decode) this.decoder = decode((plain) => this.keep(plain), () => this.spoil());
  }

  /** A piece of the answer; at its end, the id of the conversation it created (undefined otherwise). */
  push(chunk: Buffer, end: boolean): string | undefined {
    if (this.spoiled) return undefined;
    if (this.decoder) {
      this.decoder.write(chunk);
      if (end) this.decoder.end();
    } else this.keep(chunk);
    if (!end || this.spoiled) return undefined;
    let answer: unknown;
    try {
      answer = JSON.parse(Buffer.concat(this.parts, this.bytes).toString('utf8'));
    } catch {
      return undefined;
    } finally {
      this.parts = [];
    }
    const o = answer as { id?: unknown; object?: unknown } | null;
    return o !== null && typeof o === 'object' && o.object === 'conversation' && typeof o.id === 'string' && o.id !== '' ? o.id : undefined;
  }

  private keep(plain: Buffer): void {
    if (this.spoiled) return;
    this.bytes += plain.length;
    if (this.bytes > MAX_ANSWER_BYTES) this.spoil();
    else this.parts.push(plain);
  }

  private spoil(): void {
    this.spoiled = true;
    this.parts = [];
  }
}
