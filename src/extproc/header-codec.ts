// Envoy's header encoding rules (envoy-ext-proc.md §3):
// - Envoy sends values in `raw_value` (bytes); `value` is empty since 1.27 and ignored since 1.32.
// - We must write `raw_value` only: a `value`-only mutation yields an empty header (≥1.32) and setting both is
//   an InvalidArgument → 500 local reply (§3.2).
// - ext_proc honours only the deprecated `append` BoolValue, whose absence means false = overwrite, and ignores
//   `append_action` (§3.3). tiergate only ever overwrites, so it leaves `append` out: seven BoolValue messages
//   fewer per request-body answer.
import { BoundedMap } from '../bounded-map.js';
import { ByteCache } from '../byte-cache.js';
import type { HeaderMap, HeaderMutation } from './types.js';
import type { WireHeaderMap, WireHeaderMutation, WireHeaderValue, WireHeaderValueOption } from './wire.js';

/**
 * A view of Envoy's header list that decodes only the values asked for: tiergate reads a handful of headers per
 * message, and decoding every value to a string (a Map of all of them) was a measurable share of the per-request
 * allocation (bench/extproc-bench.ts). Header bytes are decoded as latin1: one char per byte, so a value
 * round-trips unchanged whatever it holds.
 */
export class WireHeaders implements HeaderMap {
  private readonly list: readonly WireHeaderValue[];

  constructor(map: WireHeaderMap | undefined) {
    this.list = map?.headers ?? [];
  }

  get(name: string): string | undefined {
    let out: string | undefined;
    for (const h of this.list) {
      if (!sameName(h.key, name)) continue;
      const v = valueOf(h);
      out = out === undefined ? v : `${out}, ${v}`;
    }
    return out;
  }

  has(name: string): boolean {
    for (const h of this.list) if (sameName(h.key, name)) return true;
    return false;
  }
}

/**
 * `name` is lower-case. Envoy sends lower-case keys (HTTP/2 requires them), so the plain comparison decides
 * nearly always; a key of another length cannot match, which spares a toLowerCase copy per header per lookup.
 */
function sameName(key: string, name: string): boolean {
  return key === name || (key.length === name.length && key.toLowerCase() === name);
}

/** Fallback to `value` only for Envoy < 1.27 (raw_value absent); never both. */
function valueOf(h: WireHeaderValue): string {
  return h.raw_value && h.raw_value.length > 0 ? h.raw_value.toString('latin1') : (h.value ?? '');
}

/**
 * A header value as text a person wrote: values are read as latin1 (one char per byte, exact and cheap), but
 * clients that put non-ASCII text in a header (curl, Go; a team's name in Korean) send UTF-8, whose bytes read as
 * latin1 are mojibake ("검색" as "ê²\u0080ì\u0083\u0089"). Bytes that are valid UTF-8 are decoded as such; others
 * (a real latin1 "café") stay as read. For values kept as text (ledger fields, a hashed user id), never for values
 * written back, whose bytes must stay the client's.
 */
export function headerText(value: string): string;
export function headerText(value: string | undefined): string | undefined;
export function headerText(value: string | undefined): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (value === undefined || !/[\u0080-\u00ff]/.test(value)) return value;
  try {
    return STRICT_UTF8.decode(Buffer.from(value, 'latin1'));
  } catch {
    return value;
  }
}
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

const INVALID_VALUE = /[\0\r\n]/;
const VALID_NAME = /^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/** Strings we generate may hold non-latin1 text (e.g. a model id); those are written as UTF-8. */
function headerValueEncoding(value: string): 'utf8' | 'latin1' {
  // eslint-disable-next-line no-control-regex
  return /[^\u0000-\u00ff]/.test(value) ? 'utf8' : 'latin1';
}

/**
 * Most values tiergate writes repeat from request to request (tier names, model ids, the tenant, a classifier
 * version, small content-lengths), and so do the names: each distinct one is checked and turned into bytes
 * once. Both caches are bounded and simply start over when full, so high-cardinality values cost no memory.
 */
const CACHE_LIMIT = 4096;
/** The name as given → its checked lower-case form. */
const checkedNames = new BoundedMap<string, string>(CACHE_LIMIT);
const encodedValues = new ByteCache(CACHE_LIMIT);

export function checkedName(rawName: string): string {
  let key = checkedNames.get(rawName);
  if (key !== undefined) return key;
  key = rawName.toLowerCase();
  // Envoy rejects invalid names/values with a 500 for the whole request (§4); fail here instead, where
  // the transport's failure rule can decide, and the bad value is logged by name only.
  if (!VALID_NAME.test(key)) throw new Error(`invalid header name ${JSON.stringify(key)}`);
  checkedNames.set(rawName, key);
  return key;
}

/** The bytes of a value; shared between answers, which only ever read them. */
export function valueBytes(key: string, value: string): Buffer {
  const bytes = encodedValues.get(value);
  if (bytes) return bytes;
  if (INVALID_VALUE.test(value)) throw new Error(`invalid value for header ${key}`);
  return encodedValues.put(value, headerValueEncoding(value));
}

export function encodeHeaderMutation(m: HeaderMutation | undefined): WireHeaderMutation | undefined {
  if (!m || ((m.set?.length ?? 0) === 0 && (m.remove?.length ?? 0) === 0)) return undefined;
  const set_headers: WireHeaderValueOption[] = [];
  for (const [rawName, value] of m.set ?? []) {
    const key = checkedName(rawName);
    set_headers.push({ header: { key, raw_value: valueBytes(key, value) } });
  }
  const out: WireHeaderMutation = {};
  if (set_headers.length > 0) out.set_headers = set_headers;
  if (m.remove && m.remove.length > 0) out.remove_headers = m.remove.map((h) => h.toLowerCase());
  return out;
}
