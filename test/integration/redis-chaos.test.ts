// One tiergate with everything on Redis (budgets, the exact and semantic cache, response affinity, the ledger
// stream beside a file sink), driven by the Envoy-faithful client through generated histories of chat requests
// and Responses API turns while Redis stops, restarts and stalls (CLIENT PAUSE) at any point. Whatever the
// history:
// - every request gets its answers, and never Envoy's own error (a processing failure or a message timeout);
// - every answer is one the failure rules allow: continue, a cache hit, 429, or 503 only where budgets fail
//   closed;
// - once Redis is back, the Redis stream and the file hold one ledger row per request, none lost or doubled;
// - and Redis's token count is exactly what the requests it admitted used: no reservation left held, nothing
//   counted twice.
// The outage tests state each failure rule on its own; this finds the interleavings nobody wrote down.
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { RECOMMENDED_FILTER, getHeader, postHeaders, type Outcome } from '../../src/dev/envoy-client.js';
import { rowsFromFiles, rowsFromRedis } from '../../src/ledger/read.js';
import { H } from '../../src/pipeline/contract-headers.js';
import { fuzzRuns, fuzzTimeout } from '../helpers/generated.js';
import { collectRows } from '../helpers/ledger-rows.js';
import { RedisServer } from '../helpers/redis-server.js';
import { budgetView, jsonBody, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await RedisServer.start();
});
afterAll(async () => redis.down());

/**
 * Five times Envoy's default message timeout: tiergate's own deadlines (50 ms per Redis command, 60 ms per cache
 * lookup) keep it far inside 200 ms, and the slack keeps a loaded test runner from failing a history on timing.
 */
const FILTER = { ...RECOMMENDED_FILTER, messageTimeoutMs: 1000 };
/** Two say the same thing in other words: the semantic cache's vector index is in play as well. */
const PROMPTS = ['What is the capital of France?', 'what is the capital of France', 'Name a prime number.', 'Say hi'];

type Op =
  | { op: 'request'; prompt: number }
  /** A stored Responses API turn; `follow`: continuing the last one (response affinity, on Redis, picks its tier). */
  | { op: 'turn'; follow: boolean }
  | { op: 'down' }
  | { op: 'up' }
  | { op: 'pause'; ms: number }
  | { op: 'wait'; ms: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('request' as const), prompt: fc.nat(PROMPTS.length - 1) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('turn' as const), follow: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant<Op>({ op: 'down' }) },
  { weight: 1, arbitrary: fc.constant<Op>({ op: 'up' }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('pause' as const), ms: fc.constantFrom(30, 120, 400) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('wait' as const), ms: fc.constantFrom(20, 250) }) },
);

let histories = 0;

function config(prefix: string, onStoreFailure: 'open' | 'closed', dir: string): ConfigInput {
  const on = { url: redis.url, keyPrefix: prefix };
  return {
    tenants: { '*': { requestsPerMinute: 12, tokensPerMinute: 20_000, cache: { mode: 'semantic' } } },
    budgets: { store: 'redis', redis: on, onStoreFailure, breaker: { failures: 2, cooldownMs: 100 } },
    // The embedding runs in a worker; on a loaded runner it can take more than the default 60 ms.
    cache: { store: 'redis', redis: on, semantic: { lookupDeadlineMs: 300 } },
    routing: { affinity: { store: 'redis', redis: on } },
    ledger: { sinks: [{ type: 'redis', url: redis.url, stream: `${prefix}ledger` }, { type: 'file', dir }], writeTimeoutMs: 300, retryMs: 50 },
  };
}

const USED_TOKENS = 14;

/** What one request sends and how its backend answers when it is routed. */
interface Exchange {
  path: string;
  body: Record<string, unknown>;
  answer: Record<string, unknown>;
}

const chat = (prompt: string): Exchange => ({
  path: '/v1/chat/completions',
  body: { model: 'auto', messages: [{ role: 'user', content: prompt }] },
  answer: { id: 'c', object: 'chat.completion', model: 'weak-model', choices: [{ index: 0, message: { role: 'assistant', content: `An answer to ${prompt}` }, finish_reason: 'stop' }], usage: { prompt_tokens: 9, completion_tokens: 5, total_tokens: USED_TOKENS } },
});

const responsesTurn = (id: string, previous: string | undefined): Exchange => ({
  path: '/v1/responses',
  body: { model: 'auto', store: true, input: 'Say hi', ...(previous ? { previous_response_id: previous } : {}) },
  answer: { id, object: 'response', status: 'completed', model: 'weak-model', error: null, output: [], usage: { input_tokens: 9, output_tokens: 5, total_tokens: USED_TOKENS } },
});

/**
 * One request as Envoy sends it; when it is routed, the backend's answer. `local`: its admission was the local
 * limiter's (the budget store was failing), so Redis does not count it.
 */
async function call(t: TestTiergate, id: string, x: Exchange): Promise<{ o: Outcome; local: boolean; classifier?: string | undefined }> {
  const s = t.pool.open(FILTER);
  await s.sendRequestHeaders(postHeaders(x.path, [['x-request-id', id]]), false);
  const o = await s.sendRequestBody(jsonBody(x.body));
  let local = false;
  const classifier = getHeader(s.requestHeaders, 'x-llm-classifier');
  if (o.kind === 'continue') {
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    local = getHeader(s.responseHeaders, H.degraded) === 'budget-store';
    const last = await s.sendResponseBody(jsonBody(x.answer), true);
    if (last.kind === 'error') return { o: last, local, classifier };
  }
  s.close();
  return { o, local, classifier };
}

async function play(ops: readonly Op[], onStoreFailure: 'open' | 'closed') {
  const prefix = `chaos${histories++}:`;
  const dir = mkdtempSync(join(tmpdir(), 'tiergate-chaos-'));
  // One instant for the whole history: every request falls in the same budget windows, whose counts are then
  // known exactly, and no reservation expires on its own.
  const instant = Date.now();
  const t = await startTiergate(config(prefix, onStoreFailure, dir), {}, { ownSinks: true, now: () => instant });
  const tokensCounted = budgetView(t, 'tokens_per_minute');
  let inRedis = 0;
  let lastResponse: string | undefined;
  let up = true;
  const pauser: Redis = redis.client();
  pauser.on('error', () => undefined);
  const sent: string[] = [];
  const answers: Array<{ kind: string; status: number; cache?: string | undefined; classifier?: string | undefined }> = [];
  try {
    for (const o of ops) {
      if (o.op === 'request' || o.op === 'turn') {
        const id = `${prefix}r${sent.length}`;
        sent.push(id);
        const exchange = o.op === 'request' ? chat(PROMPTS[o.prompt] as string) : responsesTurn(`resp_${id}`, o.follow ? lastResponse : undefined);
        if (o.op === 'turn') lastResponse = `resp_${id}`;
        const { o: out, local, classifier } = await call(t, id, exchange);
        answers.push({ kind: out.kind, status: out.kind === 'immediate' || out.kind === 'error' ? out.status : 200, cache: out.kind === 'immediate' ? getHeader(out.headers, 'x-cache') : undefined, classifier });
        if (out.kind === 'continue' && !local) inRedis++;
      } else if (o.op === 'down' && up) {
        await redis.down();
        up = false;
      } else if (o.op === 'up' && !up) {
        await redis.up();
        up = true;
      } else if (o.op === 'pause' && up) {
        await pauser.call('CLIENT', 'PAUSE', String(o.ms), 'ALL').catch(() => undefined);
      } else if (o.op === 'wait') await new Promise((r) => setTimeout(r, o.ms));
    }
    if (!up) await redis.up();
    // Redis is back: the ledger delivers what it spooled.
    await expect.poll(() => t.app.ledger.backlog().every((b) => b.queued + b.spooled === 0), { timeout: 30_000, interval: 100 }).toBe(true);
    // …and Redis counts exactly what the requests it admitted used: every reservation settled (none left held
    // by a reconcile lost to the outage, or by an admission that timed out but ran), none counted twice (a
    // reconcile retried after a timeout that had reached Redis).
    await expect.poll(tokensCounted, { timeout: 10_000, interval: 100 }).toBe(USED_TOKENS * inRedis);
  } finally {
    pauser.disconnect();
    await t.stop();
  }
  return { sent, answers, inRedis: await collectRows(rowsFromRedis(redis.url, `${prefix}ledger`)), inFile: await collectRows(rowsFromFiles(readdirSync(dir).map((f) => join(dir, f)))) };
}

describe('Redis stopping, restarting and stalling under traffic', () => {
  it('every request answered within the rules, and one ledger row per request in Redis and in the file', async () => {
    const seen = { requests: 0, turns: 0, affinity: 0, outages: 0, refused: 0, hits: 0, semanticHits: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 6, maxLength: 25 }), fc.constantFrom('open' as const, 'closed' as const), async (ops, rule) => {
        const { sent, answers, inRedis, inFile } = await play(ops, rule);
        for (const a of answers) {
          expect(a.kind).not.toBe('error'); // Envoy's own 500 or 504: a failure escaped, or an answer came too late
          expect(a.kind === 'continue' || [200, 429, ...(rule === 'closed' ? [503] : [])].includes(a.status)).toBe(true);
        }
        const ids = (rows: Array<{ request_id: string }>) => rows.map((r) => r.request_id).sort();
        expect(ids(inRedis)).toEqual([...sent].sort());
        expect(ids(inFile)).toEqual([...sent].sort());
        seen.requests += sent.length;
        seen.turns += ops.filter((o) => o.op === 'turn').length;
        seen.affinity += answers.filter((a) => a.kind === 'continue' && a.classifier === 'affinity').length;
        seen.outages += ops.filter((o) => o.op === 'down' || o.op === 'pause').length;
        seen.refused += answers.filter((a) => a.status === 429 || a.status === 503).length;
        seen.hits += answers.filter((a) => a.kind === 'immediate' && a.status === 200).length;
        seen.semanticHits += answers.filter((a) => a.cache === 'hit-semantic').length;
      }),
      { numRuns: fuzzRuns(8) },
    );
    // The histories must have had outages to ride out, and the rules must have been put to work.
    expect(seen.outages).toBeGreaterThan(0);
    console.info(`redis chaos: ${seen.requests} requests (${seen.turns} Responses API turns, ${seen.affinity} routed by affinity), ${seen.outages} outages or stalls, ${seen.refused} refused, ${seen.hits} cache hits (${seen.semanticHits} semantic)`);
  }, fuzzTimeout(8, 600_000));
});
