// The semantic cache's embedder for an OpenAI-compatible /v1/embeddings endpoint (vLLM, TEI, OpenAI), against a
// local HTTP server: what it sends, how it reads the answer, and every way the answer can be wrong or late.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbedderRefusedError } from '../../src/cache/embedders/embedder.js';
import { OpenAiEmbedder } from '../../src/cache/embedders/openai-embedder.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  server = undefined;
});

interface Seen {
  path: string | undefined;
  authorization: string | undefined;
  body: { model?: string; input?: string[]; encoding_format?: string };
}

/** A server that answers every request with `answer`, and records what it was sent. */
async function endpoint(answer: (seen: Seen, res: ServerResponse) => void): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const s = { path: req.url, authorization: req.headers.authorization, body: JSON.parse(text) as Seen['body'] };
      seen.push(s);
      answer(s, res);
    });
  });
  await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, seen };
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

const embedder = (url: string, over: Partial<ConstructorParameters<typeof OpenAiEmbedder>[0]> = {}) =>
  new OpenAiEmbedder({ url, model: 'bge-m3', apiKey: undefined, timeoutMs: 1000, maxConcurrency: 32, ...over });

describe('OpenAI-compatible embedder', () => {
  it('posts the model and inputs as float embeddings, with the key when one is set, and returns unit vectors', async () => {
    const e = await endpoint((s, res) => json(res, 200, { object: 'list', data: (s.body.input ?? []).map((_, i) => ({ object: 'embedding', index: i, embedding: [3 * (i + 1), 4 * (i + 1)] })) }));
    const vectors = await embedder(`${e.url}/`, { apiKey: 'sk-test' }).embed(['first', 'second']);
    expect(e.seen).toEqual([{ path: '/v1/embeddings', authorization: 'Bearer sk-test', body: { model: 'bge-m3', input: ['first', 'second'], encoding_format: 'float' } }]);
    expect(vectors.map((v) => [...v].map((x) => Number(x.toFixed(6))))).toEqual([
      [0.6, 0.8],
      [0.6, 0.8],
    ]);
    expect(vectors[0]).toBeInstanceOf(Float32Array);
    // No key configured: no authorization header at all.
    await embedder(e.url).embed(['x']);
    expect(e.seen[1]?.authorization).toBeUndefined();
  });

  it('puts vectors back in input order when the endpoint lists them by index in another order', async () => {
    const e = await endpoint((_s, res) => json(res, 200, { data: [{ index: 1, embedding: [0, 2] }, { index: 0, embedding: [5, 0] }] }));
    const vectors = await embedder(e.url).embed(['a', 'b']);
    expect(vectors.map((v) => [...v])).toEqual([
      [1, 0],
      [0, 1],
    ]);
  });

  it.each([
    ['an error status', (res: ServerResponse) => json(res, 503, { error: { message: 'overloaded' } }), 'embeddings endpoint answered 503'],
    ['too few vectors', (res: ServerResponse) => json(res, 200, { data: [{ index: 0, embedding: [1] }] }), 'returned 1 vectors for 2 inputs'],
    ['no data at all', (res: ServerResponse) => json(res, 200, {}), 'returned 0 vectors for 2 inputs'],
    ['an entry without its embedding', (res: ServerResponse) => json(res, 200, { data: [{ index: 0, embedding: [1] }, { index: 1 }] }), 'returned no embedding'],
    ['a body that is not JSON', (res: ServerResponse) => res.end('<html>bad gateway</html>'), /JSON/],
    // Each of these left a hole or a vector of NaN, which failed later as a processing error or scored nothing.
    ['an index past the inputs', (res: ServerResponse) => json(res, 200, { data: [{ index: 0, embedding: [1, 0] }, { index: 2, embedding: [0, 1] }] }), 'returned vectors that are not one per input'],
    ['a negative index', (res: ServerResponse) => json(res, 200, { data: [{ index: -1, embedding: [1, 0] }, { index: 1, embedding: [0, 1] }] }), 'returned vectors that are not one per input'],
    ['an index that is not a whole number', (res: ServerResponse) => json(res, 200, { data: [{ index: 0.5, embedding: [1, 0] }, { index: 1, embedding: [0, 1] }] }), 'returned vectors that are not one per input'],
    ['one index twice', (res: ServerResponse) => json(res, 200, { data: [{ index: 1, embedding: [1, 0] }, { index: 1, embedding: [0, 1] }] }), 'returned vectors that are not one per input'],
    ['vectors of two lengths', (res: ServerResponse) => json(res, 200, { data: [{ index: 0, embedding: [1, 0] }, { index: 1, embedding: [0, 1, 0] }] }), 'returned vectors of different lengths'],
    ['an empty vector', (res: ServerResponse) => json(res, 200, { data: [{ index: 0, embedding: [] }, { index: 1, embedding: [] }] }), 'returned no embedding'],
    ['a component that is not a number', (res: ServerResponse) => json(res, 200, { data: [{ index: 0, embedding: [1, '0'] }, { index: 1, embedding: [0, null] }] }), 'returned no embedding'],
  ])('%s is an error the semantic cache treats as the embedder failing', async (_name, answer, message) => {
    const e = await endpoint((_s, res) => answer(res));
    await expect(embedder(e.url).embed(['a', 'b'])).rejects.toThrow(message);
  });

  it.each([
    [413, { error: 'Input validation error: `inputs` must have less than 512 tokens. Given: 900 (the secret question)', error_type: 'Validation' }],
    [400, { error: { message: "This model's maximum context length is 512 tokens. However, you requested 900 tokens.", type: 'invalid_request_error' } }],
    [422, { detail: [{ msg: 'input too long' }] }],
  ])('%i refuses the question, not the endpoint: an EmbedderRefusedError, without the body it answered', async (status, body) => {
    const e = await endpoint((_s, res) => json(res, status, body));
    const err = await embedder(e.url).embed(['a long question']).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(EmbedderRefusedError);
    expect((err as Error).message).toBe(`embeddings endpoint refused the question (${status})`);
  });

  it.each([401, 404, 429, 500])('%i is the endpoint failing, not a refusal of the question', async (status) => {
    const e = await endpoint((_s, res) => json(res, status, {}));
    const err = await embedder(e.url).embed(['q']).catch((x: unknown) => x);
    expect(err).not.toBeInstanceOf(EmbedderRefusedError);
    expect((err as Error).message).toBe(`embeddings endpoint answered ${status}`);
  });

  it('an endpoint that does not answer in timeoutMs is an error, and the request is abandoned', async () => {
    let closed = false;
    const e = await endpoint((_s, res) => res.on('close', () => (closed = true))); // never answers
    await expect(embedder(e.url, { timeoutMs: 50 }).embed(['a'])).rejects.toThrow('embeddings request timed out');
    await expect.poll(() => closed, { timeout: 2000 }).toBe(true);
    expect(e.seen).toHaveLength(1);
  });

  it('a body that arrives too slowly is timed out too, not only the headers', async () => {
    const e = await endpoint((_s, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"data": [');
      // …and the rest never comes.
    });
    await expect(embedder(e.url, { timeoutMs: 80 }).embed(['a'])).rejects.toThrow('embeddings request timed out');
  });
});

describe('OpenAI-compatible embedder under more questions than the endpoint takes', () => {
  /** An endpoint that holds every request until released: what it was asked, in order, and the most held at once. */
  async function heldEndpoint() {
    const held: Array<{ input: string; answer: () => void }> = [];
    let open = 0;
    let most = 0;
    const e = await endpoint((s, res) => {
      most = Math.max(most, ++open);
      held.push({ input: (s.body.input ?? [])[0] as string, answer: () => (open--, json(res, 200, { data: [{ index: 0, embedding: [1, 0] }] })) });
    });
    return { ...e, held, most: () => most };
  }

  it('sends at most maxConcurrency at a time; a quiet tenant goes before a flooding one’s backlog, which is bounded', async () => {
    const e = await heldEndpoint();
    const emb = embedder(e.url, { maxConcurrency: 4, timeoutMs: 10_000 });
    const results: string[] = [];
    const ask = (q: string, tenant: string) =>
      emb.embed([q], tenant).then(
        () => void results.push(`${q} ok`),
        (err: unknown) => void results.push(`${q} ${(err as Error).name}`),
      );
    // 4 POSTs and 16 waiting (4 per POST allowed); the 21st is refused at once.
    const asked = Array.from({ length: 21 }, (_, i) => ask(`acme-${i}`, 'acme'));
    await expect.poll(() => e.held.length).toBe(4);
    await expect.poll(() => results).toEqual(['acme-20 EmbedderBusyError']);
    expect(emb.load()).toEqual({ limit: 4, inFlight: 4, waiting: 16 });
    // globex finds the queue full of acme's: it takes the place of acme's newest waiting question.
    const quiet = ask('globex-0', 'globex');
    await expect.poll(() => results).toContain('acme-19 EmbedderBusyError');
    for (let i = 0; i < 20; i++) {
      await expect.poll(() => e.held.length > i).toBe(true);
      e.held[i]?.answer();
    }
    await Promise.all([...asked, quiet]);
    // Sent after at most one more of acme's 15 still waiting (the queue's turns: fair-queue.ts), not after all.
    const sent = e.held.map((h) => h.input);
    expect(sent.slice(0, 4)).toEqual(['acme-0', 'acme-1', 'acme-2', 'acme-3']);
    expect(sent.indexOf('globex-0')).toBeLessThanOrEqual(5);
    expect(e.most()).toBe(4);
    expect(results.filter((r) => r.endsWith(' ok'))).toHaveLength(20);
  });

  it("foresees a question's wait by the POSTs under way and its tenant's questions waiting, once one has answered", async () => {
    const e = await heldEndpoint();
    const emb = embedder(e.url, { maxConcurrency: 1, timeoutMs: 10_000 });
    expect(emb.soonestMs('q', 'acme')).toBe(0);
    const first = emb.embed(['first'], 'acme');
    await expect.poll(() => e.held.length).toBe(1);
    e.held[0]?.answer();
    await first;
    // One POST under way and three of acme's waiting: acme's next goes after them, globex's may go first.
    const asked = ['a', 'b', 'c', 'd'].map((q) => emb.embed([q], 'acme'));
    await expect.poll(() => e.held.length).toBe(2);
    // globex's read first: each reading is less by the time gone since the last.
    const globex = emb.soonestMs('q', 'globex');
    expect(emb.soonestMs('q', 'acme')).toBeGreaterThan(globex);
    for (let i = 1; i < 5; i++) {
      await expect.poll(() => e.held.length > i).toBe(true);
      e.held[i]?.answer();
    }
    await Promise.all(asked);
  });

  // The semantic index is partitioned by the embedder's id: vectors of two models must never be compared.
  it("its id names the model, so another model's vectors go to another partition", async () => {
    const e = await endpoint((_s, res) => json(res, 500, {}));
    expect(embedder(e.url).id).toBe('openai:bge-m3');
    expect(embedder(e.url, { model: 'e5-large' }).id).toBe('openai:e5-large');
  });

  it('only a timeout, 429 or 503 says the endpoint is overloaded: a 500, a refusal or a bad answer leaves the concurrency as it is', async () => {
    let answer: (s: Seen, res: ServerResponse) => void = (_s, res) => json(res, 500, {});
    const e = await endpoint((s, res) => answer(s, res));
    const emb = embedder(e.url, { maxConcurrency: 8 });
    await expect(emb.embed(['a'])).rejects.toThrow('answered 500');
    answer = (_s, res) => json(res, 413, {});
    await expect(emb.embed(['b'])).rejects.toBeInstanceOf(EmbedderRefusedError);
    answer = (_s, res) => res.end('<html>bad gateway</html>');
    await expect(emb.embed(['c'])).rejects.toThrow(/JSON/);
    answer = (s, res) => json(res, 200, { data: (s.body.input ?? []).map((_, index) => ({ index, embedding: [1, 0] })) });
    await emb.embed(['d']);
    expect(emb.limit.current).toBe(8);
    answer = (_s, res) => json(res, 503, {});
    await expect(emb.embed(['e'])).rejects.toThrow('answered 503');
    expect(emb.limit.current).toBe(4);
  });

  it('close (at shutdown) refuses what waits and every later question; the call under way still answers', async () => {
    const held: ServerResponse[] = [];
    const e = await endpoint((_s, res) => held.push(res));
    const emb = embedder(e.url, { maxConcurrency: 1 });
    const running = emb.embed(['a']);
    const waiting = emb.embed(['b']);
    await expect.poll(() => held.length).toBe(1);
    await emb.close();
    await expect(waiting).rejects.toThrow('embeddings endpoint closed');
    await expect(emb.embed(['c'])).rejects.toThrow('embeddings endpoint closed');
    json(held[0] as ServerResponse, 200, { data: [{ index: 0, embedding: [3, 4] }] });
    expect((await running).map((v) => [...v])).toEqual([[0.6000000238418579, 0.800000011920929]]);
    expect(e.seen).toHaveLength(1);
  });

  it('sends fewer at a time after a timeout or an overloaded answer, and more again as answers come in time', async () => {
    let mode: 'hang' | '429' | 'ok' = 'hang';
    const e = await endpoint((s, res) => {
      if (mode === '429') json(res, 429, { error: 'Model is overloaded' });
      else if (mode === 'ok') json(res, 200, { data: (s.body.input ?? []).map((_, index) => ({ index, embedding: [1, 0] })) });
    });
    const emb = embedder(e.url, { maxConcurrency: 8, timeoutMs: 60 });
    expect(emb.limit.current).toBe(8);
    await expect(emb.embed(['a'])).rejects.toThrow('timed out');
    expect(emb.limit.current).toBe(4);
    await new Promise((r) => setTimeout(r, 70)); // one cut per timeout
    mode = '429';
    await expect(emb.embed(['b'])).rejects.toThrow('answered 429');
    expect(emb.limit.current).toBe(2);
    mode = 'ok';
    for (let i = 0; i < 40; i++) await emb.embed([`c${i}`]);
    expect(emb.limit.current).toBe(8);
  });
});
