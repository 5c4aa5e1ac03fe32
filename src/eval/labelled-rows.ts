// Labelled prompts for `tiergate eval` and `tiergate keywords`, read one row at a time (a file of any size is
// never held in memory). JSON Lines: {"prompt": "…"} or {"messages": [...]}, plus the true tier in "tier" or
// "label", an optional "id" and optional "tools" (the request's tool definitions, for rules on moreThanTools);
// or {"request": {...}}, a whole chat, Responses or completions body, read as tiergate reads it on its path.
// CSV/TSV: a header row naming the same columns ("messages", "tools" and "request" hold JSON). Either may be
// gzip-compressed (`prompts.jsonl.gz`), as an export of a week's traffic usually is.
import { extname } from 'node:path';
import { pipeline } from 'node:stream';
import { parse as parseCsv } from 'csv-parse';
import { z } from 'zod';
import { chatMessage, type ChatMessage } from '../llm/openai-request.js';
import { messageText } from '../classify/prompt-text.js';
import { TiergateError } from '../errors.js';
import { declaredTools, parseLlmRequest, type Endpoint } from '../llm/parse-request.js';
import { fileBytes, isGzip, textLines } from '../text-lines.js';

export interface LabelledRow {
  /** 1-based line (JSONL) or record number (CSV, header excluded). */
  line: number;
  /** The row's own id when it has one, else its line. */
  id: string;
  messages: ChatMessage[];
  /** How many tools the request declared ("tools" in the row); 0 when it has none. */
  tools: number;
  /** The ground-truth tier; undefined when the row has none. */
  label: string | undefined;
}

export interface BadRow {
  line: number;
  problem: string;
}

export type RowResult = { ok: true; row: LabelledRow } | { ok: false; bad: BadRow };

/** Rows that could not be read: how many, and the first few with the reason, for a report to show. */
export interface SkippedRows {
  skipped: number;
  skipped_examples: BadRow[];
}

const SKIPPED_EXAMPLES = 5;

export function noteSkipped(into: SkippedRows, bad: BadRow): void {
  into.skipped++;
  if (into.skipped_examples.length < SKIPPED_EXAMPLES) into.skipped_examples.push(bad);
}

/** One line per example, indented under a report's heading. */
export function skippedLines(r: SkippedRows): string[] {
  return r.skipped_examples.map((b) => `  line ${b.line}: ${b.problem}`);
}

export type LabelledFormat = 'jsonl' | 'csv' | 'tsv';

/** The format `--format` names, else the one the file's name says (`.gz` looked past: `rows.csv.gz` is CSV). */
export function formatOf(file: string, explicit?: string): LabelledFormat {
  const name = file.replace(/\.gz$/i, '');
  const f = explicit ?? { '.jsonl': 'jsonl', '.ndjson': 'jsonl', '.json': 'jsonl', '.csv': 'csv', '.tsv': 'tsv' }[extname(name).toLowerCase()];
  if (f === 'jsonl' || f === 'csv' || f === 'tsv') return f;
  throw new Error(`cannot tell the format of ${file}: name it with --format jsonl|csv|tsv`);
}

const messagesSchema = z.array(chatMessage).min(1);

const UNREADABLE = Symbol('unreadable');

/** A field that holds JSON: as is from a JSON Lines row, parsed from a CSV cell (an empty cell is absent). */
function jsonField(rec: Record<string, unknown>, name: string): unknown {
  const v = rec[name];
  if (typeof v !== 'string') return v;
  if (v.trim() === '') return undefined;
  try {
    return JSON.parse(v);
  } catch {
    return UNREADABLE;
  }
}

/**
 * A whole request body as a client sent it, read the way tiergate reads one on its path: `messages` is a chat
 * request, `input` a Responses API one, `prompt` a completion. Its messages and declared tools, or a problem.
 */
function fromRequest(body: unknown): { messages: readonly ChatMessage[]; tools: number } | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return '"request" is not a JSON object';
  const endpoint: Endpoint | undefined = 'messages' in body ? 'chat' : 'input' in body ? 'responses' : 'prompt' in body ? 'completions' : undefined;
  if (!endpoint) return '"request" has no "messages", "input" or "prompt"';
  try {
    const llm = parseLlmRequest(endpoint, Buffer.from(JSON.stringify(body)));
    return { messages: llm.messages, tools: declaredTools(llm) };
  } catch (err) {
    return `"request" is not a valid ${endpoint} request (${err instanceof TiergateError ? err.message : String(err)})`;
  }
}

/** One record's fields (JSON values, or CSV strings) → a row or the reason it is unusable. */
export function toRow(line: number, rec: Record<string, unknown>, labelField: string | undefined): RowResult {
  const bad = (problem: string): RowResult => ({ ok: false, bad: { line, problem } });
  const labelValue = labelField !== undefined ? rec[labelField] : (rec.tier ?? rec.label);
  const label = typeof labelValue === 'string' && labelValue.trim() !== '' ? labelValue.trim().toLowerCase() : undefined;
  const id = rec.id === undefined || rec.id === null || rec.id === '' ? String(line) : String(rec.id);
  const request = jsonField(rec, 'request');
  if (request === UNREADABLE) return bad('"request" is not valid JSON');
  if (request !== undefined) {
    const r = fromRequest(request);
    return typeof r === 'string' ? bad(r) : { ok: true, row: { line, id, messages: [...r.messages], tools: r.tools, label } };
  }
  let messages: ChatMessage[];
  const raw = jsonField(rec, 'messages');
  if (raw === UNREADABLE) return bad('"messages" is not valid JSON');
  if (raw !== undefined) {
    const parsed = messagesSchema.safeParse(raw);
    if (!parsed.success) return bad(`"messages" is not an array of chat messages (${parsed.error.issues[0]?.message ?? 'invalid'})`);
    messages = parsed.data;
  } else if (typeof rec.prompt === 'string') {
    messages = [{ role: 'user', content: rec.prompt }];
  } else {
    return bad('no "prompt" string or "messages" array');
  }
  const tools = jsonField(rec, 'tools');
  if (tools === UNREADABLE) return bad('"tools" is not valid JSON');
  if (tools != null && !Array.isArray(tools)) return bad('"tools" is not an array of tool definitions');
  return { ok: true, row: { line, id, messages, tools: tools ? tools.length : 0, label } };
}

export async function* readLabelledRows(file: string, opts: { format?: string; labelField?: string } = {}): AsyncGenerator<RowResult> {
  const format = formatOf(file, opts.format);
  // Told by its first bytes, not its name: a compressed file named .jsonl is read too.
  const gzip = isGzip(file);
  if (format === 'jsonl') {
    const lines = textLines(file, gzip);
    let n = 0;
    for await (const line of lines) {
      n++;
      // A byte-order mark, as Windows editors and spreadsheet exports write one: JSON.parse refuses it, which made
      // the first row unreadable. (The CSV parser drops it itself: `bom: true`.)
      const text = n === 1 && line.charCodeAt(0) === 0xfeff ? line.slice(1) : line;
      if (text.trim() === '') continue;
      let rec: unknown;
      try {
        rec = JSON.parse(text);
      } catch {
        yield { ok: false, bad: { line: n, problem: 'not valid JSON' } };
        continue;
      }
      if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) {
        yield { ok: false, bad: { line: n, problem: 'not a JSON object' } };
        continue;
      }
      yield toRow(n, rec as Record<string, unknown>, opts.labelField);
    }
    return;
  }
  // relax_column_count: a short or long record becomes one bad row, not the end of the run.
  const parser = parseCsv({ columns: true, bom: true, delimiter: format === 'tsv' ? '\t' : ',', relax_column_count: true, skip_empty_lines: true, relax_quotes: format === 'tsv', quote: format === 'tsv' ? false : '"' });
  // pipeline, not pipe: a read error (a compressed file cut short, a failing disk) ends the rows with that error.
  // Piped, it was an unhandled 'error' event that crashed the command with a stack trace.
  pipeline(fileBytes(file, gzip), parser, () => undefined);
  let n = 0;
  for await (const rec of parser as AsyncIterable<Record<string, string>>) {
    n++;
    yield toRow(n, rec, opts.labelField);
  }
}

/** A one-line preview of a row's prompt for terminal output: the last user message, cut to `max` characters. */
export function preview(messages: readonly ChatMessage[], max = 80): string {
  let text = '';
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as ChatMessage;
    if (m.role !== 'user') continue;
    text = messageText(m);
    break;
  }
  const flat = text.replace(/\s+/g, ' ').trim();
  const chars = [...flat];
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : flat;
}
