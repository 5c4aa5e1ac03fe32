// The semantic cache through the Envoy-faithful client: near-duplicate questions answered from the cache, never
// across tenants or contexts, guards that refuse close-but-different questions, the threshold floor, a failing
// embedder → bypass, and entries shared through Redis. A small deterministic embedder stands in for the model in
// most tests (so the similarity is known); one test runs the real local model.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Worker } from 'node:worker_threads';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dot, EmbedderBusyError, normalise, type Embedder } from '../../src/cache/embedders/embedder.js';
import { takeBatch } from '../../src/cache/embedders/batch-plan.js';
import { LocalEmbedder, MAX_WAITING } from '../../src/cache/embedders/local-embedder.js';
import { OpenAiEmbedder } from '../../src/cache/embedders/openai-embedder.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { chatRequestHeaders, getHeader, type ExtProcSession } from '../../src/dev/envoy-client.js';
import type { Outcome } from '../../src/dev/envoy-filter.js';
import type { LedgerRow } from '../../src/ledger/row.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RedisSearchStandIn } from '../helpers/redis-search-standin.js';
import { jsonBody, metricValue, runtimeFor, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

/** Bag of words → vector: questions with the same words (any order, any case) are identical vectors. */
class WordsEmbedder implements Embedder {
  readonly id = 'test:words';
  calls = 0;
  fail = false;
  /** Refuses as the local embedder does when its queue is full. */
  busy = false;
  /** How long each of the next calls takes, in ms: a cold or busy model. */
  delays: number[] = [];
  /** The tenant each call named. */
  owners: Array<string | undefined> = [];
  async embed(texts: readonly string[], owner?: string): Promise<Float32Array[]> {
    this.calls++;
    this.owners.push(owner);
    const delay = this.delays.shift();
    if (delay) await new Promise((r) => setTimeout(r, delay));
    if (this.fail) throw new Error('embedder down');
    if (this.busy) throw new EmbedderBusyError(128);
    return texts.map((t) => {
      const v = new Float32Array(64);
      for (const w of t.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
        let h = 7;
        for (const c of w) h = (h * 31 + c.charCodeAt(0)) >>> 0;
        v[h % 64] = (v[h % 64] as number) + 1;
      }
      return normalise(v);
    });
  }
  async close(): Promise<void> {}
}

const running: TestTiergate[] = [];
async function start(extra: ConfigInput = {}, embedder: Embedder = new WordsEmbedder()): Promise<TestTiergate> {
  // 0.9 rather than the local model's conservative default (0.98): these tests are about the mechanism.
  const t = await startTiergate({ tenants: { '*': { cache: { mode: 'semantic', threshold: 0.9 } } }, ...extra }, {}, { embedder });
  running.push(t);
  return t;
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((t) => t.stop()));
});

async function ask(t: TestTiergate, question: string, opts: { system?: string; tenant?: string; extra?: Record<string, unknown> } = {}): Promise<{ s: ExtProcSession; o: Outcome }> {
  const s = t.pool.open();
  await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', question]]), false);
  const messages = [{ role: 'system', content: opts.system ?? 'Be brief.' }, { role: 'user', content: question }];
  return { s, o: await s.sendRequestBody(jsonBody({ model: 'auto', messages, ...opts.extra })) };
}

async function answer(s: ExtProcSession, content: string): Promise<void> {
  await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
  await s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'weak-model', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } }), true);
  s.close();
}

/** Asks, lets the "backend" answer, and waits until the answer (and its vector) are stored. */
async function seed(t: TestTiergate, question: string, content: string, opts: { system?: string } = {}): Promise<void> {
  const before = await metricValue(t.app, 'tiergate_cache_writes_total', { result: 'stored' });
  const { s, o } = await ask(t, question, opts);
  expect(o.kind).toBe('continue');
  await answer(s, content);
  await expect.poll(() => metricValue(t.app, 'tiergate_cache_writes_total', { result: 'stored' })).toBe(before + 1);
  await new Promise((r) => setTimeout(r, 20)); // the vector is added right after the entry
}

async function outcome(t: TestTiergate, question: string, opts: { system?: string; extra?: Record<string, unknown> } = {}): Promise<string> {
  const { s, o } = await ask(t, question, opts);
  s.close();
  if (o.kind === 'immediate') return `${getHeader(o.headers, 'x-cache')}: ${JSON.parse(o.body.toString()).choices[0].message.content}`;
  return 'upstream';
}

describe('semantic cache', () => {
  it('a question longer than maxQuestionChars skips the semantic half: no embedding, no semantic hit; the exact cache still answers', async () => {
    const embedder = new WordsEmbedder();
    const t = await start({ cache: { semantic: { maxQuestionChars: 100 } } }, embedder);
    const long = `Please tell me, in a few words, ${'what the capital city of the French Republic is, '.repeat(3)}thanks`;
    expect(long.length).toBeGreaterThan(100);
    await seed(t, long, 'Paris.');
    expect(embedder.calls).toBe(0);
    expect(await outcome(t, long)).toBe('hit-exact: Paris.');
    expect(await outcome(t, long.toUpperCase())).toBe('upstream');
    expect(embedder.calls).toBe(0);
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic', result: 'bypass', reason: 'too_long' })).toBe(2);
    // Up to the bound, the semantic half runs as ever: a question of exactly maxQuestionChars is embedded.
    const calls = embedder.calls;
    const atBound = `Is ${'a'.repeat(96)}?`;
    expect(atBound.length).toBe(100);
    expect(await outcome(t, atBound)).toBe('upstream');
    expect(embedder.calls).toBe(calls + 1);
    await seed(t, 'What is the capital of France?', 'Paris.');
    expect(await outcome(t, 'what is the capital of france')).toBe('hit-semantic: Paris.');
    expect(embedder.calls).toBeGreaterThan(0);
  });

  it('a rephrasing with the same content words is a semantic hit; the guards refuse close-but-different questions', async () => {
    const t = await start();
    await seed(t, 'What is the capital of France?', 'Paris.');
    expect(await outcome(t, 'what is the capital of france')).toBe('hit-semantic: Paris.');
    expect(await outcome(t, 'The capital of France is what?')).toBe('hit-semantic: Paris.');
    // Another entity, a number, a negation, an added word: close in embedding space, still not the same question.
    expect(await outcome(t, 'What is the capital of Germany?')).toBe('upstream');
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic', result: 'miss', reason: 'guard' })).toBe(0);
    expect(await outcome(t, 'What is the capital of France in 1789?')).toBe('upstream');
    expect(await outcome(t, 'What is not the capital of France?')).toBe('upstream');
    expect(await outcome(t, 'What is the former capital of France?')).toBe('upstream');
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic', result: 'hit' })).toBe(2);
  });

  it('the guards are checked on every candidate: the same words with another quote, code span or URL go upstream, counted as guarded', async () => {
    // Under the lexical guard the index hands back only entries with the same content words; quotes, code and URLs
    // are not words, so these candidates come back, and only the guards refuse them.
    // A low threshold: the test embedder reads the quoted words too, so these are less alike to it than to a model.
    const t = await start({ tenants: { '*': { cache: { mode: 'semantic', threshold: 0.5 } } }, cache: { semantic: { minThreshold: 0.5 } } });
    await seed(t, 'Translate "good morning" into French', 'Bonjour.');
    await seed(t, 'What does `ls -a` print?', 'Hidden files too.');
    await seed(t, 'Summarise https://example.com/a please', 'A page.');
    expect(await outcome(t, 'translate "good morning" into french')).toBe('hit-semantic: Bonjour.');
    expect(await outcome(t, 'Translate "good night" into French')).toBe('upstream');
    expect(await outcome(t, 'What does `ls -l` print?')).toBe('upstream');
    expect(await outcome(t, 'Summarise https://example.com/b please')).toBe('upstream');
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic', result: 'miss', reason: 'guard' })).toBe(3);
  });

  it('without the lexical guard the vector search alone finds candidates, and the guards still refuse the different ones', async () => {
    const t = await start({ tenants: { '*': { cache: { mode: 'semantic', threshold: 0.8 } } }, cache: { semantic: { lexicalGuard: false, minThreshold: 0.8 } } });
    // Long questions, so that one word more or less leaves them close enough for the LSH buckets to meet.
    const q = (place: string, extra = '') => `Please tell me briefly which city is the capital of ${place} ${extra}today`;
    await seed(t, q('France'), 'Paris.');
    // Another content word is allowed now; another entity or number still is not.
    expect(await outcome(t, q('France', 'right '))).toBe('hit-semantic: Paris.');
    expect(await outcome(t, q('Germany'))).toBe('upstream');
    expect(await outcome(t, q('France', 'in 1789 '))).toBe('upstream');
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic', result: 'miss', reason: 'guard' })).toBe(2);
  });

  it('a tenant whose cache is exact never has its questions embedded: a rephrasing goes upstream', async () => {
    const embedder = new WordsEmbedder();
    const t = await start({ tenants: { '*': { cache: { mode: 'exact' } } } }, embedder);
    await seed(t, 'What is the capital of France?', 'Paris.');
    expect(await outcome(t, 'What is the capital of France?')).toBe('hit-exact: Paris.');
    expect(await outcome(t, 'what is the capital of france')).toBe('upstream');
    expect(embedder.calls).toBe(0);
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic' })).toBe(0);
  });

  it('an answer evicted before its vector is a miss that goes upstream, and the request is answered there', async () => {
    // A memory store of 50 KB, answers of 15,000 characters (~31 KB each): the second evicts the first, whose
    // vector stays indexed (the vector index is bounded by entries, cache.maxEntries, not by bytes).
    const t = await start({ tenants: { '*': { cache: { mode: 'semantic', threshold: 0.9 } } }, cache: { maxBytes: 50_000 } });
    const long = 'Seven. '.repeat(3000).slice(0, 15_000);
    await seed(t, 'What is the capital of France?', 'Paris. '.repeat(3000).slice(0, 15_000));
    await seed(t, 'Name a prime number.', long);
    const notFound = () => metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic', result: 'miss', reason: 'not_found' });
    const before = await notFound();
    expect(await outcome(t, 'what is the capital of france')).toBe('upstream');
    // Counted as the miss it is, not as a hit without an answer.
    expect(await notFound()).toBe(before + 1);
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic', result: 'hit' })).toBe(0);
    // …while the answer still stored is a hit as before.
    expect(await outcome(t, 'name a prime number')).toBe(`hit-semantic: ${long}`);
  });

  it('never crosses a system prompt or a parameter', async () => {
    const u = await start();
    await seed(u, 'What is the capital of France?', 'Paris.');
    expect(await outcome(u, 'what is the capital of france', { system: 'Answer in French.' })).toBe('upstream');
    expect(await outcome(u, 'what is the capital of france', { extra: { temperature: 0 } })).toBe('upstream');
  });

  it('tenants never share entries, even for identical questions', async () => {
    const { sha256Hex } = await import('../../src/auth/api-keys.js');
    const embedder = new WordsEmbedder();
    const t = await start({ tenants: { '*': { cache: { mode: 'semantic', threshold: 0.9 } } }, auth: { mode: 'api_key', keys: [{ id: 'a', sha256: sha256Hex('key-a-0123456789'), tenant: 'acme' }, { id: 'b', sha256: sha256Hex('key-b-0123456789'), tenant: 'globex' }] } }, embedder);
    const askAs = async (key: string, q: string) => {
      const s = t.pool.open();
      await s.sendRequestHeaders(chatRequestHeaders([['authorization', `Bearer ${key}`]]), false);
      return { s, o: await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: q }] })) };
    };
    const first = await askAs('key-a-0123456789', 'What is the capital of France?');
    await answer(first.s, 'Paris, for acme.');
    await expect.poll(() => metricValue(t.app, 'tiergate_cache_writes_total', { result: 'stored' })).toBe(1);
    await new Promise((r) => setTimeout(r, 20));
    const other = await askAs('key-b-0123456789', 'what is the capital of france');
    expect(other.o.kind).toBe('continue');
    other.s.close();
    const same = await askAs('key-a-0123456789', 'what is the capital of france');
    expect(same.o.kind === 'immediate' && getHeader(same.o.headers, 'x-cache')).toBe('hit-semantic');
    same.s.close();
    // Each embedding names its tenant, so the local model's queue can share itself out between them.
    expect(embedder.owners).toEqual(['acme', 'globex', 'acme']);
  });

  it("a tenant's threshold applies, and config check refuses one below the operator's floor", async () => {
    // The words embedder gives 1.0 for the same words; an extra "please" makes it 6/√42 ≈ 0.93, which passes
    // the default 0.9 (and the lexical guard: "please" is a function word) but not this tenant's 0.99.
    const t = await start({ tenants: { '*': { cache: { mode: 'semantic', threshold: 0.9 } }, acme: { cache: { threshold: 0.99 } } } });
    await seed(t, 'What is the capital of France?', 'Paris.');
    expect(await outcome(t, 'The capital of France is what?')).toBe('hit-semantic: Paris.');
    expect(await outcome(t, 'What is the capital of France, please?')).toBe('hit-semantic: Paris.');
    const strict = await start({ tenants: { '*': { cache: { mode: 'semantic', threshold: 0.99 } } } });
    await seed(strict, 'What is the capital of France?', 'Paris.');
    expect(await outcome(strict, 'The capital of France is what?')).toBe('hit-semantic: Paris.');
    expect(await outcome(strict, 'What is the capital of France, please?')).toBe('upstream');
    expect(() => runtimeFor({ cache: { semantic: { minThreshold: 0.9 } }, tenants: { acme: { cache: { mode: 'semantic', threshold: 0.5 } } } })).toThrow(/below the floor/);
  });

  it('an embedder that fails turns lookups into bypasses; the request goes upstream', async () => {
    const embedder = new WordsEmbedder();
    const t = await start({}, embedder);
    await seed(t, 'What is the capital of France?', 'Paris.');
    embedder.fail = true;
    const { s, o } = await ask(t, 'what is the capital of france');
    expect(o.kind).toBe('continue');
    await answer(s, 'Paris (live).');
    expect(getHeader(s.responseHeaders, 'x-cache')).toBe('bypass');
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic', result: 'bypass', reason: 'embedder_error' })).toBe(1);
    // The exact cache still answers an identical question.
    expect(await outcome(t, 'What is the capital of France?')).toBe('hit-exact: Paris.');
  });

  it('an embedder too busy to take a question: a bypass that goes upstream at once, never counted as a failure', async () => {
    const embedder = new WordsEmbedder();
    const t = await start({}, embedder);
    await seed(t, 'What is the capital of France?', 'Paris.');
    embedder.busy = true;
    // More refusals in a row than the breaker's failures (3): load must not open it.
    for (let i = 0; i < 6; i++) {
      const { s, o } = await ask(t, `what is the capital of france, take ${i}`);
      expect(o.kind).toBe('continue');
      await answer(s, 'Paris (live).');
      expect(getHeader(s.responseHeaders, 'x-cache')).toBe('bypass');
    }
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic', result: 'bypass', reason: 'embedder_busy' })).toBe(6);
    expect(await metricValue(t.app, 'tiergate_cache_store_degraded', { part: 'semantic' })).toBe(0);
    embedder.busy = false;
    expect(await outcome(t, 'what is the capital of france')).toBe('hit-semantic: Paris.');
  });

  it('an embedding slower than the deadline: that request goes upstream, and its answer is still indexed once the vector arrives', async () => {
    const embedder = new WordsEmbedder();
    embedder.delays = [150];
    const t = await start({ cache: { semantic: { lookupDeadlineMs: 30 } } }, embedder);
    await seed(t, 'What is the capital of France?', 'Paris.');
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic', result: 'miss', reason: 'deadline' })).toBe(1);
    await expect.poll(() => outcome(t, 'what is the capital of france')).toBe('hit-semantic: Paris.');
  });

  it('the ledger row of a semantic hit is a cache hit with its saving', async () => {
    const t = await start();
    await seed(t, 'What is the capital of France?', 'Paris.');
    await outcome(t, 'what is the capital of france');
    let rows: LedgerRow[] = [];
    await expect.poll(async () => (rows = await t.rows()).length).toBe(2);
    expect(rows.find((r) => r.request_id === 'what is the capital of france')).toMatchObject({ cache_hit: true, status: 'cache_hit', cost_usd: { total: 0 } });
    // Both lookups' time (the miss's: exact, embedding and search) is part of the request's, never more.
    for (const r of rows) {
      expect(r.latency_ms.cache_lookup).toBeGreaterThanOrEqual(0);
      expect(r.latency_ms.cache_lookup).toBeLessThanOrEqual(r.latency_ms.total);
    }
  });
});

describe('semantic cache with an OpenAI-compatible embeddings endpoint', () => {
  it('a question the endpoint refuses as too long (413, as TEI) is bypassed, and never opens the breaker', async () => {
    // A stand-in for TEI with a 512-token model: questions over 60 characters refused, the rest embedded by words.
    const words = new WordsEmbedder();
    const calls: number[] = [];
    const server = createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => {
        const input = (JSON.parse(text) as { input: string[] }).input;
        calls.push(input.length);
        if (input.some((q) => q.length > 60)) {
          res.writeHead(413, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'Input validation error: `inputs` must have less than 512 tokens. Given: 900', error_type: 'Validation' }));
          return;
        }
        void words.embed(input).then((vs) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ object: 'list', data: vs.map((v, index) => ({ object: 'embedding', index, embedding: Array.from(v) })) }));
        });
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
      const t = await start({ cache: { semantic: { lookupDeadlineMs: 5000 } } }, new OpenAiEmbedder({ url, model: 'multilingual-e5-large', apiKey: undefined, timeoutMs: 5000, maxConcurrency: 32 }));
      for (let i = 0; i < 5; i++) expect(await outcome(t, `Please summarise the following meeting notes for me, item ${i}: we agreed to ship on Friday`)).toBe('upstream');
      expect(calls).toHaveLength(5); // each was asked for, and refused
      expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic', result: 'bypass', reason: 'question_refused' })).toBe(5);
      expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic', result: 'bypass', reason: 'embedder_error' })).toBe(0);
      expect(await metricValue(t.app, 'tiergate_cache_store_degraded', { part: 'semantic' })).toBe(0);
      // Short questions still go through the semantic cache for everyone.
      await seed(t, 'What is the capital of France?', 'Paris.');
      expect(await outcome(t, 'what is the capital of france')).toBe('hit-semantic: Paris.');
      // The embedder's load, read at scrape time: the endpoint answered in time, so the limit is the most allowed.
      expect(await metricValue(t.app, 'tiergate_embedder_calls', { what: 'limit' })).toBe(32);
      expect(await metricValue(t.app, 'tiergate_embedder_calls', { what: 'in_flight' })).toBe(0);
      expect(await metricValue(t.app, 'tiergate_embedder_calls', { what: 'waiting' })).toBe(0);
      // A server error is still the embedder's fault: three in a row open the breaker.
      server.removeAllListeners('request');
      server.on('request', (_req, res) => {
        res.writeHead(503);
        res.end();
      });
      for (const q of ['one question', 'two questions', 'three questions']) expect(await outcome(t, q)).toBe('upstream');
      expect(await metricValue(t.app, 'tiergate_cache_store_degraded', { part: 'semantic' })).toBe(1);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('semantic cache with the real local embedder', () => {
  it('Universal Sentence Encoder lite, offline: a rephrasing hits, another country does not', async () => {
    const embedder = new LocalEmbedder();
    await embedder.whenReady();
    // The test is about the model's notion of "the same question", not its speed: on a busy 2-core runner an
    // embedding can take longer than the default 60 ms deadline, which would make a lookup a miss.
    const t = await start({ cache: { semantic: { lookupDeadlineMs: 10_000 } } }, embedder);
    await seed(t, 'What is the capital of France?', 'Paris.');
    expect(await outcome(t, "what's the capital of france")).toBe('hit-semantic: Paris.');
    expect(await outcome(t, 'What is the capital of Germany?')).toBe('upstream');
  }, 30_000);

  it('a question of only punctuation ("?", "...") is not embedded: the model refuses the empty text it would be', async () => {
    const local = new LocalEmbedder();
    await local.whenReady();
    const embedded: string[] = [];
    const embedder: Embedder = { id: local.id, embed: (texts) => (embedded.push(...texts), local.embed(texts)), close: () => local.close() };
    const t = await start({ cache: { semantic: { lookupDeadlineMs: 10_000 } } }, embedder);
    await seed(t, 'What is the capital of France?', 'Paris.');
    for (const q of ['?', ' ... ', '？！', '。']) {
      const { s, o } = await ask(t, q);
      expect(o.kind, q).toBe('continue');
      await answer(s, 'Could you say more?');
    }
    // Nothing was sent to the model but the seeded question; no lookup failed, so the breaker never counted one.
    expect(embedded).toEqual(['what is the capital of france']);
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic', result: 'bypass', reason: 'embedder_error' })).toBe(0);
    // Before, three such follow-ups in a row (from any tenant) opened the semantic breaker for every tenant.
    expect(await metricValue(t.app, 'tiergate_cache_store_degraded', { part: 'semantic' })).toBe(0);
    // The exact cache still answers such a follow-up repeated.
    await expect.poll(() => outcome(t, '?')).toBe('hit-exact: Could you say more?');
    expect(await outcome(t, "what's the capital of france")).toBe('hit-semantic: Paris.');
  }, 30_000);
});

describe('the local embedder', () => {
  // The model costs a batch about its size times its longest question: in arrival order, one long question made
  // every short one beside it as slow as itself (npm run bench:embedder-mix). The vectors do not depend on the batch.
  it('a long question waits out of the short ones\' batch, and each vector is the one the question gets alone', async () => {
    const batches: string[][] = [];
    const embedder = new LocalEmbedder((queue, max) => {
      const batch = takeBatch(queue, max);
      batches.push(batch.map((j) => (j as unknown as { texts: string[] }).texts[0] as string));
      return batch;
    });
    await embedder.whenReady();
    try {
      const long = (n: number) => `${n}: ${'please explain how the deployment pipeline promotes a build from staging. '.repeat(6)}`;
      const asked = ['first question', long(1), 'short one', 'short two', long(2), 'short three'];
      // The first goes to the model at once; the rest wait behind it and are planned when it is done.
      const vectors = await Promise.all(asked.map((q) => embedder.embed([q]).then(([v]) => v as Float32Array)));
      expect(batches).toEqual([['first question'], [long(1), long(2)], ['short one', 'short two', 'short three']]);
      for (const [i, q] of asked.entries()) {
        const [alone] = (await embedder.embed([q])) as [Float32Array];
        expect(dot(alone, vectors[i] as Float32Array), q).toBeCloseTo(1, 5);
      }
    } finally {
      await embedder.close();
    }
  }, 30_000);

  it("foresees a question's wait by its tenant's questions waiting in its length class, once a call has set the pace", async () => {
    const embedder = new LocalEmbedder();
    await embedder.whenReady();
    try {
      const short = 'how do I rotate the gateway key?';
      const long = `how do I ${'rotate the gateway key and restart nothing, '.repeat(8)}`;
      expect(embedder.soonestMs(short, 'acme')).toBe(0);
      await embedder.embed(['a first question'], 'acme');
      // One short question under way and twenty waiting, all acme's.
      const asked = Array.from({ length: 21 }, (_, i) => embedder.embed([`short question ${i}`], 'acme'));
      // Read in this order: the clock only moves on, and each reading is less by the time gone, so a difference
      // found is none the clock made.
      const acmeLong = embedder.soonestMs(long, 'acme');
      const globexShort = embedder.soonestMs(short, 'globex');
      const acmeShort = embedder.soonestMs(short, 'acme');
      expect(acmeShort).toBeGreaterThan(acmeLong);
      expect(acmeShort).toBeGreaterThan(globexShort);
      await Promise.all(asked);
      expect(embedder.soonestMs(short, 'acme')).toBeLessThan(acmeShort);
    } finally {
      await embedder.close();
    }
  }, 30_000);
});

describe('the local embedder when its thread stops', () => {
  // Out of memory, a fault in TensorFlow.js, or terminated: the batch it held used to wait for an answer that
  // never came, every later question queued behind it, and the semantic cache stayed off ("busy") until the
  // process restarted. Stopped here by terminating the thread while it embeds, as the runtime would.
  const threadOf = (e: LocalEmbedder) => (e as unknown as { worker: Worker }).worker;

  it('the batch it held fails at once, and the next question starts a new thread and is embedded', async () => {
    const embedder = new LocalEmbedder();
    await embedder.whenReady();
    try {
      const held = embedder.embed(['what is the capital of france']);
      void threadOf(embedder).terminate();
      await expect(held).rejects.toThrow(/local embedder stopped/);
      const [v] = (await embedder.embed(['what is the capital of france'])) as [Float32Array];
      expect(v).toHaveLength(512);
      expect(embedder.starts).toBe(2);
    } finally {
      await embedder.close();
    }
  }, 30_000);

  it('through the semantic cache: a failure the breaker counts, not a lookup that waits out its deadline for ever', async () => {
    const embedder = new LocalEmbedder();
    await embedder.whenReady();
    // The thread is stopped as the lookup's question reaches it, so that it stops while it embeds. Stopped when
    // the request was sent instead (CI, 2026-12-05), it could stop before the question arrived: the question then
    // started a new thread and waited for its model, past Envoy's 200 ms message timeout.
    let stopOnNext = false;
    const stopping: Embedder = {
      id: embedder.id,
      embed: (texts, owner) => {
        const embedded = embedder.embed(texts, owner);
        if (stopOnNext) void threadOf(embedder).terminate();
        stopOnNext = false;
        return embedded;
      },
      close: () => embedder.close(),
    };
    const t = await start({ cache: { semantic: { lookupDeadlineMs: 10_000 } } }, stopping);
    await seed(t, 'What is the capital of France?', 'Paris.');
    stopOnNext = true;
    const { s, o } = await ask(t, "what's the capital of france");
    expect(o.kind, JSON.stringify(o)).toBe('continue'); // went upstream at once, not after the 10 s deadline
    await answer(s, 'Paris.');
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic', result: 'bypass', reason: 'embedder_error' })).toBe(1);
    // Later lookups are served by a new thread, once it has loaded the model (~0.5 s: the first may miss its deadline).
    await expect.poll(() => outcome(t, 'What is the capital of France'), { timeout: 10_000 }).toBe('hit-semantic: Paris.');
    expect(embedder.starts).toBe(2);
  }, 30_000);

  it("a thread's 'error', then a new thread started for the next question, then the old thread's 'exit': the exit stops nothing of the new", async () => {
    const embedder = new LocalEmbedder();
    await embedder.whenReady();
    try {
      const old = threadOf(embedder);
      old.emit('error', new Error('out of memory')); // as the runtime reports a thread's fault, before its exit
      const next = embedder.embed(['what is the capital of france']); // starts a new thread, which loads the model
      await old.terminate(); // the old thread's 'exit', while the new one loads
      const [v] = (await next) as [Float32Array];
      expect(v).toHaveLength(512);
      expect(embedder.starts).toBe(2);
    } finally {
      await embedder.close();
    }
  }, 30_000);

  it('a text the model refuses fails that question alone, with the reason; the same thread embeds the next, each vector of unit length', async () => {
    const embedder = new LocalEmbedder();
    await embedder.whenReady();
    try {
      await expect(embedder.embed([''])).rejects.toThrow(/\S/);
      const [v] = (await embedder.embed(['what is the capital of france'])) as [Float32Array];
      expect(Math.sqrt(dot(v, v))).toBeCloseTo(1, 6);
      expect(embedder.starts).toBe(1);
    } finally {
      await embedder.close();
    }
  }, 30_000);

  it('closed: the question under way and those waiting are refused, and no thread is started again', async () => {
    const embedder = new LocalEmbedder();
    await embedder.whenReady();
    const thread = threadOf(embedder);
    const first = embedder.embed(['one']);
    const waiting = embedder.embed(['two']);
    const [a, b] = [first.catch((e: Error) => e), waiting.catch((e: Error) => e)];
    await embedder.close();
    expect(((await a) as Error).message).toMatch(/local embedder closed/);
    expect(((await b) as Error).message).toMatch(/closed/);
    await expect(embedder.embed(['three'])).rejects.toThrow(/closed/);
    expect(embedder.starts).toBe(1);
    expect(thread.threadId).toBe(-1); // the thread itself stopped, not just forgotten
  });
});

describe('semantic cache on Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(async () => redis.down());

  it('refuses questions past MAX_WAITING at once instead of queueing them without end, and embeds the rest', async () => {
    const embedder = new LocalEmbedder();
    await embedder.whenReady();
    try {
      // One question goes to the model at once; MAX_WAITING more may wait behind it.
      const asked = MAX_WAITING + 50;
      const results = await Promise.allSettled(Array.from({ length: asked }, (_, i) => embedder.embed([`question number ${i}`])));
      const refused = results.filter((r) => r.status === 'rejected');
      expect(refused).toHaveLength(asked - 1 - MAX_WAITING);
      expect(refused.every((r) => r.reason instanceof EmbedderBusyError)).toBe(true);
      const embedded = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
      expect(embedded).toHaveLength(1 + MAX_WAITING);
      expect(embedded.every((v) => v.length === 512)).toBe(true);
      // Drained, it takes questions again.
      expect((await embedder.embed(['one more question']))[0]).toHaveLength(512);
    } finally {
      await embedder.close();
    }
  });

  it("one tenant filling the queue does not shut another out: the other's questions take room from it, and are embedded first", async () => {
    const embedder = new LocalEmbedder();
    await embedder.whenReady();
    try {
      const order: string[] = [];
      const ask = (owner: string, i: number) => embedder.embed([`${owner} question number ${i}`], owner).then(() => order.push(`${owner}${i}`));
      const flood = Array.from({ length: MAX_WAITING + 50 }, (_, i) => ask('acme', i));
      const other = Array.from({ length: 3 }, (_, i) => ask('globex', i));
      const [a, g] = [await Promise.allSettled(flood), await Promise.allSettled(other)];
      // Before, all three of globex's were refused (the queue was acme's), and never embedded.
      expect(g.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
      const refused = a.filter((r) => r.status === 'rejected');
      // One went to the model at once and MAX_WAITING waited: 49 refused, then 3 of acme's waiting gave up their places.
      expect(refused).toHaveLength(49 + 3);
      expect(refused.every((r) => r.reason instanceof EmbedderBusyError)).toBe(true);
      // globex heads the batch after the one under way, not the end of acme's backlog.
      expect(Math.max(...[0, 1, 2].map((i) => order.indexOf(`globex${i}`)))).toBeLessThan(order.indexOf(`acme${MAX_WAITING - 4}`));
    } finally {
      await embedder.close();
    }
  });

  it('a cache store that is down bypasses the semantic half too: no question is embedded for an answer it could not read', async () => {
    const embedder = new WordsEmbedder();
    // Nothing listens on port 1: every exact lookup fails at once, and the breaker opens.
    const t = await start({ cache: { store: 'redis', redis: { url: 'redis://127.0.0.1:1', keyPrefix: 'down:' } } }, embedder);
    for (const q of ['What is the capital of France?', 'what is the capital of france']) expect(await outcome(t, q)).toBe('upstream');
    expect(embedder.calls).toBe(0);
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'exact', result: 'bypass' })).toBe(2);
    expect(await metricValue(t.app, 'tiergate_cache_lookups_total', { kind: 'semantic' })).toBe(0);
  });

  it('a vector added by one instance answers a rephrasing on another', async () => {
    const cache = { store: 'redis' as const, redis: { url: redis.url, keyPrefix: `s${Date.now()}:` } };
    const one = await start({ cache });
    const two = await start({ cache });
    await expect.poll(() => (one.app.cache.store as unknown as { redis: { status: string } }).redis.status).toBe('ready');
    await seed(one, 'What is the capital of France?', 'Paris.');
    await expect.poll(() => outcome(two, 'what is the capital of france')).toBe('hit-semantic: Paris.');
  });

  it('on a server with vector search (the FT.SEARCH stand-in), the same, through FT.CREATE and KNN queries', async () => {
    const standIn = await RedisSearchStandIn.start(redis.url);
    try {
      const cache = { store: 'redis' as const, redis: { url: standIn.url, keyPrefix: `ft${Date.now()}:` } };
      const one = await start({ cache });
      const two = await start({ cache });
      await expect.poll(() => (one.app.cache.store as unknown as { redis: { status: string } }).redis.status).toBe('ready');
      // The first lookup connects the index and picks its mode; the seed's own lookup may come before that.
      await expect.poll(async () => (await ask(one, 'warm-up question')).o.kind).toBe('continue');
      await seed(one, 'What is the capital of France?', 'Paris.');
      await expect.poll(() => outcome(two, 'what is the capital of france')).toBe('hit-semantic: Paris.');
      expect(standIn.ftCommands.some((c) => c[0] === 'FT.SEARCH')).toBe(true);
      expect(standIn.ftCommands.filter((c) => c[0] === 'FT.CREATE').length).toBeGreaterThanOrEqual(1);
    } finally {
      await Promise.all(running.splice(0).map((t) => t.stop()));
      await standIn.close();
    }
  });
});

describe('semantic cache evictions', () => {
  it("counts the vector entries a bound removed, apart from the exact cache's answers", async () => {
    // One entry per partition: the second question of one conversation (same system prompt) evicts the first.
    const t = await start({ cache: { semantic: { maxEntriesPerPartition: 1 } } });
    await seed(t, 'What is the capital of France?', 'Paris.');
    expect(await metricValue(t.app, 'tiergate_cache_evictions_total', { kind: 'semantic' })).toBe(0);
    await seed(t, 'What is the capital of Spain?', 'Madrid.');
    await expect.poll(() => metricValue(t.app, 'tiergate_cache_evictions_total', { kind: 'semantic' })).toBe(1);
    expect(await metricValue(t.app, 'tiergate_cache_evictions_total', { kind: 'exact' })).toBe(0);
    // The evicted question is no longer a semantic hit; its answer is still the exact cache's.
    expect(await outcome(t, 'what is the capital of france')).toBe('upstream');
    expect(await outcome(t, 'what is the capital of spain')).toBe('hit-semantic: Madrid.');
  });
});
