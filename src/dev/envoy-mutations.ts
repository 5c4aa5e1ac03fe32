// Envoy's header mutation rules as the ext_proc filter applies them (envoy-ext-proc.md §3–§4).
import type { WireHeaderMutation } from '../extproc/wire.js';
import type { Counters, Headers } from './envoy-filter.js';

/** Headers ext_proc may never set/append/remove with default mutation rules (§4). */
const DISALLOWED = new Set(['host', ':authority', ':scheme', ':method']);

/** Applies a HeaderMutation like Envoy's MutationUtils; returns an error string for a 500-worthy mutation. */
export function applyHeaderMutation(headers: Headers, m: WireHeaderMutation | undefined, counters: Counters): string | undefined {
  if (!m) return undefined;
  // Envoy applies all removals first, then the sets (§3.3).
  for (const name of m.remove_headers ?? []) {
    const k = name.toLowerCase();
    if (k.startsWith(':') || k === 'host' || k.startsWith('x-envoy-')) {
      counters.rejectedMutations++;
      continue;
    }
    removeHeader(headers, k);
  }
  for (const opt of m.set_headers ?? []) {
    const k = opt.header.key.toLowerCase();
    const hasValue = opt.header.value !== undefined && opt.header.value !== '';
    const hasRaw = opt.header.raw_value !== undefined && opt.header.raw_value.length > 0;
    if (hasValue && hasRaw) return 'Only one of value or raw_value in the HeaderValue message should be set';
    if (DISALLOWED.has(k) || k.startsWith('x-envoy-')) {
      counters.rejectedMutations++;
      continue;
    }
    // Since 1.32 only raw_value is read: a value-only header becomes empty (§3.2).
    const v = hasRaw ? (opt.header.raw_value as Buffer).toString('latin1') : '';
    if (/[\0\r\n]/.test(v) || !/^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(k)) return `invalid header ${k}`;
    // ext_proc honours only `append` (default false = overwrite); append_action is ignored (§3.3).
    if (opt.append?.value === true) headers.push([k, v]);
    else {
      removeHeader(headers, k);
      headers.push([k, v]);
    }
  }
  return undefined;
}

export function getHeader(h: Headers, name: string): string | undefined {
  return h.find(([k]) => k === name)?.[1];
}

export function removeHeader(h: Headers, name: string): void {
  for (let i = h.length - 1; i >= 0; i--) if ((h[i] as [string, string])[0] === name) h.splice(i, 1);
}

export function setHeader(h: Headers, name: string, value: string): void {
  removeHeader(h, name);
  h.push([name, value]);
}
