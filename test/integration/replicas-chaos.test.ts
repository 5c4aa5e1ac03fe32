// Two tiergate replicas sharing one Redis (budgets, the exact cache, the ledger stream; each with a file sink and a
// spool of its own), two tenants, driven by the Envoy-faithful client through generated histories while Redis
// stops, restarts and stalls, and while either replica restarts with a request in flight (graceful shutdown, then a
// new process on the same spool and ledger directory; the request finishes, or the grace period cuts it off).
// Whatever the history:
// - every request gets its answers, never Envoy's own error, and only answers the failure rules allow;
// - a cache hit is always the asking tenant's own answer, whichever replica stored it;
// - the two replicas together admit no more than a tenant's request limit through Redis;
// - once Redis is back, the Redis stream holds one row per request and each replica's files one per request it
//   served, across restarts; and Redis's token count per tenant is exactly what the requests it admitted used.
// redis-chaos.test.ts does the same for one replica with the semantic cache and response affinity; this one is
// about what replicas share and what a restart must not lose.
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/auth/api-keys.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { RECOMMENDED_FILTER, getHeader, postHeaders, type ExtProcSession, type Outcome } from '../../src/dev/envoy-client.js';
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

/** As in redis-chaos.test.ts: five times Envoy's default, slack for a loaded runner. */
const FILTER = { ...RECOMMENDED_FILTER, messageTimeoutMs: 1000 };
const TENANTS = ['acme', 'globex'] as const;
const KEYS = { acme: 'tg-acme-0123456789abcdef', globex: 'tg-globex-fedcba9876543210' } as const;
const PROMPTS = ['What is the capital of France?', 'Name a prime number.', 'Say hi'];
/** Each tenant's requests per minute: small enough that histories reach it. */
const REQUESTS_PER_MINUTE = 8;
const USED_TOKENS = 14;

type Op =
  /** `midway`: Redis stops, or stalls, after the request was admitted and before its answer is counted. */
  | { op: 'request'; replica: number; tenant: number; prompt: number; midway?: 'down' | 'pause' | undefined }
  /**
   * `cut`: while Redis is down (so the request is not Redis's to count), the request in flight never finishes and
   * the grace period cuts it off; it must still have its ledger row.
   */
  | { op: 'restart'; replica: number; cut: boolean }
  | { op: 'down' }
  | { op: 'up' }
  | { op: 'pause'; ms: number }
  | { op: 'wait'; ms: number };

const restartOp = fc.record({ op: fc.constant('restart' as const), replica: fc.nat(1), cut: fc.boolean() });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ op: fc.constant('request' as const), replica: fc.nat(1), tenant: fc.nat(1), prompt: fc.nat(PROMPTS.length - 1), midway: fc.constantFrom(undefined, undefined, undefined, 'down' as const, 'pause' as const) }) },
  { weight: 1, arbitrary: restartOp },
  { weight: 1, arbitrary: fc.constant<Op>({ op: 'down' }) },
  { weight: 1, arbitrary: fc.constant<Op>({ op: 'up' }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('pause' as const), ms: fc.constantFrom(30, 120, 400) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('wait' as const), ms: fc.constantFrom(20, 250) }) },
);

let histories = 0;

function config(prefix: string, onStoreFailure: 'open' | 'closed', dir: string, spoolDir: string): ConfigInput {
  const on = { url: redis.url, keyPrefix: prefix };
  return {
    auth: { mode: 'api_key', keys: TENANTS.map((t) => ({ id: t, sha256: sha256Hex(KEYS[t]), tenant: t })) },
    tenants: { '*': { requestsPerMinute: REQUESTS_PER_MINUTE, tokensPerMinute: 20_000, cache: { mode: 'exact' } } },
    budgets: { store: 'redis', redis: on, onStoreFailure, expectedInstances: 2, breaker: { failures: 2, cooldownMs: 100 } },
    cache: { store: 'redis', redis: on },
    ledger: { sinks: [{ type: 'redis', url: redis.url, stream: `${prefix}ledger` }, { type: 'file', dir }], spoolDir, writeTimeoutMs: 300, retryMs: 50 },
  };
}

/**
 * A history with at least one restart, somewhere: at one restart in fourteen operations, six histories had none
 * about once in a thousand runs (a full local run on 2026-12-04 drew such a set), and the test then proved
 * nothing about restarts.
 */
const history = fc.tuple(fc.array(op, { minLength: 5, maxLength: 24 }), restartOp, fc.nat()).map(([ops, restart, at]) => {
  const out = [...ops];
  out.splice(at % (ops.length + 1), 0, restart);
  return out;
});

const answerText = (tenant: string, prompt: string) => `An answer to ${prompt} for ${tenant}`;

interface Answer {
  kind: string;
  status: number;
  tenant: string;
  prompt: string;
  /** The answer's text when tiergate answered from the cache. */
  hit?: string | undefined;
  /** A hit on the replica that did not store the answer (the other one served this tenant's prompt first). */
  crossReplica?: boolean;
}

/**
 * Sends a request up to its request-body answer; `finish` plays the backend's answer when it was routed, `abandon`
 * leaves it unfinished.
 */
async function begin(t: TestTiergate, id: string, tenant: (typeof TENANTS)[number], prompt: string) {
  const s: ExtProcSession = t.pool.open(FILTER);
  const h = await s.sendRequestHeaders(postHeaders('/v1/chat/completions', [['x-request-id', id], ['authorization', `Bearer ${KEYS[tenant]}`]]), false);
  const o = h.kind === 'continue' ? await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: prompt }] })) : h;
  const finish = async (): Promise<{ o: Outcome; local: boolean }> => {
    let local = false;
    let out = o;
    if (o.kind === 'continue') {
      await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      local = getHeader(s.responseHeaders, H.degraded) === 'budget-store';
      const answer = { id: 'c', object: 'chat.completion', model: 'weak-model', choices: [{ index: 0, message: { role: 'assistant', content: answerText(tenant, prompt) }, finish_reason: 'stop' }], usage: { prompt_tokens: 9, completion_tokens: 5, total_tokens: USED_TOKENS } };
      const last = await s.sendResponseBody(jsonBody(answer), true);
      if (last.kind === 'error') out = last;
    }
    s.close();
    return { o: out, local };
  };
  return { finish, abandon: () => s.close() };
}

function hitText(o: Outcome): string | undefined {
  if (o.kind !== 'immediate' || o.status !== 200) return undefined;
  const body = JSON.parse(o.body.toString('utf8')) as { choices?: Array<{ message?: { content?: string } }> };
  return body.choices?.[0]?.message?.content;
}

async function play(ops: readonly Op[], onStoreFailure: 'open' | 'closed') {
  const prefix = `replicas${histories++}:`;
  const dirs = [0, 1].map(() => ({ files: mkdtempSync(join(tmpdir(), 'tiergate-replica-')), spool: mkdtempSync(join(tmpdir(), 'tiergate-replica-spool-')) }));
  // One instant for the whole history, shared by both replicas: every request falls in the same budget windows.
  const instant = Date.now();
  const startReplica = (i: number) => startTiergate(config(prefix, onStoreFailure, dirs[i]!.files, dirs[i]!.spool), {}, { ownSinks: true, now: () => instant });
  const replicas: TestTiergate[] = [await startReplica(0), await startReplica(1)];
  const inRedis = { acme: 0, globex: 0 };
  const servedBy: string[][] = [[], []];
  const answers: Answer[] = [];
  /** Per tenant and prompt, the replica whose backend answered it first (and so stored it). */
  const firstServed = new Map<string, number>();
  let up = true;
  const pauser: Redis = redis.client();
  pauser.on('error', () => undefined);
  let n = 0;
  let cutOff = 0;
  /** `during`: what happens between the request's admission and its answer (a restart, an outage). */
  const request = async (replica: number, tenant: (typeof TENANTS)[number], prompt: string, during?: () => Promise<void>) => {
    const id = `${prefix}r${n++}`;
    servedBy[replica]!.push(id);
    const { finish } = await begin(replicas[replica]!, id, tenant, prompt);
    const meanwhile = during?.();
    const { o, local } = await finish();
    await meanwhile;
    const hit = hitText(o);
    const key = `${tenant}\n${prompt}`;
    if (o.kind === 'continue' && !firstServed.has(key)) firstServed.set(key, replica);
    answers.push({ kind: o.kind, status: o.kind === 'immediate' || o.kind === 'error' ? o.status : 200, tenant, prompt, hit, crossReplica: hit !== undefined && firstServed.get(key) !== replica });
    if (o.kind === 'continue' && !local) inRedis[tenant]++;
  };
  try {
    const outage = async (kind: 'down' | 'pause', ms = 120) => {
      if (kind === 'down' && up) {
        await redis.down();
        up = false;
      } else if (kind === 'pause' && up) await pauser.call('CLIENT', 'PAUSE', String(ms), 'ALL').catch(() => undefined);
    };
    for (const o of ops) {
      if (o.op === 'request') await request(o.replica, TENANTS[o.tenant]!, PROMPTS[o.prompt]!, o.midway && (() => outage(o.midway!)));
      else if (o.op === 'restart' && o.cut && !up) {
        const id = `${prefix}r${n++}`;
        servedBy[o.replica]!.push(id);
        const { abandon } = await begin(replicas[o.replica]!, id, 'globex', PROMPTS[1]!);
        await replicas[o.replica]!.stop(); // its grace period ends with the request still open
        abandon();
        cutOff++;
        replicas[o.replica] = await startReplica(o.replica);
      } else if (o.op === 'restart') {
        await request(o.replica, 'acme', PROMPTS[0]!, () => replicas[o.replica]!.stop());
        replicas[o.replica] = await startReplica(o.replica);
      } else if (o.op === 'down' || o.op === 'pause') await outage(o.op, o.op === 'pause' ? o.ms : undefined);
      else if (o.op === 'up' && !up) {
        await redis.up();
        up = true;
      } else if (o.op === 'wait') await new Promise((r) => setTimeout(r, o.ms));
    }
    if (!up) await redis.up();
    for (const t of replicas) await expect.poll(() => t.app.ledger.backlog().every((b) => b.queued + b.spooled === 0), { timeout: 30_000, interval: 100 }).toBe(true);
    for (const tenant of TENANTS) await expect.poll(budgetView(replicas[0]!, 'tokens_per_minute', tenant), { timeout: 10_000, interval: 100 }).toBe(USED_TOKENS * inRedis[tenant]);
  } finally {
    pauser.disconnect();
    for (const t of replicas) await t.stop();
  }
  return {
    cutOff,
    answers,
    inRedis,
    servedBy,
    stream: await collectRows(rowsFromRedis(redis.url, `${prefix}ledger`)),
    files: await Promise.all(dirs.map(async (d) => collectRows(rowsFromFiles(readdirSync(d.files).map((f) => join(d.files, f)))))),
  };
}

describe('two replicas on one Redis, restarting, while Redis stops and stalls', () => {
  it('answers within the rules, keeps tenants apart, holds the shared limits, and loses no ledger row', async () => {
    const seen = { requests: 0, restarts: 0, cutOff: 0, outages: 0, refused: 0, hits: 0, crossReplica: 0 };
    await fc.assert(
      fc.asyncProperty(history, fc.constantFrom('open' as const, 'closed' as const), async (ops, rule) => {
        const { cutOff, answers, inRedis, servedBy, stream, files } = await play(ops, rule);
        for (const a of answers) {
          expect(a.kind).not.toBe('error');
          expect(a.kind === 'continue' || [200, 429, ...(rule === 'closed' ? [503] : [])].includes(a.status)).toBe(true);
          // A hit is this tenant's answer to this prompt, never another tenant's.
          if (a.kind === 'immediate' && a.status === 200) expect(a.hit).toBe(answerText(a.tenant, a.prompt));
        }
        for (const tenant of TENANTS) expect(inRedis[tenant]).toBeLessThanOrEqual(REQUESTS_PER_MINUTE);
        const ids = (rows: Array<{ request_id: string }>) => rows.map((r) => r.request_id).sort();
        expect(ids(stream)).toEqual(servedBy.flat().sort());
        files.forEach((rows, i) => expect(ids(rows)).toEqual([...servedBy[i]!].sort()));
        seen.requests += answers.length;
        seen.restarts += ops.filter((o) => o.op === 'restart').length;
        seen.cutOff += cutOff;
        seen.outages += ops.filter((o) => o.op === 'down' || o.op === 'pause' || (o.op === 'request' && o.midway)).length;
        seen.refused += answers.filter((a) => a.status === 429 || a.status === 503).length;
        seen.hits += answers.filter((a) => a.hit !== undefined).length;
        seen.crossReplica += answers.filter((a) => a.crossReplica).length;
      }),
      { numRuns: fuzzRuns(6) },
    );
    // Every history restarts a replica (history above); outages come at random: about one operation in three.
    expect(seen.outages).toBeGreaterThan(0);
    console.info(`replicas chaos: ${seen.requests} requests, ${seen.restarts} restarts with a request in flight (${seen.cutOff} cut off by the grace period), ${seen.outages} outages or stalls, ${seen.refused} refused, ${seen.hits} cache hits (${seen.crossReplica} of an answer the other replica stored)`);
  }, fuzzTimeout(6, 600_000));
});
