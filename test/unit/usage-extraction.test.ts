// Usage extraction against the recorded OpenAI transcripts: every SSE fixture split at every byte offset (and
// into single bytes, and with CRLF / CR line ends) must give exactly what the whole body gives.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it, vi } from 'vitest';
import { SseParser } from '../../src/llm/sse-parser.js';
import { ResponseUsageCollector, UNNAMED_ERROR, bodyKindFromBytes, bodyKindOf, type ResponseFacts } from '../../src/usage/response-usage.js';
import { readUsage, sumUsage } from '../../src/usage/usage.js';
import { AnswerAssembler } from '../../src/cache/answer.js';
import { MAX_CLIENT_TEXT } from '../../src/ledger/client-text.js';
import { FIXTURES } from '../helpers/shared-data.js';

const files = readdirSync(FIXTURES);
const sseFiles = files.filter((f) => f.endsWith('.response.sse'));
const jsonFiles = files.filter((f) => f.endsWith('.response.json'));

function collect(kind: 'json' | 'sse', pieces: readonly Buffer[]): ResponseFacts {
  const c = new ResponseUsageCollector(kind);
  for (const p of pieces) c.push(p);
  return c.finish();
}

describe('SSE fixtures', () => {
  it('covers every recorded stream', () => {
    expect(sseFiles.sort()).toEqual([
      'chat-streaming-detailed-usage.response.sse',
      'chat-streaming-web-search.response.sse',
      'chat-streaming.response.sse',
      'completion-streaming-usage.response.sse',
      'completion-streaming.response.sse',
    ]);
  });

  for (const file of sseFiles) {
    const body = readFileSync(join(FIXTURES, file));
    const whole = collect('sse', [body]);

    it(`${file}: the same facts when split at every byte offset`, () => {
      for (let i = 1; i < body.length; i++) {
        const facts = collect('sse', [body.subarray(0, i), body.subarray(i)]);
        if (JSON.stringify(facts) !== JSON.stringify(whole)) expect({ offset: i, facts }).toEqual({ offset: i, facts: whole });
      }
      expect(whole.complete).toBe(true);
      // Without a usage chunk the text is what an estimate counts; the detailed-usage stream spent all on reasoning.
      expect(whole.usage !== undefined || whole.outputText.length > 0).toBe(true);
    });

    it(`${file}: the same facts byte by byte, and with CRLF or CR line ends`, () => {
      const bytes = [...body].map((b) => Buffer.from([b]));
      expect(collect('sse', bytes)).toEqual(whole);
      const crlf = Buffer.from(body.toString('utf8').replace(/\n/g, '\r\n'));
      // CRLF split between CR and LF at every line end:
      const pieces: Buffer[] = [];
      let start = 0;
      for (let i = 0; i < crlf.length; i++) if (crlf[i] === 0x0d) (pieces.push(crlf.subarray(start, i + 1)), (start = i + 1));
      pieces.push(crlf.subarray(start));
      expect(collect('sse', pieces)).toEqual(whole);
      expect(collect('sse', [Buffer.from(body.toString('utf8').replace(/\n/g, '\r'))])).toEqual(whole);
    });
  }

  it('reads the detailed usage chunk: cached and reasoning tokens', () => {
    const f = collect('sse', [readFileSync(join(FIXTURES, 'chat-streaming-detailed-usage.response.sse'))]);
    expect(f.usage).toEqual({ inputTokens: 12, outputTokens: 100, totalTokens: 112, cachedInputTokens: 0, reasoningTokens: 100, audioInputTokens: 0, audioOutputTokens: 0, audioSeconds: 0, imageInputTokens: 0, imageOutputTokens: 0 });
    expect(f.model).toBe('gpt-5-nano-2025-08-07');
    expect(f.finishReason).toBe('length');
  });

  it('a stream that starts with a byte order mark reads the same, cut anywhere in the mark', () => {
    // A one-event stream (the whole answer and its usage in one event): keeping the mark lost that event.
    const one = Buffer.from(`data: ${JSON.stringify({ model: 'm', choices: [], usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } })}\n\n`);
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const plain = collect('sse', [one]);
    expect(plain.usage?.totalTokens).toBe(7);
    for (let cut = 0; cut <= 3; cut++) {
      const withMark = Buffer.concat([bom, one]);
      expect(collect('sse', [withMark.subarray(0, cut), withMark.subarray(cut)])).toEqual(plain);
    }
  });

  it('reads the legacy completions usage chunk', () => {
    const f = collect('sse', [readFileSync(join(FIXTURES, 'completion-streaming-usage.response.sse'))]);
    expect(f.usage).toEqual({ inputTokens: 31, outputTokens: 25, totalTokens: 56, cachedInputTokens: 0, reasoningTokens: 0, audioInputTokens: 0, audioOutputTokens: 0, audioSeconds: 0, imageInputTokens: 0, imageOutputTokens: 0 });
  });

  it('has no usage for streams sent without include_usage, but keeps the streamed text', () => {
    const f = collect('sse', [readFileSync(join(FIXTURES, 'chat-streaming.response.sse'))]);
    expect(f.usage).toBeUndefined();
    // The text is the concatenation of every delta.content, recomputed here line by line.
    const expected = readFileSync(join(FIXTURES, 'chat-streaming.response.sse'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('data: {'))
      .map((l) => (JSON.parse(l.slice(6)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '')
      .join('');
    expect(f.outputText).toBe(expected);
  });
});

describe('JSON fixtures', () => {
  for (const file of jsonFiles) {
    it(`${file}`, () => {
      const body = readFileSync(join(FIXTURES, file));
      const raw = JSON.parse(body.toString('utf8')) as { usage?: Record<string, number>; error?: { code: string }; model?: string; service_tier?: string };
      // Split in three anywhere: a BUFFERED body can still arrive as one message, STREAMED JSON in several.
      const a = Math.floor(body.length / 3);
      const f = collect('json', [body.subarray(0, a), body.subarray(a, 2 * a), body.subarray(2 * a)]);
      if (raw.error) {
        expect(f.errorCode).toBe(raw.error.code);
        expect(f.usage).toBeUndefined();
        return;
      }
      expect(f.usage?.inputTokens).toBe(raw.usage?.prompt_tokens);
      expect(f.usage?.totalTokens).toBe(raw.usage?.total_tokens);
      expect(f.usage?.outputTokens).toBe(raw.usage?.completion_tokens ?? 0);
      expect(f.model).toBe(raw.model);
      expect(f.serviceTier).toBe(raw.service_tier); // OpenAI's answers name it ("default"); the others do not
    });
  }

  it("OpenAI's recorded answers name their service tier, JSON and streamed, and it is read from both", () => {
    const named = jsonFiles.filter((f) => collect('json', [readFileSync(join(FIXTURES, f))]).serviceTier === 'default');
    expect(named.length).toBeGreaterThanOrEqual(10);
    expect(collect('sse', [readFileSync(join(FIXTURES, 'chat-streaming.response.sse'))]).serviceTier).toBe('default');
  });

  it('hand-checked values: reasoning, cached prompt tokens, embeddings', () => {
    const read = (name: string) => collect('json', [readFileSync(join(FIXTURES, name))]).usage;
    expect(read('chat-basic.response.json')).toEqual({ inputTokens: 8, outputTokens: 377, totalTokens: 385, cachedInputTokens: 0, reasoningTokens: 320, audioInputTokens: 0, audioOutputTokens: 0, audioSeconds: 0, imageInputTokens: 0, imageOutputTokens: 0 });
    expect(read('chat-multimodal.response.json')).toMatchObject({ inputTokens: 2245, outputTokens: 100, reasoningTokens: 100, audioInputTokens: 0, audioOutputTokens: 0, audioSeconds: 0, imageInputTokens: 0, imageOutputTokens: 0 });
    expect(read('embeddings-basic.response.json')).toEqual({ inputTokens: 7, outputTokens: 0, totalTokens: 7, cachedInputTokens: 0, reasoningTokens: 0, audioInputTokens: 0, audioOutputTokens: 0, audioSeconds: 0, imageInputTokens: 0, imageOutputTokens: 0 });
    expect(read('completion-basic.response.json')).toEqual({ inputTokens: 31, outputTokens: 25, totalTokens: 56, cachedInputTokens: 0, reasoningTokens: 0, audioInputTokens: 0, audioOutputTokens: 0, audioSeconds: 0, imageInputTokens: 0, imageOutputTokens: 0 });
  });

  it("OpenAI's recorded audio answers: the audio parts of their counts, as sent", () => {
    const read = (name: string) => collect('json', [readFileSync(join(FIXTURES, name))]).usage;
    // gpt-4o-mini-audio-preview speaking: 12 of its 18 output tokens are audio.
    expect(read('chat-text-to-audio.response.json')).toMatchObject({ inputTokens: 22, outputTokens: 18, audioInputTokens: 0, audioOutputTokens: 12, imageInputTokens: 0 });
    // gpt-4o-audio-preview listening: 1 of its 28 prompt tokens is audio.
    expect(read('chat-audio-to-text.response.json')).toMatchObject({ inputTokens: 28, outputTokens: 17, audioInputTokens: 1, audioOutputTokens: 0 });
  });

  it('keeps tool-call arguments as generated text when there is no usage to read', () => {
    const raw = JSON.parse(readFileSync(join(FIXTURES, 'chat-parallel-tools.response.json'), 'utf8')) as Record<string, unknown>;
    delete raw.usage;
    const f = collect('json', [Buffer.from(JSON.stringify(raw))]);
    expect(f.finishReason).toBe('tool_calls');
    const calls = (raw.choices as Array<{ message: { tool_calls: Array<{ function: { name: string; arguments: string } }> } }>)[0]?.message.tool_calls ?? [];
    expect(calls.length).toBeGreaterThan(0);
    expect(f.outputText).toBe(calls.map((c) => c.function.name + c.function.arguments).join(''));
    // With usage present the text is not kept at all: nothing would count it.
    expect(collect('json', [readFileSync(join(FIXTURES, 'chat-parallel-tools.response.json'))]).outputText).toBe('');
  });
});

describe('usage objects', () => {
  it("accepts vLLM's field order and extra fields", () => {
    const u = readUsage(JSON.parse('{"prompt_tokens":10,"total_tokens":30,"completion_tokens":20,"prompt_tokens_details":null}'));
    expect(u).toEqual({ inputTokens: 10, outputTokens: 20, totalTokens: 30, cachedInputTokens: 0, reasoningTokens: 0, audioInputTokens: 0, audioOutputTokens: 0, audioSeconds: 0, imageInputTokens: 0, imageOutputTokens: 0 });
  });

  it('a usage with only some of its counts: the others are 0, the total their sum unless given', () => {
    expect(readUsage({ prompt_tokens: 3, completion_tokens: 4 })).toMatchObject({ inputTokens: 3, outputTokens: 4, totalTokens: 7 });
    // A proxy that reports output only, or a total only, still reported usage: not a reason to estimate.
    expect(readUsage({ completion_tokens: 5 })).toMatchObject({ inputTokens: 0, outputTokens: 5, totalTokens: 5 });
    expect(readUsage({ completion_tokens: 5 })?.unmeasured).toBeUndefined();
    // A total alone: counted for the budget, but its split was never reported, so it cannot be priced.
    expect(readUsage({ total_tokens: 9 })).toMatchObject({ inputTokens: 0, outputTokens: 0, totalTokens: 9, unmeasured: { input: true, output: true } });
    expect(readUsage({ total_tokens: 0 })?.unmeasured).toBeUndefined();
    expect(readUsage({ prompt_tokens: 0, total_tokens: 9 })?.unmeasured).toBeUndefined();
    expect(sumUsage(3, 4).totalTokens).toBe(7);
  });

  it('reads cached prompt tokens', () => {
    expect(readUsage({ prompt_tokens: 2000, completion_tokens: 5, total_tokens: 2005, prompt_tokens_details: { cached_tokens: 1920 } })?.cachedInputTokens).toBe(1920);
  });

  it('rejects what is not a usage object', () => {
    for (const v of [null, 'x', 3, [], {}, { prompt_tokens: -1 }, { prompt_tokens: 'many' }]) expect(readUsage(v)).toBeUndefined();
    // Seconds count only in a usage that says it is billed by duration, and never below zero.
    for (const v of [{ seconds: 5 }, { type: 'tokens', seconds: 5 }, { type: 'duration', seconds: -1 }, { type: 'duration' }]) expect(readUsage(v), JSON.stringify(v)).toBeUndefined();
  });

  it('reads the audio parts of the counts, as chat, the Responses API and transcriptions spell them', () => {
    const chat = readUsage({ prompt_tokens: 100, completion_tokens: 50, total_tokens: 150, prompt_tokens_details: { cached_tokens: 10, audio_tokens: 60 }, completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 40 } });
    expect(chat).toMatchObject({ inputTokens: 100, cachedInputTokens: 10, audioInputTokens: 60, audioOutputTokens: 40, audioSeconds: 0, imageInputTokens: 0, imageOutputTokens: 0 });
    expect(readUsage({ input_tokens: 100, output_tokens: 5, input_tokens_details: { audio_tokens: 30 } })?.audioInputTokens).toBe(30);
    // A transcription's details are singular (input_token_details), its text tokens the rest of the input.
    const stt = readUsage({ type: 'tokens', input_tokens: 14, input_token_details: { text_tokens: 4, audio_tokens: 10 }, output_tokens: 45, total_tokens: 59 });
    expect(stt).toMatchObject({ inputTokens: 14, outputTokens: 45, totalTokens: 59, audioInputTokens: 10, audioOutputTokens: 0 });
    // whisper-1 (and vLLM's transcriptions) report the audio's duration instead of tokens.
    expect(readUsage({ type: 'duration', seconds: 12.5 })).toEqual({ inputTokens: 0, outputTokens: 0, totalTokens: 0, cachedInputTokens: 0, reasoningTokens: 0, audioInputTokens: 0, audioOutputTokens: 0, audioSeconds: 12.5, imageInputTokens: 0, imageOutputTokens: 0 });
    // A part is never more than its whole, and a detail of null is none.
    expect(readUsage({ prompt_tokens: 10, completion_tokens: 1, prompt_tokens_details: { audio_tokens: 50 }, completion_tokens_details: { audio_tokens: null } })).toMatchObject({ audioInputTokens: 10, audioOutputTokens: 0 });
    // An image model's usage (gpt-image-1): images in and out, beside the audio parts and never above what is left.
    expect(readUsage({ input_tokens: 50, input_tokens_details: { text_tokens: 10, image_tokens: 40 }, output_tokens: 4160, output_tokens_details: { image_tokens: 4100, text_tokens: 60 }, total_tokens: 4210 })).toMatchObject({ imageInputTokens: 40, imageOutputTokens: 4100 });
    expect(readUsage({ prompt_tokens: 10, prompt_tokens_details: { audio_tokens: 8, image_tokens: 8 } })).toMatchObject({ audioInputTokens: 8, imageInputTokens: 2 });
    expect(readUsage({ prompt_tokens: 1, completion_tokens: 10, completion_tokens_details: { audio_tokens: 6, image_tokens: 8 } })).toMatchObject({ audioOutputTokens: 6, imageOutputTokens: 4 });
    // Each detail comes from the first object that gives it.
    expect(readUsage({ prompt_tokens: 10, prompt_tokens_details: { audio_tokens: 3 }, input_tokens_details: { cached_tokens: 4 } })).toMatchObject({ cachedInputTokens: 4, audioInputTokens: 3 });
  });

  it("a speech stream's last event: its output tokens are the audio it spoke, however the stream is cut", () => {
    const body = Buffer.from(
      'data: {"type":"speech.audio.delta","audio":"SUQzBAAAAAAA"}\n\n' + 'data: {"type":"speech.audio.done","usage":{"input_tokens":14,"output_tokens":101,"total_tokens":115}}\n\n',
    );
    for (let i = 1; i < body.length; i++) {
      const facts = collect('sse', [body.subarray(0, i), body.subarray(i)]);
      expect(facts.usage, `cut at ${i}`).toMatchObject({ inputTokens: 14, outputTokens: 101, audioOutputTokens: 101, audioInputTokens: 0 });
      expect(facts.outputText).toBe(''); // the base64 audio is not generated text
    }
    // A chat chunk's output tokens are not audio unless its details say so.
    expect(collect('sse', [Buffer.from('data: {"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":5}}\n\n')]).usage?.audioOutputTokens).toBe(0);
  });

  it('sorts content types', () => {
    expect(bodyKindOf('text/event-stream; charset=utf-8')).toBe('sse');
    expect(bodyKindOf('application/json')).toBe('json');
    expect(bodyKindOf(undefined)).toBe('other');
  });

  it('tells a body that came without its headers by its first bytes', () => {
    // Every recorded answer: the streams as SSE (a streamed request), the whole answers as JSON (either).
    for (const f of sseFiles) expect(bodyKindFromBytes(readFileSync(join(FIXTURES, f)), true), f).toBe('sse');
    for (const f of jsonFiles) for (const streamed of [false, true]) expect(bodyKindFromBytes(readFileSync(join(FIXTURES, f)), streamed), f).toBe('json');
    // SSE's other fields and comments start a stream too; a request that asked for none gets none.
    for (const first of ['event: x', 'id: 1', 'retry: 5', ': ping']) expect(bodyKindFromBytes(Buffer.from(`${first}\n\n`), true)).toBe('sse');
    expect(bodyKindFromBytes(Buffer.from('data: {}\n\n'), false)).toBe('other');
    // Compressed bytes (the coding is a header's to say) and audio are not read.
    expect(bodyKindFromBytes(gzipSync('data: {}\n\n'), true)).toBe('other');
    expect(bodyKindFromBytes(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00]), true)).toBe('other');
    expect(bodyKindFromBytes(Buffer.from('ID3\x04'), false)).toBe('other');
    // Whitespace alone says nothing yet.
    expect(bodyKindFromBytes(Buffer.from(' \r\n\t'), true)).toBeUndefined();
    expect(bodyKindFromBytes(Buffer.alloc(0), false)).toBeUndefined();
    expect(bodyKindFromBytes(Buffer.from('\n {"error":{}}'), true)).toBe('json');
  });
});

describe('SSE parser details', () => {
  const events = (pieces: string[] | Buffer[]) => {
    const out: Array<{ type: string; data: string }> = [];
    const p = new SseParser((e) => out.push(e));
    for (const x of pieces) p.push(Buffer.isBuffer(x) ? x : Buffer.from(x));
    p.end();
    return out;
  };

  it('skips comments, joins multi-line data, reads event types and data without a space', () => {
    expect(events([': keep-alive\n\nevent: error\ndata:{"a":\ndata: 1}\n\ndata: [DONE]\n\n'])).toEqual([
      { type: 'error', data: '{"a":\n1}' },
      { type: 'message', data: '[DONE]' },
    ]);
  });

  it('keeps a UTF-8 character split across chunks whole', () => {
    const text = Buffer.from('data: {"choices":[{"delta":{"content":"안녕 🌏"}}]}\n\n');
    const cut = text.indexOf(Buffer.from('녕')) + 1; // inside the 3-byte sequence
    for (const at of [cut, cut + 1, text.indexOf(Buffer.from('🌏')) + 2]) {
      expect(events([text.subarray(0, at), text.subarray(at)])).toEqual([{ type: 'message', data: '{"choices":[{"delta":{"content":"안녕 🌏"}}]}' }]);
    }
  });

  it('dispatches a last event that lacks its blank line', () => {
    expect(events(['data: {"usage":{"prompt_tokens":1}}'])).toEqual([{ type: 'message', data: '{"usage":{"prompt_tokens":1}}' }]);
  });

  it('joins a line cut into many chunks once, when it ends (joining at every chunk was quadratic: ~30 s for 16 MiB)', () => {
    const concat = vi.spyOn(Buffer, 'concat');
    try {
      const out: Array<{ type: string; data: string }> = [];
      const p = new SseParser((e) => out.push(e));
      const value = 'x'.repeat(100_000);
      const text = Buffer.from(`data: ${value}\n\n`);
      for (let at = 0; at < text.length; at += 1000) p.push(text.subarray(at, at + 1000));
      p.end();
      expect(out).toEqual([{ type: 'message', data: value }]);
      expect(concat).toHaveBeenCalledTimes(1);
    } finally {
      concat.mockRestore();
    }
  });

  describe('an event larger than its bound', () => {
    const MAX = 64;
    const big = `data: ${'y'.repeat(100)}\n`;
    const stream = `data: first\n\nevent: huge\n${big}data: more\n\ndata: after\n\n`;
    const run = (pieces: Buffer[]) => {
      const out: Array<{ type: string; data: string }> = [];
      let dropped = 0;
      const p = new SseParser((e) => out.push(e), MAX, () => dropped++);
      for (const x of pieces) p.push(x);
      p.end();
      return { out, dropped };
    };
    const expected = { out: [{ type: 'message', data: 'first' }, { type: 'message', data: 'after' }], dropped: 1 };

    it('is dropped whole, reported once, and the events after it are read, wherever the chunks are cut', () => {
      const body = Buffer.from(stream);
      expect(run([body])).toEqual(expected);
      for (let i = 1; i < body.length; i++) {
        const got = run([body.subarray(0, i), body.subarray(i)]);
        if (JSON.stringify(got) !== JSON.stringify(expected)) expect({ offset: i, got }).toEqual({ offset: i, got: expected });
      }
      expect(run([...body].map((b) => Buffer.from([b])))).toEqual(expected);
    });

    it('with CRLF line ends as well', () => {
      const body = Buffer.from(stream.replaceAll('\n', '\r\n'));
      for (let i = 1; i < body.length; i++) {
        const got = run([body.subarray(0, i), body.subarray(i)]);
        if (JSON.stringify(got) !== JSON.stringify(expected)) expect({ offset: i, got }).toEqual({ offset: i, got: expected });
      }
    });

    it('counts many small data lines of one event too', () => {
      expect(run([Buffer.from(`${'data: 0123456789\n'.repeat(10)}\ndata: after\n\n`)])).toEqual({ out: [{ type: 'message', data: 'after' }], dropped: 1 });
    });

    it('in a response: its usage is lost (so estimated), the answer is spoiled for the cache, nothing throws', () => {
      let spoiled = false;
      const usage = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 };
      const c = new ResponseUsageCollector('sse', 200, { body: () => undefined, chunk: () => undefined, spoil: () => (spoiled = true) });
      c.push(Buffer.from(`data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: ${JSON.stringify({ choices: [], usage, pad: 'z'.repeat(300) })}\n\ndata: [DONE]\n\n`));
      expect(c.finish()).toMatchObject({ usage: undefined, outputText: 'Hi', complete: true });
      expect(spoiled).toBe(true);
      const small = new ResponseUsageCollector('sse', 200);
      small.push(Buffer.from(`data: ${JSON.stringify({ choices: [], usage })}\n\ndata: [DONE]\n\n`));
      expect(small.finish().usage).toMatchObject({ inputTokens: 3, outputTokens: 2, totalTokens: 5 });
    });
  });

  // vLLM's code is the HTTP status as a number; its type names the error. Older vLLM sends the error as the body.
  it.each([
    ['OpenAI: a string code', { error: { message: 'x', type: 'invalid_request_error', code: 'context_length_exceeded' } }, 'context_length_exceeded'],
    ['OpenAI: code null, so the type', { error: { message: 'x', type: 'server_error', code: null } }, 'server_error'],
    ['vLLM: a numeric code, so the type', { error: { message: 'x', type: 'BadRequestError', param: null, code: 400 } }, 'BadRequestError'],
    ['older vLLM: the error is the body', { object: 'error', message: 'x', type: 'NotFoundError', param: null, code: 404 }, 'NotFoundError'],
    ['nothing names it', { error: { message: 'x', code: 503 } }, UNNAMED_ERROR],
  ])('names an error body: %s', (_name, body, code) => {
    expect(collect('json', [Buffer.from(JSON.stringify(body))]).errorCode).toBe(code);
  });

  it('an empty code is no name: the type is used', () => {
    expect(collect('json', [Buffer.from('{"error":{"message":"x","type":"server_error","code":""}}')]).errorCode).toBe('server_error');
  });

  it('names an error event by its type when its code is a number (vLLM mid-stream)', () => {
    const sse = 'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: {"error":{"message":"x","type":"InternalServerError","param":null,"code":500}}\n\n';
    expect(collect('sse', [Buffer.from(sse)]).errorCode).toBe('InternalServerError');
  });

  it("counts a reasoning model's thinking once when it comes under both names (vLLM), once each when the texts differ", () => {
    const delta = (d: Record<string, unknown>) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: d }] })}\n\n`;
    const both = delta({ reasoning: 'Think ', reasoning_content: 'Think ' }) + delta({ reasoning: 'hard.', reasoning_content: 'hard.' }) + delta({ content: 'Yes.' });
    expect(collect('sse', [Buffer.from(`${both}data: [DONE]\n\n`)]).outputText).toBe('Think hard.Yes.');
    expect(collect('sse', [Buffer.from(`${delta({ reasoning_content: 'Old name.' })}data: [DONE]\n\n`)]).outputText).toBe('Old name.');
    expect(collect('sse', [Buffer.from(`${delta({ reasoning: 'a', reasoning_content: 'b' })}data: [DONE]\n\n`)]).outputText).toBe('ab');
  });

  it('reads an error event sent mid-stream', () => {
    const c = new ResponseUsageCollector('sse');
    c.push(Buffer.from('data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: {"error":{"message":"overloaded","type":"server_error","code":null}}\n\n'));
    const f = c.finish();
    expect(f.errorCode).toBe('server_error');
    expect(f.outputText).toBe('Hi');
    expect(f.complete).toBe(false);
  });
});

describe('the generated text kept for an estimate, as real streams send it', () => {
  const sse = (...deltas: Array<Record<string, unknown>>) =>
    Buffer.from(deltas.map((d) => `data: ${JSON.stringify({ model: 'm', choices: [{ index: 0, ...d }] })}\n\n`).join('') + 'data: [DONE]\n\n');

  it("a streamed tool call: its name in the first delta only, its arguments in pieces after (OpenAI's and vLLM's shape)", () => {
    const call = (f: Record<string, unknown>) => ({ delta: { tool_calls: [{ index: 0, function: f }] }, finish_reason: null });
    const f = collect('sse', [sse(call({ name: 'get_weather', arguments: '' }), call({ arguments: '{"city":' }), call({ arguments: '"Seoul"}' }), { delta: {}, finish_reason: 'tool_calls' })]);
    expect(f.outputText).toBe('get_weather{"city":"Seoul"}');
    expect(f.finishReason).toBe('tool_calls');
    expect(f.complete).toBe(true);
  });

  it('thinking under the new name alone, and a refusal, are generated text', () => {
    expect(collect('sse', [sse({ delta: { reasoning: 'Hmm.' } }, { delta: { content: 'Yes.' } })]).outputText).toBe('Hmm.Yes.');
    expect(collect('sse', [sse({ delta: { refusal: "I can't help with that." } })]).outputText).toBe("I can't help with that.");
  });

  it('a null finish_reason after the real one does not erase it', () => {
    expect(collect('sse', [sse({ delta: { content: 'a' }, finish_reason: 'length' }, { delta: {}, finish_reason: null })]).finishReason).toBe('length');
  });

  it('a JSON answer without usage: content as parts, legacy completions text, and entries that are not choices', () => {
    const parts = { model: 'm', choices: [{ message: { role: 'assistant', content: [{ type: 'text', text: 'One ' }, { type: 'image_url' }, { type: 'text', text: 'two.' }] }, finish_reason: 'stop' }] };
    expect(collect('json', [Buffer.from(JSON.stringify(parts))]).outputText).toBe('One two.');
    const legacy = { object: 'text_completion', model: 'm', choices: [null, { index: 0, text: 'Once upon', finish_reason: 'length' }] };
    const f = collect('json', [Buffer.from(JSON.stringify(legacy))]);
    expect([f.outputText, f.finishReason, f.complete]).toEqual(['Once upon', 'length', true]);
  });

  it('an empty model name does not hide the one a later chunk gives', () => {
    const body = Buffer.from(`data: {"model":"","choices":[{"delta":{"content":"a"}}]}\n\ndata: {"model":"served-7b","choices":[]}\n\n`);
    expect(collect('sse', [body]).model).toBe('served-7b');
  });

  it('a JSON body of exactly its bound is read; one byte more is not, and says so', () => {
    const body = Buffer.from('{"model":"m","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}');
    const read = (max: number) => {
      const c = new ResponseUsageCollector('json', max);
      c.push(body.subarray(0, 10));
      c.push(body.subarray(10));
      return c.finish();
    };
    expect(read(body.length)).toMatchObject({ unread: false, complete: true, model: 'm', usage: { inputTokens: 3, outputTokens: 4 } });
    expect(read(body.length - 1)).toMatchObject({ unread: true, complete: false, model: undefined, usage: undefined });
  });

  it('a body read only for its members (embeddings) that is not a JSON object gives nothing, throws nothing, and is unread', () => {
    for (const text of ['[1,2,3]', 'not json', '{"model":"m","usage":{"prompt_tokens":3']) {
      const c = new ResponseUsageCollector('json', undefined, undefined, undefined, true);
      c.push(Buffer.from(text));
      expect(c.finish()).toMatchObject({ complete: false, usage: undefined, model: undefined, unread: true });
    }
    // An empty body hid nothing.
    const empty = new ResponseUsageCollector('json', undefined, undefined, undefined, true);
    empty.push(Buffer.alloc(0), true);
    expect(empty.finish()).toMatchObject({ complete: false, unread: false });
  });

  it('a JSON answer kept whole that does not parse, or is not an object, is unread: what it generated was not seen', () => {
    for (const text of ['{"id":"x","choices":[{"message":{"content":"hel', 'not json', '[1,2,3]', '"text"', 'null']) {
      const facts = collect('json', [Buffer.from(text)]);
      expect(facts, text).toMatchObject({ complete: false, usage: undefined, unread: true, outputText: '' });
    }
    // A whole object is read, and an empty body is not unread (nothing was there to read).
    expect(collect('json', [Buffer.from('{"id":"x","choices":[]}')])).toMatchObject({ complete: true, unread: false });
    expect(collect('json', [])).toMatchObject({ complete: false, unread: false });
  });
});

describe("strings a backend sends that tiergate keeps", () => {
  const long = 'm'.repeat(100_000);

  it('the model, the service tier and the error code are bounded as a client\'s strings are (the row holds them)', () => {
    const facts = collect('json', [Buffer.from(JSON.stringify({ object: 'chat.completion', model: long, service_tier: long, choices: [], error: { code: long } }))]);
    expect(facts.model?.length).toBe(MAX_CLIENT_TEXT);
    expect(facts.serviceTier?.length).toBe(MAX_CLIENT_TEXT);
    expect(facts.model?.startsWith('mmm')).toBe(true);
    expect(facts.errorCode?.length).toBe(MAX_CLIENT_TEXT);
    const sse = collect('sse', [Buffer.from(`event: error\ndata: ${JSON.stringify({ type: 'error', code: long })}\n\n`)]);
    expect(sse.errorCode?.length).toBe(MAX_CLIENT_TEXT);
    // Short ones are kept as they are.
    expect(collect('json', [Buffer.from(JSON.stringify({ object: 'chat.completion', model: 'm-1', choices: [] }))]).model).toBe('m-1');
  });

  it('an answer whose model name is that long is not cached', () => {
    const a = new AnswerAssembler(10_000);
    a.body({ object: 'chat.completion', model: long, choices: [{ index: 0, message: { role: 'assistant', content: 'Hi' }, finish_reason: 'stop' }] });
    expect(a.answer()).toBeUndefined();
  });
});

describe('Responses API bodies', () => {
  const ev = (o: Record<string, unknown>) => `event: ${String(o.type)}\ndata: ${JSON.stringify(o)}\n\n`;
  const usage = { input_tokens: 12, input_tokens_details: { cached_tokens: 4 }, output_tokens: 7, output_tokens_details: { reasoning_tokens: 3 }, total_tokens: 19 };
  const stream =
    ev({ type: 'response.created', sequence_number: 0, response: { object: 'response', model: 'm-1', status: 'in_progress', usage: null, error: null } }) +
    ev({ type: 'response.reasoning_summary_text.delta', sequence_number: 1, delta: 'Thinking. ' }) +
    ev({ type: 'response.output_text.delta', sequence_number: 2, delta: 'Hel' }) +
    ev({ type: 'response.audio.delta', sequence_number: 3, delta: 'QUJDRA==' }) +
    ev({ type: 'response.output_text.delta', sequence_number: 4, delta: 'lo' }) +
    ev({ type: 'response.function_call_arguments.delta', sequence_number: 5, delta: '{"a":1}' }) +
    ev({ type: 'response.completed', sequence_number: 6, response: { object: 'response', model: 'm-1', status: 'completed', usage, error: null } });

  it('a stream: usage and model from response.completed, text from the text deltas only, complete without [DONE]', () => {
    const facts = collect('sse', [Buffer.from(stream)]);
    expect(facts).toMatchObject({
      usage: { inputTokens: 12, outputTokens: 7, totalTokens: 19, cachedInputTokens: 4, reasoningTokens: 3, audioInputTokens: 0, audioOutputTokens: 0, audioSeconds: 0, imageInputTokens: 0, imageOutputTokens: 0 },
      model: 'm-1',
      errorCode: undefined,
      outputText: 'Thinking. Hello{"a":1}',
      complete: true,
    });
  });

  it("the service tier is the final event's: the first repeats what the request asked for", () => {
    const tiered = stream.replace('"model":"m-1","status":"in_progress"', '"model":"m-1","service_tier":"auto","status":"in_progress"').replace('"model":"m-1","status":"completed"', '"model":"m-1","service_tier":"priority","status":"completed"');
    expect(tiered).not.toBe(stream);
    expect(collect('sse', [Buffer.from(tiered)]).serviceTier).toBe('priority');
    expect(collect('sse', [Buffer.from(stream)]).serviceTier).toBeUndefined();
  });

  it('the same facts when split at every byte offset', () => {
    const body = Buffer.from(stream);
    const whole = collect('sse', [body]);
    for (let i = 1; i < body.length; i++) {
      const facts = collect('sse', [body.subarray(0, i), body.subarray(i)]);
      if (JSON.stringify(facts) !== JSON.stringify(whole)) expect({ offset: i, facts }).toEqual({ offset: i, facts: whole });
    }
  });

  it("hosted tool calls are counted from the final response's output items, JSON or streamed; a client's own calls are not", () => {
    const output = [
      { type: 'web_search_call', id: 'ws_1', status: 'completed', action: { type: 'search', query: 'weather' } },
      { type: 'reasoning', summary: [] },
      { type: 'web_search_call', id: 'ws_2', status: 'completed' },
      { type: 'file_search_call', id: 'fs_1', status: 'completed', queries: ['q'] },
      { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' },
      { type: 'custom_tool_call', call_id: 'c2', name: 'g', input: 'x' },
      // A coding agent's shell and patches, and computer use, run on the client's machine.
      { type: 'local_shell_call', call_id: 'c3', action: { type: 'exec', command: ['ls'] }, status: 'completed' },
      { type: 'shell_call', call_id: 'c4', action: { commands: ['ls'] }, status: 'completed' },
      { type: 'apply_patch_call', call_id: 'c5', operation: { type: 'update_file', path: 'a.ts', diff: '' }, status: 'completed' },
      { type: 'computer_call', call_id: 'c6', action: { type: 'screenshot' }, status: 'completed' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Sunny.' }] },
    ];
    const want = { web_search_call: 2, file_search_call: 1 };
    expect(collect('json', [Buffer.from(JSON.stringify({ object: 'response', model: 'm-1', status: 'completed', output, usage }))]).toolCalls).toEqual(want);
    // The first event (and items announced as they finish) are not counted again: only the final response's list.
    const streamed =
      ev({ type: 'response.created', response: { object: 'response', model: 'm-1', status: 'in_progress', output: [], usage: null } }) +
      ev({ type: 'response.output_item.done', output_index: 0, item: output[0] }) +
      ev({ type: 'response.completed', response: { object: 'response', model: 'm-1', status: 'completed', output, usage } });
    expect(collect('sse', [Buffer.from(streamed)]).toolCalls).toEqual(want);
    expect(collect('sse', [Buffer.from(stream)]).toolCalls).toBeUndefined();
  });

  it('sealed items (encrypted_content) are read from a JSON answer, a compaction, and a stream as each item is done, once each', () => {
    const sealed = (n: number) => ({ type: 'reasoning', id: `rs_${n}`, summary: [], encrypted_content: `gAAAA${n}` });
    const compaction = { type: 'compaction', id: 'cmp_1', encrypted_content: 'gAAAAc' };
    const output = [sealed(1), { type: 'reasoning', summary: [] }, { type: 'reasoning', encrypted_content: '' }, { type: 'message', role: 'assistant', content: [] }, compaction, sealed(2)];
    const take = (kind: 'json' | 'sse', body: unknown) => {
      const c = new ResponseUsageCollector(kind);
      c.push(Buffer.from(JSON.stringify(body)), true);
      c.finish();
      return c;
    };
    const json = take('json', { object: 'response', status: 'completed', output, usage });
    expect(json.takeSealedItems()).toEqual(['gAAAA1', 'gAAAAc', 'gAAAA2']);
    expect(json.takeSealedItems()).toBeUndefined(); // taken once
    const compacted = take('json', { id: 'cmp_r', object: 'response.compaction', output: [{ type: 'message', role: 'user', content: [] }, compaction], usage });
    expect(compacted.takeSealedItems()).toEqual(['gAAAAc']);
    const sse = new ResponseUsageCollector('sse');
    sse.push(Buffer.from(ev({ type: 'response.output_item.done', output_index: 0, item: sealed(1) })));
    // Known as soon as its item is done, before the stream ends.
    expect(sse.takeSealedItems()).toEqual(['gAAAA1']);
    sse.push(Buffer.from(ev({ type: 'response.completed', response: { object: 'response', status: 'completed', output, usage } })));
    expect(sse.takeSealedItems()).toEqual(['gAAAAc', 'gAAAA2']);
    // At most 64 per answer.
    expect(take('json', { object: 'response', status: 'completed', output: Array.from({ length: 100 }, (_, i) => sealed(i)), usage }).takeSealedItems()).toHaveLength(64);
  });

  it('the tool call types are bounded like any string a backend sends, and so is how many are kept', () => {
    const output = [{ type: `${'x'.repeat(5000)}_call` }, ...Array.from({ length: 40 }, (_, i) => ({ type: `t${i}_call` }))];
    const calls = collect('json', [Buffer.from(JSON.stringify({ object: 'response', status: 'completed', output, usage }))]).toolCalls ?? {};
    expect(Object.keys(calls)).toHaveLength(16);
    expect(Math.max(...Object.keys(calls).map((k) => k.length))).toBeLessThan(300);
  });

  it('a stream cut before its final event is not complete', () => {
    const cut = stream.slice(0, stream.indexOf('event: response.completed'));
    expect(collect('sse', [Buffer.from(cut)])).toMatchObject({ usage: undefined, complete: false, outputText: 'Thinking. Hello{"a":1}' });
  });

  it('failed and error events give their codes', () => {
    const failed = ev({ type: 'response.failed', response: { object: 'response', status: 'failed', error: { code: 'server_error', message: 'x' }, usage: null } });
    expect(collect('sse', [Buffer.from(failed)])).toMatchObject({ errorCode: 'server_error', complete: true });
    expect(collect('sse', [Buffer.from(ev({ type: 'error', code: null, message: 'x' }))])).toMatchObject({ errorCode: 'upstream_error' });
  });

  it('a chat chunk with a type field of its own is still read as chat', () => {
    // vLLM's in-stream error object carries `type` (an exception name), not a Responses event type.
    const chunk = `data: ${JSON.stringify({ object: 'error', type: 'BadRequestError', error: { code: 'bad' }, choices: [{ index: 0, delta: { content: 'x' } }] })}\n\n`;
    expect(collect('sse', [Buffer.from(chunk)])).toMatchObject({ errorCode: 'bad', outputText: 'x' });
  });

  it('a JSON response: usage read; without usage, the text of its output items is kept for the estimate', () => {
    const output = [
      { type: 'reasoning', summary: [{ type: 'summary_text', text: 'Plan. ' }] },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Answer. ' }, { type: 'refusal', refusal: 'No. ' }] },
      { type: 'function_call', name: 'f', arguments: '{"q":1}' },
    ];
    const body = (u: unknown) => Buffer.from(JSON.stringify({ object: 'response', model: 'm-2', status: 'completed', error: null, output, usage: u }));
    expect(collect('json', [body(usage)])).toMatchObject({ usage: { totalTokens: 19 }, model: 'm-2', outputText: '', complete: true });
    expect(collect('json', [body(null)])).toMatchObject({ usage: undefined, outputText: 'Plan. Answer. No. {"q":1}' });
  });
});
