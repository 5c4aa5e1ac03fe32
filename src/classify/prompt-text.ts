// The text a classifier version looks at, built exactly as the production v7 rules do.
import type { ChatMessage } from '../llm/openai-request.js';

export type Role = ChatMessage['role'];

/** A message's text: a string as is; an array of parts → its text parts joined with one space. */
export function messageText(m: ChatMessage): string {
  const c = m.content;
  if (typeof c === 'string') return c;
  if (!Array.isArray(c)) return '';
  const texts: string[] = [];
  for (const p of c) if (p.type === 'text' && typeof p.text === 'string') texts.push(p.text);
  return texts.join(' ');
}

/** Contents of every message with non-empty content (optionally only some roles), joined with one space, lower-cased. */
export function joinedText(messages: readonly ChatMessage[], roles?: ReadonlySet<Role>): string {
  const parts: string[] = [];
  for (const m of messages) {
    if (roles && !roles.has(m.role)) continue;
    const t = messageText(m);
    if (t.length > 0) parts.push(t);
  }
  return parts.join(' ').toLowerCase();
}

/** Length in Unicode code points (Python's len), not UTF-16 units: an emoji counts once. */
export function codePointLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}
