// A stand-in for Redis's vector search, for machines without Redis 8 or Redis Stack (this one has Debian's Redis
// 7.0). It is a RESP proxy in front of a real redis-server: every command goes to that server, except FT._LIST,
// FT.CREATE and FT.SEARCH, which it answers itself for the subset tiergate uses (HASH documents under a prefix,
// TAG filters, one FLOAT32 vector field, a KNN query with PARAMS, RETURN, SORTBY, LIMIT and DIALECT 2), reading
// the documents from the real server and scoring them exactly. It proves tiergate's side of the protocol as
// the documentation describes it (detection, index creation, query shape, reply parsing); it is not Redis.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';

interface Index {
  prefix: string;
  dims: number;
  vectorField: string;
  tags: Set<string>;
}

/** RESP2's null array (`*-1`); `null` is sent as the null bulk string (`$-1`). */
const NULL_ARRAY = Symbol('null array');
type Reply = null | typeof NULL_ARRAY | Buffer | string | number | Reply[] | Error;

function encode(v: Reply): Buffer {
  if (v === null) return Buffer.from('$-1\r\n');
  if (v === NULL_ARRAY) return Buffer.from('*-1\r\n');
  if (v instanceof Error) return Buffer.from(`-${v.message.replace(/\r?\n/g, ' ')}\r\n`);
  if (typeof v === 'number') return Buffer.from(`:${v}\r\n`);
  if (Array.isArray(v)) return Buffer.concat([Buffer.from(`*${v.length}\r\n`), ...v.map(encode)]);
  const b = typeof v === 'string' ? Buffer.from(v) : v;
  return Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')]);
}

/** Parses complete RESP arrays of bulk strings off the front of `buf`; returns them and what is left. */
function parse(buf: Buffer): { commands: Buffer[][]; rest: Buffer } {
  const commands: Buffer[][] = [];
  let pos = 0;
  outer: while (pos < buf.length) {
    if (buf[pos] !== 0x2a) throw new Error('stand-in: expected a RESP array');
    let eol = buf.indexOf('\r\n', pos);
    if (eol < 0) break;
    const n = Number(buf.subarray(pos + 1, eol).toString());
    let p = eol + 2;
    const args: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      eol = buf.indexOf('\r\n', p);
      if (eol < 0) break outer;
      const len = Number(buf.subarray(p + 1, eol).toString());
      if (eol + 2 + len + 2 > buf.length) break outer;
      args.push(buf.subarray(eol + 2, eol + 2 + len));
      p = eol + 2 + len + 2;
    }
    commands.push(args);
    pos = p;
  }
  return { commands, rest: buf.subarray(pos) };
}

export class RedisSearchStandIn {
  readonly indexes = new Map<string, Index>();
  /** Every FT command received, as strings (vectors shown by their byte length). */
  readonly ftCommands: string[][] = [];
  private readonly sockets = new Set<Socket>();
  /**
   * Runs between scoring and loading the returned fields, with the keys of the results. The real engine scores
   * from its index and then reads each result's hash: a key that expires in between is still counted and named,
   * with a null array for its fields (FT.SEARCH's documentation). A test deletes keys (or fields) here, through
   * the real server, to make that happen.
   */
  beforeLoad: ((keys: string[], redis: Redis) => Promise<void>) | undefined;
  /** The next FT.CREATE fails with this error (once), as a server out of memory or refusing the command would. */
  failNextCreate: string | undefined;
  /** The next FT._LIST is answered this many ms late (once), as over a network that stalls for a moment. */
  delayNextList: number | undefined;

  private constructor(
    private readonly server: Server,
    private readonly backendUrl: string,
  ) {}

  static async start(backendUrl: string): Promise<RedisSearchStandIn> {
    const server = createServer();
    const s = new RedisSearchStandIn(server, backendUrl);
    server.on('connection', (sock) => s.serve(sock));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return s;
  }

  get url(): string {
    return `redis://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    const backend = new Redis(this.backendUrl, { maxRetriesPerRequest: 0, lazyConnect: false });
    backend.on('error', () => undefined);
    let pending = Buffer.alloc(0);
    let chain = Promise.resolve();
    sock.on('data', (d) => {
      const { commands, rest } = parse(Buffer.concat([pending, d]));
      pending = Buffer.from(rest);
      for (const args of commands) {
        // One at a time, in order: replies must come back in the order the client pipelined them.
        chain = chain.then(async () => {
          const reply = await this.run(backend, args).catch((e: Error) => e);
          if (!sock.destroyed) sock.write(encode(reply));
        });
      }
    });
    sock.on('close', () => {
      this.sockets.delete(sock);
      backend.disconnect();
    });
    sock.on('error', () => undefined);
  }

  private async run(backend: Redis, args: Buffer[]): Promise<Reply> {
    const name = (args[0] as Buffer).toString().toUpperCase();
    const str = args.map((a) => a.toString());
    if (name.startsWith('FT.')) this.ftCommands.push(args.map((a, i) => (a.length > 200 || (name === 'FT.SEARCH' && i > 0 && str[i - 1] === 'B') ? `<${a.length} bytes>` : a.toString())));
    if (name === 'FT._LIST') {
      const delay = this.delayNextList;
      this.delayNextList = undefined;
      if (delay !== undefined) await new Promise((r) => setTimeout(r, delay));
      return [...this.indexes.keys()];
    }
    if (name === 'FT.CREATE' && this.failNextCreate !== undefined) {
      const message = this.failNextCreate;
      this.failNextCreate = undefined;
      return new Error(message);
    }
    if (name === 'FT.CREATE') return this.create(str);
    if (name === 'FT.SEARCH') return this.search(backend, args);
    return (await backend.callBuffer(name, ...args.slice(1))) as Reply;
  }

  private create(a: string[]): Reply {
    const [, name] = a;
    if (!name) return new Error('ERR wrong number of arguments');
    if (this.indexes.has(name)) return new Error('Index already exists');
    const at = (word: string) => a.indexOf(word);
    if (a[2] !== 'ON' || a[3] !== 'HASH' || a[4] !== 'PREFIX' || a[5] !== '1' || at('SCHEMA') < 0) return new Error('ERR stand-in: unsupported FT.CREATE form');
    const schema = a.slice(at('SCHEMA') + 1);
    const index: Index = { prefix: a[6] as string, dims: 0, vectorField: '', tags: new Set() };
    for (let i = 0; i < schema.length; ) {
      const field = schema[i] as string;
      const type = schema[i + 1];
      if (type === 'TAG') {
        index.tags.add(field);
        i += 2;
      } else if (type === 'VECTOR') {
        const nargs = Number(schema[i + 3]);
        const opts = schema.slice(i + 4, i + 4 + nargs);
        const opt = (k: string) => opts[opts.indexOf(k) + 1];
        if (schema[i + 2] !== 'HNSW' || opt('TYPE') !== 'FLOAT32' || opt('DISTANCE_METRIC') !== 'COSINE' || nargs !== 6) return new Error('ERR stand-in: unsupported VECTOR field');
        index.vectorField = field;
        index.dims = Number(opt('DIM'));
        i += 4 + nargs;
      } else return new Error(`ERR stand-in: unsupported field type ${type}`);
    }
    this.indexes.set(name, index);
    return 'OK';
  }

  private async search(backend: Redis, raw: Buffer[]): Promise<Reply> {
    const a = raw.map((b) => b.toString());
    const index = this.indexes.get(a[1] as string);
    if (!index) return new Error('Unknown index name');
    const m = /^((?:@\w+:\{[0-9a-z]+\}\s*)*)=>\[KNN (\d+) @(\w+) \$(\w+) AS (\w+)\]$/.exec(a[2] as string);
    if (!m) return new Error(`Syntax error in stand-in query: ${a[2]}`);
    const [, filters, k, field, param, alias] = m as unknown as [string, string, string, string, string, string];
    const pi = a.indexOf('PARAMS');
    if (pi < 0 || a[pi + 1] !== '2' || a[pi + 2] !== param) return new Error('ERR PARAMS must name the vector parameter');
    if (a[a.indexOf('DIALECT') + 1] !== '2') return new Error('ERR vector queries need DIALECT 2');
    if (field !== index.vectorField) return new Error(`ERR unknown vector field ${field}`);
    const blob = raw[pi + 3] as Buffer;
    if (blob.length !== index.dims * 4) return new Error('ERR vector blob size does not match the index');
    const q = new Float32Array(blob.buffer.slice(blob.byteOffset, blob.byteOffset + blob.length));
    const want = [...filters.matchAll(/@(\w+):\{([0-9a-z]+)\}/g)].map((x) => [x[1] as string, x[2] as string] as const);
    for (const [f] of want) if (!index.tags.has(f)) return new Error(`ERR unknown tag field ${f}`);
    const ri = a.indexOf('RETURN');
    const returned = ri < 0 ? [] : a.slice(ri + 2, ri + 2 + Number(a[ri + 1]));
    const li = a.indexOf('LIMIT');
    const limit = li < 0 ? 10 : Number(a[li + 2]);
    const hits: Array<{ key: string; d: number }> = [];
    let cursor = '0';
    do {
      const [next, keys] = (await backend.scan(cursor, 'MATCH', `${index.prefix}*`, 'COUNT', 1000)) as [string, string[]];
      cursor = next;
      for (const key of keys) {
        const flat = (await backend.callBuffer('HGETALL', key)) as Buffer[];
        const doc = new Map<string, Buffer>();
        for (let i = 0; i + 1 < flat.length; i += 2) doc.set((flat[i] as Buffer).toString(), flat[i + 1] as Buffer);
        if (!want.every(([f, v]) => doc.get(f)?.toString() === v)) continue;
        const vb = doc.get(field);
        if (!vb || vb.length !== blob.length) continue;
        const v = new Float32Array(vb.buffer.slice(vb.byteOffset, vb.byteOffset + vb.length));
        let dotp = 0;
        let nq = 0;
        let nv = 0;
        for (let i = 0; i < v.length; i++) {
          dotp += (q[i] as number) * (v[i] as number);
          nq += (q[i] as number) ** 2;
          nv += (v[i] as number) ** 2;
        }
        hits.push({ key, d: 1 - dotp / Math.sqrt(nq * nv) });
      }
    } while (cursor !== '0');
    const top = hits.sort((x, y) => x.d - y.d).slice(0, Math.min(Number(k), limit));
    await this.beforeLoad?.(top.map((h) => h.key), backend);
    const out: Reply[] = [top.length];
    for (const h of top) {
      out.push(h.key);
      const loaded = (await backend.callBuffer('HGETALL', h.key)) as Buffer[];
      if (loaded.length === 0) {
        out.push(NULL_ARRAY);
        continue;
      }
      const doc = new Map<string, Buffer>();
      for (let i = 0; i + 1 < loaded.length; i += 2) doc.set((loaded[i] as Buffer).toString(), loaded[i + 1] as Buffer);
      const fields: Reply[] = [];
      for (const f of returned) {
        const value = f === alias ? Buffer.from(String(h.d)) : doc.get(f);
        if (value !== undefined) fields.push(f, value);
      }
      out.push(fields);
    }
    return out;
  }
}
