// Writes the answers every request gets — a headers or body answer with header and body mutations, and the
// usage Struct on the last one — straight from the decision into protobuf bytes. The general path builds a
// ProcessingResponse object (responses.ts) and has protobufjs encode it, which allocates an operation object
// per field and a state object per nested message and then walks that list to copy the bytes: about 10 µs of a
// plain request's four answers (bench/pipeline-bench.ts) and a good part of its garbage. Here each answer is
// written once, backwards into a reused scratch buffer: that is how a length-prefixed format is written in one
// pass, since a nested message's length is known as soon as its contents are written and goes right in front
// of them. Field numbers come from the loaded protos (checked when the writer is built). The output is byte for
// byte what protobufjs makes of continueResponse()'s object (test/unit/answer-writer.test.ts); decisions this
// writer does not cover (a mode override, trailers answers) return undefined and take the general path.
import type protobuf from 'protobufjs';
import { ByteCache } from '../byte-cache.js';
import { checkedName, valueBytes } from './header-codec.js';
import { answerRules } from './responses.js';
import type { ContinueDecision } from './types.js';
import type { RequestKind } from './wire.js';

const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;

const SCRATCH_BYTES = 16 * 1024;
/**
 * A larger replacement body takes protobufjs' path: written here it would be copied twice (into the scratch
 * buffer, then out of it), there once; and the scratch buffer stays small.
 */
const MAX_DIRECT_BODY_BYTES = 64 * 1024;

class BackwardWriter {
  buf = Buffer.allocUnsafe(SCRATCH_BYTES);
  pos = this.buf.length;

  reset(): void {
    // A large replacement body grew the buffer; it is not kept for the small answers that follow.
    if (this.buf.length > 16 * SCRATCH_BYTES) this.buf = Buffer.allocUnsafe(SCRATCH_BYTES);
    this.pos = this.buf.length;
  }

  /** Bytes written so far. Marks are sizes, not positions: growing the buffer moves what is written. */
  get size(): number {
    return this.buf.length - this.pos;
  }

  /** Makes room for `n` more bytes in front of what is written, keeping that at the end of a larger buffer. */
  private room(n: number): void {
    if (this.pos >= n) return;
    const used = this.buf.length - this.pos;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, used + n + 1024));
    this.buf.copy(next, next.length - used, this.pos);
    this.buf = next;
    this.pos = next.length - used;
  }

  /** Lengths and single-byte tags: non-negative, below 2^31. */
  varint(v: number): void {
    if (v < 0x80) {
      this.room(1);
      this.buf[--this.pos] = v;
      return;
    }
    const size = v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
    this.room(size);
    let p = (this.pos -= size);
    while (v >= 0x80) {
      this.buf[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[p] = v;
  }

  /** A length-delimited field: bytes, a string's UTF-8, or (with close()) a nested message. */
  bytes(tag: number, b: Uint8Array): void {
    this.room(b.length);
    this.pos -= b.length;
    this.buf.set(b, this.pos);
    this.varint(b.length);
    this.varint(tag);
  }

  string(tag: number, s: string): void {
    this.bytes(tag, utf8Of(s));
  }

  double(tag: number, v: number): void {
    this.room(8);
    this.pos -= 8;
    this.buf.writeDoubleLE(v, this.pos);
    this.varint(tag);
  }

  bool(tag: number, v: boolean): void {
    this.varint(v ? 1 : 0);
    this.varint(tag);
  }

  /** Call once a nested message's fields are written (`mark`: the size before them): puts its length and tag in front. */
  close(tag: number, mark: number): void {
    this.varint(this.size - mark);
    this.varint(tag);
  }

  /** A copy of what was written: the scratch buffer is reused by the next answer. */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.buf.length - this.pos);
    out.set(this.buf.subarray(this.pos));
    return out;
  }
}

const STRING_CACHE_MAX_CHARS = 128;
const utf8Cache = new ByteCache(4096);

/**
 * Nearly every string written repeats (header names to remove, metadata keys, usage_source), and turning a
 * string into UTF-8 costs more than copying its bytes; the cache is bounded and starts over when full. Lone
 * surrogates become U+FFFD, as Buffer writes them, which is also the only form Envoy's parser accepts.
 */
function utf8Of(s: string): Buffer {
  const b = utf8Cache.get(s);
  if (b) return b;
  return s.length <= STRING_CACHE_MAX_CHARS ? utf8Cache.put(s, 'utf8') : Buffer.from(s, 'utf8');
}

/**
 * The tag byte of `type.name`, after checking the field has the type (a scalar's name, or a message or enum's
 * full name) this writer assumes and a number small enough for a one-byte tag.
 */
function tagOf(root: protobuf.Root, type: string, name: string, fieldType: string, wireType: number, repeated = false): number {
  const f = root.lookupType(type).fields[name];
  const actual = f?.resolvedType ? f.resolvedType.fullName.slice(1) : f?.type;
  if (!f || actual !== fieldType || f.repeated !== repeated || f.map || f.id > 15) {
    throw new Error(`${type}.${name} is not a ${repeated ? 'repeated ' : ''}${fieldType} with a small number in the loaded protos`);
  }
  return (f.id << 3) | wireType;
}

export type AnswerWriter = (kind: RequestKind, d: ContinueDecision, allowModeOverride: boolean) => Buffer | undefined;

export function createAnswerWriter(root: protobuf.Root): AnswerWriter {
  const P = 'envoy.service.ext_proc.v3.';
  const C = 'envoy.config.core.v3.';
  const V = 'google.protobuf.Value';
  const answerTags: Partial<Record<RequestKind, number>> = {
    request_headers: tagOf(root, `${P}ProcessingResponse`, 'request_headers', `${P}HeadersResponse`, LEN),
    response_headers: tagOf(root, `${P}ProcessingResponse`, 'response_headers', `${P}HeadersResponse`, LEN),
    request_body: tagOf(root, `${P}ProcessingResponse`, 'request_body', `${P}BodyResponse`, LEN),
    response_body: tagOf(root, `${P}ProcessingResponse`, 'response_body', `${P}BodyResponse`, LEN),
  };
  const t = {
    dynamicMetadata: tagOf(root, `${P}ProcessingResponse`, 'dynamic_metadata', 'google.protobuf.Struct', LEN),
    headersCommon: tagOf(root, `${P}HeadersResponse`, 'response', `${P}CommonResponse`, LEN),
    bodyCommon: tagOf(root, `${P}BodyResponse`, 'response', `${P}CommonResponse`, LEN),
    status: tagOf(root, `${P}CommonResponse`, 'status', `${P}CommonResponse.ResponseStatus`, VARINT),
    headerMutation: tagOf(root, `${P}CommonResponse`, 'header_mutation', `${P}HeaderMutation`, LEN),
    bodyMutation: tagOf(root, `${P}CommonResponse`, 'body_mutation', `${P}BodyMutation`, LEN),
    clearRouteCache: tagOf(root, `${P}CommonResponse`, 'clear_route_cache', 'bool', VARINT),
    body: tagOf(root, `${P}BodyMutation`, 'body', 'bytes', LEN),
    setHeaders: tagOf(root, `${P}HeaderMutation`, 'set_headers', `${C}HeaderValueOption`, LEN, true),
    removeHeaders: tagOf(root, `${P}HeaderMutation`, 'remove_headers', 'string', LEN, true),
    header: tagOf(root, `${C}HeaderValueOption`, 'header', `${C}HeaderValue`, LEN),
    key: tagOf(root, `${C}HeaderValue`, 'key', 'string', LEN),
    rawValue: tagOf(root, `${C}HeaderValue`, 'raw_value', 'bytes', LEN),
    numberValue: tagOf(root, V, 'numberValue', 'double', FIXED64),
    stringValue: tagOf(root, V, 'stringValue', 'string', LEN),
    boolValue: tagOf(root, V, 'boolValue', 'bool', VARINT),
    structValue: tagOf(root, V, 'structValue', 'google.protobuf.Struct', LEN),
  };
  const structFields = root.lookupType('google.protobuf.Struct').fields.fields;
  if (!structFields?.map || structFields.resolvedType?.fullName !== `.${V}` || structFields.id > 15) throw new Error('google.protobuf.Struct.fields is not a map of Value');
  const structEntry = (structFields.id << 3) | LEN;
  const entryKey = (1 << 3) | LEN;
  const entryValue = (2 << 3) | LEN;
  const replaceStatus = root.lookupEnum(`${P}CommonResponse.ResponseStatus`).values.CONTINUE_AND_REPLACE;
  if (replaceStatus === undefined) throw new Error('CommonResponse.ResponseStatus has no CONTINUE_AND_REPLACE');
  const w = new BackwardWriter();

  /** Ends the map entry `key` → Value whose value was written after `end` (key = 1, value = 2). */
  function entry(key: string, end: number): void {
    w.close(entryValue, end);
    w.string(entryKey, key);
    w.close(structEntry, end);
  }

  /** Namespace → flat values, as encodeDynamicMetadata() builds them; written last key first. */
  function metadata(ns: NonNullable<ContinueDecision['dynamicMetadata']>): void {
    const names = Object.keys(ns);
    for (let i = names.length - 1; i >= 0; i--) {
      const name = names[i] as string;
      const values = ns[name] as Record<string, string | number | boolean>;
      const nsEnd = w.size;
      const keys = Object.keys(values);
      for (let j = keys.length - 1; j >= 0; j--) {
        const key = keys[j] as string;
        const v = values[key];
        const end = w.size;
        if (typeof v === 'string') w.string(t.stringValue, v);
        else if (typeof v === 'number') w.double(t.numberValue, v);
        else w.bool(t.boolValue, v === true);
        entry(key, end);
      }
      w.close(t.structValue, nsEnd);
      entry(name, nsEnd);
    }
  }

  /**
   * The header mutation as encodeHeaderMutation() builds it: none when nothing is set or removed, unless
   * `forceEmpty` (clear_route_cache needs one). Header names and values get the same checks (a bad one throws).
   */
  function headerMutation(d: ContinueDecision, forceEmpty: boolean): void {
    const set = d.headers?.set ?? [];
    const remove = d.headers?.remove ?? [];
    if (set.length === 0 && remove.length === 0 && !forceEmpty) return;
    const end = w.size;
    for (let i = remove.length - 1; i >= 0; i--) w.string(t.removeHeaders, (remove[i] as string).toLowerCase());
    for (let i = set.length - 1; i >= 0; i--) {
      const [rawName, value] = set[i] as readonly [string, string];
      const key = checkedName(rawName);
      const optionEnd = w.size;
      w.bytes(t.rawValue, valueBytes(key, value));
      w.string(t.key, key);
      w.close(t.header, optionEnd);
      w.close(t.setHeaders, optionEnd);
    }
    w.close(t.headerMutation, end);
  }

  return (kind, d, allowModeOverride) => {
    const answerTag = answerTags[kind];
    // Trailers answers and mode overrides are rare (at most once per stream) and take the general path.
    if (answerTag === undefined || answerRules.sendsModeOverride(kind, d, allowModeOverride)) return undefined;
    if (d.body && d.body.length > MAX_DIRECT_BODY_BYTES) return undefined;
    w.reset();
    if (d.dynamicMetadata) {
      const end = w.size;
      metadata(d.dynamicMetadata);
      w.close(t.dynamicMetadata, end);
    }
    const answerEnd = w.size;
    // CommonResponse, in the shape responses.ts commonResponse() gives it.
    const clear = answerRules.clearsRouteCache(kind, d);
    if (clear) w.bool(t.clearRouteCache, true);
    if (d.body) {
      const end = w.size;
      w.bytes(t.body, d.body);
      w.close(t.bodyMutation, end);
    }
    headerMutation(d, clear);
    if (answerRules.replacesWithBody(kind, d)) {
      w.varint(replaceStatus);
      w.varint(t.status);
    }
    const headersKind = kind === 'request_headers' || kind === 'response_headers';
    w.close(headersKind ? t.headersCommon : t.bodyCommon, answerEnd);
    w.close(answerTag, answerEnd);
    return w.take();
  };
}
