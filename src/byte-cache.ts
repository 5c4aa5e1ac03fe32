// The answer path turns the same few strings into bytes again and again (header values, metadata keys), so it
// keeps their bytes. Buffer.from puts a small result into Node's shared 8 KiB pool slab, and a kept slice keeps
// the whole slab alive: with other traffic between two misses, every cached value pinned a slab of its own
// (4,000 values of 6 bytes held 15.5 MiB). Here the bytes are copied into slabs only this cache uses, so it
// holds about what its values take, plus one slab.

const SLAB_BYTES = 64 * 1024;
/** Larger values get a buffer of their own rather than most of a slab. */
const OWN_BUFFER_BYTES = 4 * 1024;

export class ByteCache {
  private readonly map = new Map<string, Buffer>();
  private slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private used = 0;

  /** `limit`: entries kept; at the limit the cache starts over, so values that never repeat cost nothing. */
  constructor(private readonly limit: number) {}

  get(value: string): Buffer | undefined {
    return this.map.get(value);
  }

  /** Encodes `value` into the cache's own memory and keeps it. Answers may share the result. */
  put(value: string, encoding: 'latin1' | 'utf8'): Buffer {
    if (this.map.size >= this.limit) this.startOver();
    const length = Buffer.byteLength(value, encoding);
    let bytes: Buffer;
    if (length > OWN_BUFFER_BYTES) {
      bytes = Buffer.allocUnsafeSlow(length);
      bytes.write(value, 0, encoding);
    } else {
      if (this.used + length > SLAB_BYTES) this.newSlab();
      bytes = this.slab.subarray(this.used, this.used + length);
      bytes.write(value, 0, encoding);
      this.used += length;
    }
    this.map.set(value, bytes);
    return bytes;
  }

  /** Drops every entry. Slabs stay alive only while an answer still holds one of their values. */
  private startOver(): void {
    this.map.clear();
    this.newSlab();
  }

  private newSlab(): void {
    this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    this.used = 0;
  }
}
