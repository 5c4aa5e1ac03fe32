// The local data plane of `tiergate dev`: an HTTP listener that does what Envoy does with tiergate in front of
// the backends — drives the ext_proc stream through ExtProcSession (request headers → BUFFERED body → route by
// x-llm-tier → response headers → STREAMED response chunks → half-close + reset), applies every mutation and
// immediate response, and streams SSE chunk by chunk. The OpenAI SDK can be pointed at it. With
// `--body-mode duplex` both bodies go FULL_DUPLEX_STREAMED instead (envoy-ext-proc.md §2.2).
import { randomUUID } from 'node:crypto';
import { request as httpRequest, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { envoyNormalizedPath } from './envoy-path.js';
import { readWithin } from './read-body.js';
import { ExtProcPool, RECOMMENDED_FILTER, getHeader, setHeader, type ExtProcSession, type FilterConfig, type Headers, type Outcome } from './envoy-client.js';

export interface DataPlaneOptions {
  /** host:port of tiergate's ext_proc listener. */
  extProcTarget: string;
  /** Tier name → backend base URL (http://host:port). */
  backends: Record<string, string>;
  /** Where requests go when no x-llm-tier is set (the catch-all rule). */
  defaultTier: string;
  filter?: FilterConfig;
  /** Envoy's max_requests_per_connection on the ext_proc cluster. */
  maxStreamsPerConnection?: number;
}

export interface DataPlane {
  server: Server;
  pool: ExtProcPool;
  /** The ext_proc filter's settings it drives tiergate with. */
  filter: FilterConfig;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

export function createDataPlane(opts: DataPlaneOptions): DataPlane {
  const pool = new ExtProcPool(opts.extProcTarget, opts.maxStreamsPerConnection ?? 500);
  const filter = opts.filter ?? RECOMMENDED_FILTER;
  const server = createServer((req, res) => {
    void proxy(req, res, pool, filter, opts).catch((err: Error) => {
      if (!res.headersSent) localReply(res, 502, `upstream error: ${err.message}`);
      else res.destroy();
    });
  });
  return { server, pool, filter };
}

function localReply(res: ServerResponse, status: number, details: string): void {
  // Envoy's own local replies are plain text.
  res.writeHead(status, closingIfEarly(res, { 'content-type': 'text/plain' })).end(`${details}\n`);
}

/**
 * A response that starts before the request has all come in closes the HTTP/1 connection after it, as Envoy's
 * HCM does (`downstream_rq_response_before_rq_complete`: it will not wait for the rest of the request): a client
 * turned away mid-upload stops there instead of sending the rest to be read and dropped.
 */
function closingIfEarly(res: ServerResponse, headers: Record<string, string>): Record<string, string> {
  if (!res.req.complete) headers.connection = 'close';
  return headers;
}

function sendOutcome(res: ServerResponse, o: Outcome): boolean {
  if (o.kind === 'immediate') {
    res.writeHead(o.status, closingIfEarly(res, Object.fromEntries(o.headers))).end(o.body);
    return true;
  }
  if (o.kind === 'error') {
    localReply(res, o.status, o.details);
    return true;
  }
  return false;
}

async function proxy(req: IncomingMessage, res: ServerResponse, pool: ExtProcPool, filter: FilterConfig, opts: DataPlaneOptions) {
  const session = pool.open(filter);
  // Client disconnect before we are done: Envoy resets the side stream (§8).
  res.on('close', () => session.cancel());
  try {
    await exchange(req, res, session, opts);
  } finally {
    session.close();
  }
}

async function exchange(req: IncomingMessage, res: ServerResponse, session: ExtProcSession, opts: DataPlaneOptions) {
  const headers: Headers = [
    [':method', req.method ?? 'GET'],
    // Normalised as envoy.yaml has Envoy do before any filter; the upstream gets this path too.
    [':path', envoyNormalizedPath(req.url ?? '/')],
    [':authority', req.headers.host ?? 'localhost'],
    [':scheme', 'http'],
  ];
  for (const [k, v] of Object.entries(req.headers)) {
    if (k === 'host' || HOP_BY_HOP.has(k) || v === undefined) continue;
    // Envoy's HCM (proxy_100_continue off, as envoy.yaml leaves it) answers `100 Continue` itself, as Node's
    // server does here, and removes the header before any filter sees it.
    if (k === 'expect' && typeof v === 'string' && v.toLowerCase() === '100-continue') continue;
    headers.push([k, Array.isArray(v) ? v.join(', ') : v]);
  }
  // The HCM adds these before any filter runs.
  if (!headers.some(([k]) => k === 'x-request-id')) headers.push(['x-request-id', randomUUID()]);
  headers.push(['x-forwarded-proto', 'http']);

  // The headers go to ext_proc as soon as they are in, before the body (§2.2): a request tiergate turns away at
  // its headers (a missing key) is answered while the client is still uploading, and a client that drops its
  // upload leaves tiergate a stream to end (and a ledger row), as behind Envoy. Envoy's HTTP/1 codec passes the
  // headers with end_stream when the framing says there is no body (§2.3).
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  const answer = session.sendRequestHeaders(headers, !hasBody);
  let body: Promise<BodyPassed> | undefined;
  if (hasBody) {
    // FULL_DUPLEX_STREAMED: chunks go out as they arrive, without waiting for the headers' answer (which tiergate
    // holds until the body is whole). Otherwise the body is buffered while that answer is out, and goes in one
    // message after it (§2.2, "held").
    body = session.mode.requestBodyMode === 'FULL_DUPLEX_STREAMED' ? streamBody(req, session) : bufferBody(req, session, answer);
    // Settled later, or never if the headers' answer ends the exchange: a client gone meanwhile is no crash.
    body.catch(() => undefined);
  }
  if (sendOutcome(res, await answer)) return;
  let upstreamBody: Buffer = Buffer.alloc(0);
  if (body) {
    const { outcome, original } = await body;
    if (sendOutcome(res, outcome)) return;
    // What goes upstream is what the answers carried (duplex: the streamed answers; buffered: a body mutation).
    upstreamBody = outcome.kind === 'continue' && outcome.body ? outcome.body : original;
  }

  const tier = getHeader(session.requestHeaders, 'x-llm-tier') ?? opts.defaultTier;
  const base = opts.backends[tier];
  if (!base) {
    localReply(res, 404, `no route for tier ${tier}`);
    return;
  }
  let upstream: IncomingMessage;
  try {
    upstream = await forward(base, session.requestHeaders, upstreamBody);
  } catch (err) {
    localReply(res, 503, upstreamFailure(err as NodeJS.ErrnoException));
    return;
  }
  const responseHeaders: Headers = [[':status', String(upstream.statusCode ?? 502)]];
  for (const [k, v] of Object.entries(upstream.headers)) {
    if (HOP_BY_HOP.has(k) || v === undefined) continue;
    responseHeaders.push([k, Array.isArray(v) ? v.join(', ') : v]);
  }
  const rh = await session.sendResponseHeaders(responseHeaders, false);
  if (sendOutcome(res, rh)) {
    upstream.destroy();
    return;
  }
  await relayBody(upstream, res, session);
}

/** A request body's ext_proc outcome, and the body as the client sent it. */
interface BodyPassed {
  outcome: Outcome;
  original: Buffer;
}

/**
 * BUFFERED: the body is read whole (or until it outgrows the stream's buffer, which the session answers 413) and
 * sent in one message once the headers' answer is in.
 */
async function bufferBody(req: IncomingMessage, session: ExtProcSession, headersAnswer: Promise<Outcome>): Promise<BodyPassed> {
  const whole = await readWithin(req, session.filter.bufferLimitBytes);
  await headersAnswer;
  return { outcome: await session.sendRequestBody(whole, true), original: whole };
}

/**
 * FULL_DUPLEX_STREAMED: each piece goes out as it arrives, 16 KiB at most. A piece waits for the next one (or the
 * end) so that the last carries end_of_stream, as Envoy's HTTP/1 codec passes the bytes read with a message's end
 * in one call.
 */
async function streamBody(req: IncomingMessage, session: ExtProcSession): Promise<BodyPassed> {
  const original: Buffer[] = [];
  let held: Buffer | undefined;
  // Once the exchange is over (tiergate closed it, or it failed open) sending is a no-op, but every piece is kept:
  // Envoy then passes the rest of the body on unprocessed.
  for await (const c of req) {
    for (let i = 0; i < (c as Buffer).length; i += 16 * 1024) {
      const piece = (c as Buffer).subarray(i, i + 16 * 1024);
      if (held) void session.sendRequestBody(held, false);
      held = piece;
      original.push(piece);
    }
  }
  const outcome = await session.sendRequestBody(held ?? Buffer.alloc(0), true);
  return { outcome, original: Buffer.concat(original) };
}

/** The response headers as they stand after ext_proc's mutations. */
function writeHead(res: ServerResponse, session: ExtProcSession): void {
  const out: Record<string, string> = {};
  for (const [k, v] of session.responseHeaders) if (!k.startsWith(':')) out[k] = v;
  res.writeHead(Number(getHeader(session.responseHeaders, ':status') ?? 502), closingIfEarly(res, out));
}

/**
 * Envoy's local reply when the upstream fails before its response headers: 503 and the reason in Envoy's words,
 * which is what a client (and whoever reads its logs) sees behind the shipped Envoy. The local data plane used to
 * answer 502 with Node's error text.
 */
function upstreamFailure(err: NodeJS.ErrnoException): string {
  const reason =
    err.code === 'ECONNREFUSED'
      ? 'remote connection failure, transport failure reason: delayed connect error: Connection refused'
      : err.code === 'ECONNRESET' || err.message === 'socket hang up'
        ? 'connection termination'
        : `remote connection failure, transport failure reason: ${err.code ?? err.message}`;
  return `upstream connect error or disconnect/reset before headers. reset reason: ${reason}`;
}

function forward(base: string, headers: Headers, body: Buffer): Promise<IncomingMessage> {
  const url = new URL(headers.find(([k]) => k === ':path')?.[1] ?? '/', base);
  const out: Record<string, string> = {};
  for (const [k, v] of headers) if (!k.startsWith(':')) out[k] = v;
  out.host = url.host;
  out['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const r = httpRequest(url, { method: headers.find(([k]) => k === ':method')?.[1] ?? 'POST', headers: out }, resolve);
    r.on('error', reject);
    r.end(body);
  });
}

/**
 * STREAMED: the headers go out at once; every upstream chunk goes to ext_proc as it arrives, without waiting
 * for earlier answers (pipelined, §2.2); answers come back in order and each is written to the client as it
 * resolves. The stream ends with an empty end_of_stream chunk, as Envoy's does.
 * BUFFERED: the whole body in one message, and the headers wait for its answer, which may still change them.
 */
async function relayBody(upstream: IncomingMessage, res: ServerResponse, session: ExtProcSession): Promise<void> {
  if (session.mode.responseBodyMode === 'FULL_DUPLEX_STREAMED') {
    // Every chunk goes out at once; what reaches the client is what the streamed answers carry, as they come.
    writeHead(res, session);
    session.onStreamedBody = (kind, data) => {
      if (kind === 'response_body' && data.length > 0 && !res.destroyed) res.write(data);
    };
    for await (const c of upstream) {
      // After a clean close or a fail-open the rest goes to the client as it comes, unprocessed (§8).
      if (!session.passesThrough) void session.sendResponseBody(c as Buffer, false);
      else if (!res.destroyed) res.write(c as Buffer);
    }
    const o = await session.sendResponseBody(Buffer.alloc(0), true);
    // Headers went out already: a failure now can only cut the response short (§7).
    if (o.kind === 'continue' || session.passesThrough) res.end();
    else res.destroy();
    return;
  }
  if (session.mode.responseBodyMode === 'BUFFERED') {
    const whole = await readWithin(upstream, session.filter.bufferLimitBytes);
    const o = await session.sendResponseBody(whole, true);
    if (sendOutcome(res, o)) return;
    const body = o.kind === 'continue' && o.body ? o.body : whole;
    // Envoy recomputes content-length for a buffered body it forwards.
    setHeader(session.responseHeaders, 'content-length', String(body.length));
    writeHead(res, session);
    res.end(body);
    return;
  }
  writeHead(res, session);
  let chain: Promise<void> = Promise.resolve();
  const relay = (chunk: Buffer, eos: boolean) => {
    const answer = session.sendResponseBody(chunk, eos);
    chain = chain.then(async () => {
      const o = await answer;
      // Headers went out already: a failure (an error status, a timeout, a local reply) can only cut the response
      // short, as Envoy resets the downstream stream then (§8); nothing after it reaches the client.
      if (o.kind === 'error' || o.kind === 'immediate') {
        res.destroy();
        return;
      }
      const data = o.kind === 'continue' && o.body ? o.body : chunk;
      if (data.length > 0 && !res.destroyed) res.write(data);
    });
  };
  for await (const c of upstream) {
    if (res.destroyed) break;
    relay(c as Buffer, false);
  }
  relay(Buffer.alloc(0), true);
  await chain;
  if (!res.destroyed) res.end();
}
