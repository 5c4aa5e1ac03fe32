// A chat completion as the cache keeps it, whatever wire format it arrived in, and its replay in the wire format
// the asking client wants: a `chat.completion` JSON body, or well-formed SSE chunks ending in `data: [DONE]`.
import { randomBytes } from 'node:crypto';
import { MAX_CLIENT_TEXT } from '../ledger/client-text.js';

export interface CachedToolCall {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}

export interface CachedChoice {
  index: number;
  content: string | null;
  refusal: string | null;
  toolCalls: CachedToolCall[];
  finishReason: string;
  /**
   * A reasoning model's thinking, by the field the backend sent it in: vLLM's parsers send `reasoning` (and,
   * while it is deprecated, the same text again as `reasoning_content`), DeepSeek's API `reasoning_content`.
   * Replayed under the same names. Absent in entries stored before it was kept, and when there was none.
   */
  reasoning?: Partial<Record<ReasoningField, string>>;
}

/** The fields reasoning backends put their thinking in, on a message and on a stream's delta. */
const REASONING_FIELDS = ['reasoning', 'reasoning_content'] as const;
type ReasoningField = (typeof REASONING_FIELDS)[number];

/** OpenAI's usage object as the backend reported it (kept verbatim so a replay reports the same numbers). */
export type WireUsage = Record<string, unknown>;

export interface CachedAnswer {
  /** The model that produced the answer (the response's `model`). */
  model: string;
  systemFingerprint: string | null;
  choices: CachedChoice[];
  usage: WireUsage | null;
}

/** Finish reasons of an answer that completed normally: anything else (tool_calls, content_filter, …) is not stored. */
const STORABLE_FINISH = new Set(['stop', 'length']);

/**
 * Builds a CachedAnswer from a `chat.completion` body or from `chat.completion.chunk` events, fed the objects
 * the usage collector already parsed (nothing is parsed twice). `answer()` is undefined unless the response was
 * complete and every choice finished with stop or length.
 */
export class AnswerAssembler {
  private model: string | undefined;
  private fingerprint: string | null = null;
  private usage: WireUsage | null = null;
  private readonly choices = new Map<
    number,
    { content: string[]; refusal: string[]; reasoning: Map<ReasoningField, string[]>; calls: Map<number, CachedToolCall>; finish: string | undefined; sawContent: boolean }
  >();
  private broken = false;
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** A whole `chat.completion` body. */
  body(o: Record<string, unknown>): void {
    this.common(o);
    for (const c of arrayOf(o.choices)) {
      if (!isObject(c) || !isObject(c.message)) {
        this.broken = true;
        continue;
      }
      const ch = this.choice(c.index);
      this.addMessage(ch, c.message, false);
      if (typeof c.finish_reason === 'string') ch.finish = c.finish_reason;
    }
  }

  /** One `chat.completion.chunk` event. */
  chunk(o: Record<string, unknown>): void {
    this.common(o);
    for (const c of arrayOf(o.choices)) {
      if (!isObject(c)) continue;
      const ch = this.choice(c.index);
      if (isObject(c.delta)) this.addMessage(ch, c.delta, true);
      if (typeof c.finish_reason === 'string') ch.finish = c.finish_reason;
    }
  }

  /** The response carried an error, or something this assembler cannot reproduce faithfully. */
  spoil(): void {
    this.broken = true;
  }

  answer(): CachedAnswer | undefined {
    if (this.broken || this.model === undefined || this.choices.size === 0 || this.bytes > this.maxBytes) return undefined;
    const choices: CachedChoice[] = [];
    for (const [index, ch] of [...this.choices].sort((a, b) => a[0] - b[0])) {
      if (ch.finish === undefined || !STORABLE_FINISH.has(ch.finish)) return undefined;
      const choice: CachedChoice = {
        index,
        content: ch.sawContent ? ch.content.join('') : null,
        refusal: ch.refusal.length > 0 ? ch.refusal.join('') : null,
        toolCalls: [...ch.calls].sort((a, b) => a[0] - b[0]).map(([, c]) => c),
        finishReason: ch.finish,
      };
      if (ch.reasoning.size > 0) choice.reasoning = Object.fromEntries([...ch.reasoning].map(([k, parts]) => [k, parts.join('')]));
      choices.push(choice);
    }
    return { model: this.model, systemFingerprint: this.fingerprint, choices, usage: this.usage };
  }

  private common(o: Record<string, unknown>): void {
    if (isObject(o.error)) this.broken = true;
    if (this.model === undefined && typeof o.model === 'string' && o.model.length > 0) {
      // Replayed as it came: a model name longer than any real one is not worth an entry (nor its bytes).
      if (o.model.length > MAX_CLIENT_TEXT) this.broken = true;
      else this.model = o.model;
    }
    if (typeof o.system_fingerprint === 'string') this.fingerprint = o.system_fingerprint;
    if (isObject(o.usage)) this.usage = countsOf(o.usage, 1);
  }

  private choice(index: unknown) {
    const i = typeof index === 'number' && Number.isInteger(index) && index >= 0 ? index : 0;
    let ch = this.choices.get(i);
    if (!ch) {
      ch = { content: [], refusal: [], reasoning: new Map(), calls: new Map(), finish: undefined, sawContent: false };
      this.choices.set(i, ch);
    }
    return ch;
  }

  private addMessage(ch: ReturnType<AnswerAssembler['choice']>, m: Record<string, unknown>, delta: boolean): void {
    // Audio, and anything that is neither text nor tool calls, cannot be replayed from this record.
    if (m.audio != null || (Array.isArray(m.content) && m.content.length > 0)) this.broken = true;
    if (typeof m.content === 'string') {
      ch.sawContent = true;
      ch.content.push(m.content);
      this.bytes += m.content.length;
    }
    if (typeof m.refusal === 'string') {
      ch.refusal.push(m.refusal);
      this.bytes += m.refusal.length;
    }
    for (const f of REASONING_FIELDS) {
      const r = m[f];
      if (typeof r !== 'string') continue;
      let parts = ch.reasoning.get(f);
      if (!parts) ch.reasoning.set(f, (parts = []));
      parts.push(r);
      this.bytes += r.length;
    }
    const calls = arrayOf(m.tool_calls);
    calls.forEach((raw, pos) => {
      if (!isObject(raw)) return;
      // Stream deltas name their call by `index`; whole messages list calls in order.
      const i = delta && typeof raw.index === 'number' ? raw.index : pos;
      let call = ch.calls.get(i);
      if (!call) {
        call = { id: '', type: 'function', function: { name: '', arguments: '' } };
        ch.calls.set(i, call);
      }
      if (typeof raw.id === 'string') call.id = raw.id;
      // Only a function call is kept whole (its name and arguments): a custom tool's call carries its input in
      // `custom`, which a replay would lose.
      if (typeof raw.type === 'string' && raw.type !== 'function') this.broken = true;
      const f = isObject(raw.function) ? raw.function : undefined;
      if (typeof f?.name === 'string') call.function.name = delta ? call.function.name + f.name : f.name;
      if (typeof f?.arguments === 'string') {
        call.function.arguments = delta ? call.function.arguments + f.arguments : f.arguments;
        this.bytes += f.arguments.length;
      }
    });
  }
}

// What an answer's objects take beside its text: the entry, its choices and tool calls, and the usage counts (at
// most MAX_USAGE_KEYS numbers). Rounded up from V8's object sizes; the estimate should err high.
const ANSWER_OVERHEAD = 1024;
const PART_OVERHEAD = 128;

/**
 * An upper estimate of the heap a cached answer holds, for the memory store's byte bound: two bytes per UTF-16
 * unit of every string (V8 keeps Latin-1 text in one), plus a fixed share per object.
 */
export function answerBytes(a: CachedAnswer): number {
  let units = a.model.length + (a.systemFingerprint?.length ?? 0);
  let parts = a.choices.length;
  for (const c of a.choices) {
    units += (c.content?.length ?? 0) + (c.refusal?.length ?? 0) + c.finishReason.length;
    for (const r of Object.values(c.reasoning ?? {})) units += r.length;
    for (const t of c.toolCalls) units += t.id.length + t.type.length + t.function.name.length + t.function.arguments.length;
    parts += c.toolCalls.length;
  }
  return 2 * units + ANSWER_OVERHEAD + PART_OVERHEAD * parts;
}

/** Keys kept per usage object: OpenAI's have at most a handful. */
const MAX_USAGE_KEYS = 32;

/**
 * The counts of a usage object, as replays must report them: numbers and nulls, and objects of them (OpenAI's
 * `prompt_tokens_details`) `depth` levels down. Anything else the backend put there is not kept: a stored answer
 * is replayed with JSON.stringify, which a deeply nested value makes throw (every identical request would then
 * fail until the entry expired), and the entry's size bound counts only the answer's text.
 */
function countsOf(o: Record<string, unknown>, depth: number): WireUsage {
  const out: WireUsage = {};
  let kept = 0;
  for (const k of Object.keys(o)) {
    if (kept === MAX_USAGE_KEYS) break;
    if (k === '__proto__') continue; // JSON.parse makes it an own key; assigned here it would set the prototype
    const v = o[k];
    if (v === null || (typeof v === 'number' && Number.isFinite(v))) out[k] = v;
    else if (depth > 0 && isObject(v)) out[k] = countsOf(v, depth - 1);
    else continue;
    kept++;
  }
  return out;
}

/** A fresh id per replay, in OpenAI's shape: two hits are two responses. */
function completionId(): string {
  return `chatcmpl-tg${randomBytes(12).toString('hex')}`;
}

function messageOf(c: CachedChoice): Record<string, unknown> {
  const m: Record<string, unknown> = { role: 'assistant', content: c.content, refusal: c.refusal, ...c.reasoning };
  if (c.toolCalls.length > 0) m.tool_calls = c.toolCalls;
  return m;
}

export function replayJson(a: CachedAnswer, now: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      id: completionId(),
      object: 'chat.completion',
      created: Math.floor(now / 1000),
      model: a.model,
      choices: a.choices.map((c) => ({ index: c.index, message: messageOf(c), logprobs: null, finish_reason: c.finishReason })),
      usage: a.usage,
      system_fingerprint: a.systemFingerprint,
    }),
  );
}

/**
 * The answer as an OpenAI stream: per choice a role chunk, its reasoning, its content (or refusal), its tool calls, a finish
 * chunk; then, when the client asked for include_usage, the usage chunk (`choices: []`) with `usage: null` on
 * every chunk before it, as OpenAI sends them; then `data: [DONE]`.
 */
export function replaySse(a: CachedAnswer, now: number, includeUsage: boolean): Buffer {
  const id = completionId();
  const created = Math.floor(now / 1000);
  const out: string[] = [];
  const emit = (choices: unknown[], usage?: WireUsage | null) => {
    const chunk: Record<string, unknown> = { id, object: 'chat.completion.chunk', created, model: a.model, system_fingerprint: a.systemFingerprint, choices };
    if (includeUsage) chunk.usage = usage ?? null;
    out.push(`data: ${JSON.stringify(chunk)}\n\n`);
  };
  for (const c of a.choices) {
    const delta = (d: Record<string, unknown>, finish: string | null = null) => emit([{ index: c.index, delta: d, logprobs: null, finish_reason: finish }]);
    delta({ role: 'assistant', content: c.content === null ? null : '', refusal: null });
    // Thinking first, as a reasoning backend streams it: all its fields in one delta.
    if (c.reasoning) delta({ ...c.reasoning });
    if (c.content) delta({ content: c.content });
    if (c.refusal) delta({ refusal: c.refusal });
    c.toolCalls.forEach((t, i) => delta({ tool_calls: [{ index: i, id: t.id, type: t.type, function: { name: t.function.name, arguments: t.function.arguments } }] }));
    delta({}, c.finishReason);
  }
  if (includeUsage) emit([], a.usage);
  out.push('data: [DONE]\n\n');
  return Buffer.from(out.join(''));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function arrayOf(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : [];
}
