// A text-to-speech request (`/v1/audio/speech`), read for what it asks to be spoken. Its answer is the audio
// itself, with no usage (unless asked for as SSE), and tts-1 bills by the character of `input`: the request is the
// only place the ledger can count what was billed. Kept as it passes; parsed only when its row is built.
import { withoutBom } from '../llm/parse-request.js';

/** The path whose request is read for the text it speaks, when it is routed through routing.unclassifiedPaths. */
export const SPEECH_PATH = '/v1/audio/speech';

/**
 * A speech request is a small JSON body (OpenAI takes up to 4,096 characters of `input`); one larger than this is
 * not kept, and its row is unpriced rather than counted from part of it.
 */
const MAX_SPEECH_BODY_BYTES = 1024 * 1024;

export interface SpeechText {
  /** The text to speak. */
  input: string;
  /** gpt-4o-mini-tts's instructions on how to speak it, read (and billed) as input tokens too; '' when none. */
  instructions: string;
}

export class SpeechRequest {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private over = false;
  private parsed: SpeechText | null | undefined;

  /** A piece of the body as it passes; copied, since the transport's buffer is not ours to keep. */
  push(chunk: Buffer): void {
    if (this.over || chunk.length === 0) return;
    this.bytes += chunk.length;
    if (this.bytes > MAX_SPEECH_BODY_BYTES) {
      this.over = true;
      this.chunks = [];
      return;
    }
    this.chunks.push(Buffer.from(chunk));
  }

  /** What the request asked to be spoken; undefined when the body was too large, not JSON, or had no `input` text. */
  text(): SpeechText | undefined {
    if (this.parsed === undefined) this.parsed = this.over ? null : parse(Buffer.concat(this.chunks));
    this.chunks = [];
    return this.parsed ?? undefined;
  }
}

function parse(body: Buffer): SpeechText | null {
  let json: unknown;
  try {
    // Read as the backend reads it: a leading byte order mark taken off (parse-request.ts).
    json = JSON.parse(withoutBom(body).toString('utf8'));
  } catch {
    return null;
  }
  if (typeof json !== 'object' || json === null) return null;
  const { input, instructions } = json as { input?: unknown; instructions?: unknown };
  if (typeof input !== 'string') return null;
  return { input, instructions: typeof instructions === 'string' ? instructions : '' };
}
