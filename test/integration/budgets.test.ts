// Limits through the Envoy-faithful client, with the memory store and with a real Redis shared by two
// tiergate instances: exact admission under concurrency, 429s that say which limit and when it frees,
// reservations reconciled to reported usage or released when a stream dies, and window and day rollover on a
// fake clock.
import { Redis } from 'ioredis';
import { describe, expect, it, vi } from 'vitest';
import { sha256Hex } from '../../src/auth/api-keys.js';
import { bucketsFor } from '../../src/budget/buckets.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { RECOMMENDED_FILTER, chatRequestHeaders, getHeader, postHeaders, type ExtProcSession, type FilterConfig, type Outcome } from '../../src/dev/envoy-client.js';
import { redisAndClusterForFile } from '../helpers/redis-server.js';
import { countTokens } from '../../src/llm/tokenizer.js';
import { jsonBody, metricValue, rowFor, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

const servers = redisAndClusterForFile();

/** A settable clock shared by the instances of one test. */
function clock(at = Date.UTC(2026, 10, 22, 12, 0, 10)) {
  const c = { t: at, now: () => c.t };
  return c;
}
let prefixes = 0;
async function tiergate(config: ConfigInput, now: () => number, store: 'memory' | 'redis' | 'cluster' = 'memory', keyPrefix?: string): Promise<TestTiergate> {
  const url = store === 'cluster' ? servers.cluster.url : servers.redis.url;
  const redisConfig = { url, cluster: store === 'cluster', keyPrefix: keyPrefix ?? `t${prefixes++}:`, commandTimeoutMs: 1000, connectTimeoutMs: 1000 };
  const budgets = { ...config.budgets, ...(store === 'memory' ? {} : { store: 'redis' as const, redis: redisConfig }) };
  const t = await startTiergate({ ...config, budgets }, {}, { now });
  servers.beforeDown(() => t.stop());
  return t;
}

const hi = (extra: Record<string, unknown> = {}) => jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'Say hi' }], ...extra });
async function request(t: TestTiergate, body = hi(), id?: string, filter?: FilterConfig): Promise<{ s: ExtProcSession; o: Outcome }> {
  const s = t.pool.open(filter);
  const head = await s.sendRequestHeaders(chatRequestHeaders(id ? [['x-request-id', id]] : []), false);
  // Answered on the headers (a full requests-per-minute window): Envoy sends no body then.
  if (head.kind !== 'continue') return { s, o: head };
  return { s, o: await s.sendRequestBody(body) };
}
function refusal(o: Outcome) {
  if (o.kind !== 'immediate') throw new Error(`expected a local reply, got ${o.kind}`);
  return { status: o.status, headers: o.headers, error: (JSON.parse(o.body.toString()) as { error: { code: string; type: string; message: string } }).error };
}
/** used + reserved in one of the default tenant's daily buckets, read (never counted) from the instance's own store. */
async function counted(t: TestTiergate, now: number, code: 'daily_token_budget' | 'daily_cost_budget'): Promise<number> {
  const rt = t.app.config.current();
  const day = bucketsFor(rt, rt.tenants.policyFor('default'), undefined, true, now).filter((b) => b.code === code);
  return (await t.app.budgets.store.peek(day, now))[0] as number;
}
const dayCounted = (t: TestTiergate, now: number) => counted(t, now, 'daily_token_budget');
/** The same for the daily cost bucket, in micro-dollars. */
const microUsdCounted = (t: TestTiergate, now: number) => counted(t, now, 'daily_cost_budget');
async function respond(s: ExtProcSession, totalTokens: number): Promise<void> {
  await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
  const usage = { prompt_tokens: Math.floor(totalTokens / 2), completion_tokens: totalTokens - Math.floor(totalTokens / 2), total_tokens: totalTokens };
  await s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'weak-model', choices: [], usage }), true);
  s.close();
}

/** The 429 of a full minute with a limit of 2, 14.5 s before the minute ends. */
function expectFullMinute(r: ReturnType<typeof refusal>): void {
  expect([r.status, r.error.code, r.error.type]).toEqual([429, 'requests_per_minute', 'requests']);
  expect(getHeader(r.headers, 'retry-after')).toBe('15');
  // A wait within a minute: the SDK's own retry is left to it.
  expect(getHeader(r.headers, 'x-should-retry')).toBeUndefined();
  expect(getHeader(r.headers, 'x-ratelimit-limit-requests')).toBe('2');
  expect(getHeader(r.headers, 'x-ratelimit-remaining-requests')).toBe('0');
  expect(getHeader(r.headers, 'x-ratelimit-reset-requests')).toBe('14.5s');
  expect(getHeader(r.headers, 'content-type')).toBe('application/json');
}

const RPM_100: ConfigInput = { tenants: { '*': { requestsPerMinute: 100 } } };

/**
 * Concurrent bursts test exactness, not latency: on a loaded two-core CI machine a burst's streams can take longer
 * than Envoy's 200 ms message timeout, so bursts raise it and every request must then be answered: admitted, or
 * refused with a 429. (A request the client gave up on could otherwise be admitted after its stream ended: it
 * counts against requests per minute, while the client saw a 504, so the admitted count would not add up.)
 */
const PATIENT: FilterConfig = { ...RECOMMENDED_FILTER, messageTimeoutMs: 10_000 };

describe('requests per minute under concurrency', () => {
  async function burst(instances: TestTiergate[], n: number): Promise<Outcome[]> {
    const out = await Promise.all(Array.from({ length: n }, (_, i) => request(instances[i % instances.length] as TestTiergate, hi(), undefined, PATIENT)));
    for (const { s } of out) s.close();
    expect(out.map((r) => r.o).filter((o) => o.kind !== 'continue' && !(o.kind === 'immediate' && o.status === 429))).toEqual([]);
    return out.map((r) => r.o);
  }
  const admitted = (os: Outcome[]) => os.filter((o) => o.kind === 'continue').length;

  it('memory store, one instance: 500 parallel requests, exactly 100 admitted, the rest 429 requests_per_minute', async () => {
    const c = clock();
    const out = await burst([await tiergate(RPM_100, c.now)], 500);
    expect(admitted(out)).toBe(100);
    const codes = new Set(out.filter((o) => o.kind === 'immediate').map((o) => refusal(o).error.code));
    expect([...codes]).toEqual(['requests_per_minute']);
  });

  it('Redis store, one instance: exactly 100 of 500', async () => {
    const c = clock();
    expect(admitted(await burst([await tiergate(RPM_100, c.now, 'redis')], 500))).toBe(100);
  });

  it('Redis store, two instances sharing it: exactly 100 of 500 between them', async () => {
    const c = clock();
    const a = await tiergate(RPM_100, c.now, 'redis', 'shared-a:');
    const b = await tiergate(RPM_100, c.now, 'redis', 'shared-a:');
    // Connections up first (a path tiergate passes through), so neither instance starts the race late.
    for (const t of [a, b]) {
      const s = t.pool.open();
      await s.sendRequestHeaders([[':method', 'GET'], [':path', '/healthz']], true);
      s.close();
    }
    const out = await burst([a, b], 500);
    expect(admitted(out)).toBe(100);
    // Next minute: what one instance admits, the other sees. The limit is shared, not split or doubled.
    c.t += 60_000;
    expect(admitted(await burst([a], 60))).toBe(60);
    expect(admitted(await burst([b], 60))).toBe(40);
  });

  it('Redis Cluster: the tenant and the gateway-wide limits live in different slots; still exactly 100 of 500', async () => {
    const c = clock();
    const t = await tiergate({ ...RPM_100, budgets: { globalTokensPerMinute: 100_000_000 } }, c.now, 'cluster');
    const rt = t.app.config.current();
    const keys = bucketsFor(rt, rt.tenants.policyFor('default'), 'weak', true, c.t).map((b) => b.key);
    const node = new Redis(servers.cluster.url);
    const slots = new Set(await Promise.all(keys.map((k) => node.cluster('KEYSLOT', k))));
    node.disconnect();
    expect(slots.size).toBe(2); // one script per slot, as Cluster requires
    const out = await burst([t], 500);
    expect(admitted(out)).toBe(100);
  });

  it('a 429 says which limit, when it frees (retry-after) and carries the x-ratelimit headers; the next window admits', async () => {
    const c = clock(Date.UTC(2026, 10, 22, 12, 0, 45, 500)); // 14.5 s before the minute ends
    const t = await tiergate({ tenants: { '*': { requestsPerMinute: 2 } } }, c.now);
    for (let i = 0; i < 2; i++) (await request(t)).s.close();
    const { o } = await request(t);
    expectFullMinute(refusal(o));
    c.t += 14_500; // the window rolls over
    expect((await request(t)).o.kind).toBe('continue');
  });
});

describe('requests refused for what they sent count against requests per minute', () => {
  const invalid = Buffer.from('{"messages": [');

  it('a client looping on a 400 fills its minute: then 429, and on the request headers, its body no longer read', async () => {
    const c = clock();
    const t = await tiergate({ limits: { maxRequestBodyBytes: 4096 }, tenants: { '*': { requestsPerMinute: 4, models: ['weak'], onTierDenied: 'refuse' } } }, c.now);
    const asked = vi.spyOn(t.app.budgets.store, 'admit');
    const first = refusal((await request(t, invalid)).o);
    // Counted: the minute's headers come with it, as on every response.
    expect([getHeader(first.headers, 'x-ratelimit-limit-requests'), getHeader(first.headers, 'x-ratelimit-remaining-requests')]).toEqual(['4', '3']);
    const codes = [first.error.code];
    codes.push(refusal((await request(t, invalid)).o).error.code);
    // A model the tenant may not use (403), and a body over the limit (413), count the same way.
    codes.push(refusal((await request(t, hi({ model: 'strong-model' }))).o).error.code);
    codes.push(refusal((await request(t, hi({ padding: 'x'.repeat(5000) }))).o).error.code);
    expect(codes).toEqual(['invalid_json', 'invalid_json', 'model_not_allowed', 'request_too_large']);
    expect(asked).toHaveBeenCalledTimes(4);
    // The minute is full: the next request, valid or not, is refused on its headers (request() sends no body then).
    for (const body of [hi(), invalid]) {
      const { s, o } = await request(t, body);
      s.close();
      expect(refusal(o).error.code).toBe('requests_per_minute');
    }
    expect(asked).toHaveBeenCalledTimes(4);
    // The next minute admits again.
    c.t += 60_000;
    expect((await request(t, hi())).o.kind).toBe('continue');
  });

  it('a path the plan excludes, refused on its headers (403), counts the same way', async () => {
    const c = clock();
    const t = await tiergate({ routing: { unclassifiedPaths: { '/v1/embeddings': { tier: 'strong' } } }, tenants: { '*': { requestsPerMinute: 2, models: ['weak'] } } }, c.now);
    const embeddings = async () => {
      const s = t.pool.open();
      const o = await s.sendRequestHeaders([[':method', 'POST'], [':path', '/v1/embeddings'], ['content-type', 'application/json']], false);
      s.close();
      return refusal(o);
    };
    const seen = [];
    for (let i = 0; i < 3; i++) {
      const r = await embeddings();
      seen.push([r.status, r.error.code, getHeader(r.headers, 'x-ratelimit-remaining-requests')]);
    }
    expect(seen).toEqual([
      [403, 'model_not_allowed', '1'],
      [403, 'model_not_allowed', '0'],
      [429, 'requests_per_minute', '0'],
    ]);
  });

  it('Redis, two instances: a 400 on one whose minute another filled answers the 429, which is what it is', async () => {
    const c = clock();
    const prefix = `refused${prefixes++}:`;
    const config: ConfigInput = { tenants: { '*': { requestsPerMinute: 2 } } };
    const [one, two] = [await tiergate(config, c.now, 'redis', prefix), await tiergate(config, c.now, 'redis', prefix)];
    for (let i = 0; i < 2; i++) expect((await request(one, hi())).o.kind).toBe('continue');
    const r = refusal((await request(two, invalid)).o);
    expect([r.status, r.error.code]).toEqual([429, 'requests_per_minute']);
  });

  it('a tenant with no requests-per-minute limit: nothing is asked of the store, the 400 is all', async () => {
    const t = await tiergate({ tenants: { '*': { dailyTokenBudget: 100_000 } } }, clock().now);
    const asked = vi.spyOn(t.app.budgets.store, 'admit');
    expect(refusal((await request(t, invalid)).o).error.code).toBe('invalid_json');
    expect(asked).not.toHaveBeenCalled();
  });
});

describe('a full requests-per-minute window is refused on the request headers', () => {
  /** Sends only the request headers, as Envoy does first; the body stays with the client. */
  async function headersOnly(t: TestTiergate, id: string): Promise<Outcome> {
    const s = t.pool.open();
    const o = await s.sendRequestHeaders(chatRequestHeaders([['x-request-id', id]]), false);
    s.close();
    return o;
  }

  it('once a window is full, the next request gets the same 429 on its headers, no body read; a raised limit or the next window admits', async () => {
    const c = clock(Date.UTC(2026, 10, 22, 12, 0, 45, 500)); // 14.5 s before the minute ends
    const t = await tiergate({ tenants: { '*': { requestsPerMinute: 2 } } }, c.now);
    expect((await headersOnly(t, 'room')).kind).toBe('continue'); // nothing known yet: the body is asked for
    for (let i = 0; i < 2; i++) (await request(t)).s.close(); // the second fills the window
    const r = refusal(await headersOnly(t, 'early'));
    expectFullMinute(r);
    expect(r.error.message).toBe("Rate limit reached for this tenant's requests per minute: limit 2, used 2, requested 1. Try again in 15s.");
    // Even a body that would be a 400: the limit is what the tenant hears about first.
    expect(refusal((await request(t, Buffer.from('{not json'))).o).error.code).toBe('requests_per_minute');
    expect(await metricValue(t.app, 'tiergate_budget_decisions_total', { result: 'denied', code: 'requests_per_minute' })).toBe(2);
    // Every refused request has its row, whatever phase refused it.
    await expect.poll(async () => (await t.rows()).find((row) => row.request_id === 'early')).toMatchObject({ status: 'rejected', http_status: 429, error_code: 'requests_per_minute', tenant_id: 'default' });

    // A reload that raises the limit: the remembered window was another limit's, so the body is read again.
    expect(await t.app.config.apply('tenants: { "*": { requestsPerMinute: 3 } }\n', {}, t.app.reloadListener)).toBe(true);
    expect((await headersOnly(t, 'raised')).kind).toBe('continue');
    const third = await request(t);
    expect(third.o.kind).toBe('continue');
    third.s.close();
    expect(refusal(await headersOnly(t, 'full-again')).status).toBe(429);
    c.t += 14_500; // the window rolls over
    expect((await headersOnly(t, 'next-minute')).kind).toBe('continue');
  });

  it('embeddings (routed on the headers): once the store has said the minute is full, the next are refused without asking it', async () => {
    const t = await tiergate({ routing: { unclassifiedPaths: { '/v1/embeddings': { tier: 'weak' } } }, tenants: { '*': { requestsPerMinute: 2 } } }, clock().now);
    const asked = vi.spyOn(t.app.budgets.store, 'admit');
    const embed = async () => {
      const s = t.pool.open();
      const o = await s.sendRequestHeaders(postHeaders('/v1/embeddings'), false);
      s.close();
      return o;
    };
    expect([(await embed()).kind, (await embed()).kind]).toEqual(['continue', 'continue']);
    expect(asked).toHaveBeenCalledTimes(2);
    expect(refusal(await embed()).error.code).toBe('requests_per_minute');
    expect(refusal(await embed()).error.code).toBe('requests_per_minute');
    expect(asked).toHaveBeenCalledTimes(2); // the second admission filled the window: neither refusal asked
  });

  it('Redis, two instances: each learns a window is full from its own store answer, then refuses on the headers', async () => {
    const c = clock();
    const a = await tiergate({ tenants: { '*': { requestsPerMinute: 2 } } }, c.now, 'redis', 'early-shared:');
    const b = await tiergate({ tenants: { '*': { requestsPerMinute: 2 } } }, c.now, 'redis', 'early-shared:');
    for (let i = 0; i < 2; i++) (await request(a)).s.close();
    expect(refusal(await headersOnly(a, 'a-early')).status).toBe(429);
    // b has not asked the store this minute: it reads the body, and the store refuses it.
    expect((await headersOnly(b, 'b-asks')).kind).toBe('continue');
    const fromStore = await request(b);
    expect(refusal(fromStore.o).error.code).toBe('requests_per_minute');
    fromStore.s.close();
    expect(refusal(await headersOnly(b, 'b-early')).error.code).toBe('requests_per_minute');
  });
});

describe('cost budgets', () => {
  // Embedded prices, USD per million tokens: weak-model 0.10 in / 0.40 out, strong-model 2.50 / 10.00.
  const COST: ConfigInput = { tenants: { '*': { dailyCostBudgetUsd: 0.05 } } };
  async function respondAs(s: ExtProcSession, model: string, usage: { prompt_tokens: number; completion_tokens: number }): Promise<void> {
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await s.sendResponseBody(jsonBody({ object: 'chat.completion', model, choices: [], usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } }), true);
    s.close();
  }

  it.each(['memory', 'redis', 'cluster'] as const)(
    "%s: reserves the routed model's price of prompt + max_tokens, reconciles to the row's cost; the same dollars go further on weak",
    async (store) => {
      const c = clock();
      const t = await tiergate(COST, c.now, store);
      const strong = hi({ model: 'strong-model', max_tokens: 1000 });
      const round = await Promise.all(Array.from({ length: 10 }, () => request(t, strong, undefined, PATIENT)));
      const admitted = round.filter((r) => r.o.kind === 'continue');
      // ~1,000 output tokens at $10/M plus the prompt at $2.50/M: ~$0.0100 each, 4 of them in $0.05.
      const reservation = (await microUsdCounted(t, c.t)) / admitted.length;
      expect(reservation).toBeGreaterThan(10_000);
      expect(reservation).toBeLessThan(10_100);
      expect(admitted).toHaveLength(Math.floor(50_000 / reservation));
      const refused = refusal((round.find((r) => r.o.kind !== 'continue') as { o: Outcome }).o);
      expect([refused.status, refused.error.type, refused.error.code]).toEqual([429, 'insufficient_quota', 'daily_cost_budget']);
      expect(refused.error.message).toMatch(/^Budget reached for this tenant's daily cost budget: limit \$0\.05, used \$0\.04\d+, requested \$0\.010\d+\. Try again in \d+s\.$/);
      // Each used 100 in and 200 out on strong-model: $0.00025 + $0.002 = 2,250 micro-dollars.
      await Promise.all(admitted.map((r) => respondAs(r.s, 'strong-model', { prompt_tokens: 100, completion_tokens: 200 })));
      for (const r of round) r.s.close();
      await expect.poll(() => microUsdCounted(t, c.t)).toBe(2_250 * admitted.length);
      // What is left ($0.041) no longer fits four strong reservations, but the weak tier's are 25 times cheaper.
      const weak = await Promise.all(Array.from({ length: 20 }, () => request(t, hi({ max_tokens: 1000 }), undefined, PATIENT)));
      expect(weak.every((r) => r.o.kind === 'continue')).toBe(true);
      for (const r of weak) r.s.close();
    },
  );

  it("a service tier priced apart: reserved at the tier asked for, reconciled at the tier the response names", async () => {
    const c = clock();
    const prices = { version: 'st', models: { 'weak-model': { input: 0.1, output: 0.4, serviceTiers: { priority: { input: 0.2, output: 0.8 } } }, 'strong-model': { input: 2.5, output: 10 } } };
    const t = await tiergate({ prices, tenants: { '*': { dailyCostBudgetUsd: 1 } } }, c.now);
    const reserved = async (body: Buffer) => {
      const before = await microUsdCounted(t, c.t);
      const r = await request(t, body);
      expect(r.o.kind).toBe('continue');
      return { r, micro: (await microUsdCounted(t, c.t)) - before };
    };
    // 1,000 output tokens (plus a short prompt): ~$0.0004 at default, ~$0.0008 at priority; flex is not
    // priced apart, so it is reserved at default's.
    const normal = await reserved(hi({ max_tokens: 1000 }));
    const priority = await reserved(hi({ max_tokens: 1000, service_tier: 'priority' }));
    const flex = await reserved(hi({ max_tokens: 1000, service_tier: 'flex' }));
    expect(normal.micro).toBeGreaterThan(400);
    expect(normal.micro).toBeLessThan(410);
    expect(priority.micro).toBe(2 * normal.micro);
    expect(flex.micro).toBe(normal.micro);
    // Each used 100 in and 200 out. The reconcile counts the tier the response names, whatever was asked:
    // priority asked and default served (as OpenAI may) $0.00009, none named $0.00009, priority named $0.00018.
    const usage = { prompt_tokens: 100, completion_tokens: 200, total_tokens: 300 };
    for (const [r, served] of [[priority.r, 'default'], [normal.r, undefined], [flex.r, 'priority']] as const) {
      await r.s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      await r.s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'weak-model', service_tier: served, choices: [], usage }), true);
      r.s.close();
    }
    await expect.poll(() => microUsdCounted(t, c.t)).toBe(90 + 90 + 180);
  });

  it("warns from budgets.warnAt of the day's dollars, and a request that can never fit is refused without retry-after", async () => {
    const c = clock();
    const t = await tiergate({ budgets: { warnAt: 0.7 }, tenants: { '*': { dailyCostBudgetUsd: 0.012 } } }, c.now);
    const first = await request(t, hi({ model: 'strong-model', max_tokens: 1000 }));
    if (first.o.kind !== 'continue') throw new Error('the first request should fit');
    await respondAs(first.s, 'strong-model', { prompt_tokens: 20, completion_tokens: 900 }); // $0.00905: 75%, over 70%
    await expect.poll(() => microUsdCounted(t, c.t)).toBe(9_050);
    const s = t.pool.open();
    await s.sendRequestHeaders(chatRequestHeaders(), false);
    expect((await s.sendRequestBody(hi({ max_tokens: 100 }))).kind).toBe('continue'); // weak: ~$0.00004
    await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    expect(getHeader(s.responseHeaders, 'x-budget-warning')).toMatch(/^daily_cost_budget 7\d% used$/);
    s.close();
    const huge = refusal((await request(t, hi({ model: 'strong-model', max_tokens: 5000 }))).o);
    expect([huge.status, huge.error.code]).toEqual([429, 'daily_cost_budget']);
    expect(huge.error.message).toMatch(/^Request too large for this tenant's daily cost budget: limit \$0\.012000, requested \$0\.05\d+\./);
    expect(getHeader(huge.headers, 'retry-after')).toBeUndefined();
  });
});

describe('cost budgets on unclassified paths', () => {
  // On Redis the admission answers later than the headers message: the refusal reaches the stream through the
  // admission's wait, the path no memory-store test took.
  it.each(['memory', 'redis'] as const)('%s: embeddings are not tokenised, but what they cost counts, and they are refused once the budget is spent', async (store) => {
    const c = clock();
    const t = await tiergate({ routing: { unclassifiedPaths: { '/v1/embeddings': { tier: 'weak' } } }, tenants: { '*': { dailyCostBudgetUsd: 0.0001, dailyTokenBudget: 100 } } }, c.now, store);
    const embed = async () => {
      const s = t.pool.open();
      const o = await s.sendRequestHeaders(postHeaders('/v1/embeddings'), false);
      if (o.kind !== 'continue') {
        s.close();
        return o;
      }
      await s.sendRequestBody(jsonBody({ model: 'any', input: 'hello' }));
      await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      // 600 input tokens of weak-model at $0.10 per million: $0.00006.
      await s.sendResponseBody(jsonBody({ object: 'list', data: [], model: 'weak-model', usage: { prompt_tokens: 600, total_tokens: 600 } }), true);
      s.close();
      return o;
    };
    // The token budget (100) does not apply here; the cost budget ($0.0001) does, counted after the fact.
    expect((await embed()).kind).toBe('continue');
    expect((await embed()).kind).toBe('continue');
    await expect.poll(() => microUsdCounted(t, c.t)).toBe(120);
    const over = refusal(await embed());
    expect([over.status, over.error.code]).toEqual([429, 'daily_cost_budget']);
  });
});

describe('the admin listener: /budgets/{tenant}', () => {
  it.each(['memory', 'redis'] as const)('%s: every limit of a tenant as the store counts it, read-only, with money in dollars', async (store) => {
    const c = clock();
    const t = await tiergate(
      { budgets: { globalTokensPerMinute: 100_000, tierTokensPerMinute: { weak: 50_000, strong: 20_000 } }, tenants: { '*': { requestsPerMinute: 10, dailyTokenBudget: 10_000, dailyCostBudgetUsd: 0.05 } } },
      c.now,
      store,
    );
    const port = await t.app.admin.listen('127.0.0.1:0');
    const inFlight = await request(t, hi({ model: 'strong-model', max_tokens: 1000 }));
    expect(inFlight.o.kind).toBe('continue');
    const get = async (tenant: string) => {
      const r = await fetch(`http://127.0.0.1:${port}/budgets/${tenant}`);
      return { status: r.status, body: r.status === 200 ? ((await r.json()) as { tenant: string; limits: Array<Record<string, unknown>> }) : await r.text() };
    };
    const first = await get('default');
    expect(first.status).toBe(200);
    const limits = (first.body as { limits: Array<Record<string, unknown>> }).limits;
    const byCode = Object.fromEntries(limits.filter((l) => !l.tier).map((l) => [l.code, l]));
    expect(Object.keys(byCode).sort()).toEqual(['daily_cost_budget', 'daily_token_budget', 'global_tokens_per_minute', 'requests_per_minute']);
    // Each tier's own limit, named: the request in flight went to strong.
    const tiers = limits.filter((l) => l.tier);
    expect(tiers.map((l) => [l.code, l.tier, l.limit])).toEqual([
      ['tier_tokens_per_minute', 'weak', 50_000],
      ['tier_tokens_per_minute', 'strong', 20_000],
    ]);
    expect(tiers.map((l) => (l.used as number) > 1000)).toEqual([false, true]);
    expect(byCode.requests_per_minute).toMatchObject({ unit: 'requests', limit: 10, used: 1, remaining: 9 });
    // The request in flight holds its reservation: ~1,000 tokens, ~$0.0100 on strong-model.
    expect(byCode.daily_token_budget).toMatchObject({ unit: 'tokens', limit: 10_000, resets_at: '2026-11-23T00:00:00.000Z' });
    expect(byCode.daily_token_budget?.used).toBeGreaterThan(1000);
    expect(byCode.daily_cost_budget).toMatchObject({ unit: 'usd', limit: 0.05 });
    expect(byCode.daily_cost_budget?.used).toBeGreaterThan(0.01);
    expect(byCode.daily_cost_budget?.remaining).toBeCloseTo(0.05 - (byCode.daily_cost_budget?.used as number), 9);
    // Reading counts nothing.
    expect((await get('default')).body).toEqual(first.body);
    // Reconciled to what the response reported (strong-model: 100 in, 200 out = $0.00225).
    await inFlight.s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await inFlight.s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'strong-model', choices: [], usage: { prompt_tokens: 100, completion_tokens: 200, total_tokens: 300 } }), true);
    inFlight.s.close();
    const costUsed = async () => ((await get('default')).body as { limits: Array<Record<string, unknown>> }).limits.find((l) => l.code === 'daily_cost_budget')?.used;
    await expect.poll(costUsed).toBe(0.00225);
    expect((await get('not a tenant')).status).toBe(400);
  });

  it('tells a tenant no config names (listed: false) and one no request can be of (404) from an idle one', async () => {
    const keys = [
      { id: 'acme', sha256: sha256Hex('acme-key'), tenant: 'acme' },
      { id: 'ci', sha256: sha256Hex('ci-key'), tenants: ['globex'] },
    ];
    const ports = new Map<TestTiergate, Promise<number>>();
    const view = async (t: TestTiergate, tenant: string) => {
      if (!ports.has(t)) ports.set(t, t.app.admin.listen('127.0.0.1:0'));
      const r = await fetch(`http://127.0.0.1:${await ports.get(t)}/budgets/${tenant}`);
      return r.status === 200 ? ((await r.json()) as { listed: boolean; plan: string | null }) : { status: r.status, text: await r.text() };
    };
    const tenants = { '*': { plan: 'free' }, initech: { plan: 'pro' } };
    const plans = { free: { requestsPerMinute: 5 }, pro: { requestsPerMinute: 50 } };
    // Keys that each name their tenants: any other tenant is a typo, whatever `tenants:` holds.
    const named = await tiergate({ auth: { mode: 'api_key', keys }, tenants, plans }, clock().now);
    expect(await view(named, 'acme')).toMatchObject({ listed: true, plan: 'free' });
    expect(await view(named, 'globex')).toMatchObject({ listed: true });
    expect(await view(named, 'acmee')).toEqual({
      status: 404,
      text: 'no request can be of tenant acmee: no API key acts for it in the config in force (with auth off, every request is tenant default)\n',
    });
    // A key for every tenant reaches any id: one `tenants:` names is listed, any other is not.
    const wild = await tiergate({ auth: { mode: 'api_key', keys: [...keys, { id: 'platform', sha256: sha256Hex('platform-key'), tenants: ['*'] }] }, tenants, plans }, clock().now);
    expect(await view(wild, 'initech')).toMatchObject({ listed: true, plan: 'pro' });
    expect(await view(wild, 'acme')).toMatchObject({ listed: true });
    expect(await view(wild, 'newco')).toMatchObject({ listed: false, plan: 'free' });
    // With auth off every request is tenant default.
    const open = await tiergate({}, clock().now);
    expect(await view(open, 'default')).toMatchObject({ listed: true });
    expect(await view(open, 'acme')).toMatchObject({ status: 404 });
  });
});

describe('concurrent requests (maxConcurrentRequests)', () => {
  /** The tenant's requests in flight, as its instance's store counts them (read, never counted into). */
  async function inFlight(t: TestTiergate, now: number, tenant = 'default'): Promise<number> {
    const rt = t.app.config.current();
    const slots = bucketsFor(rt, rt.tenants.policyFor(tenant), undefined, true, now, true).filter((b) => b.code === 'concurrent_requests');
    return (await t.app.budgets.store.peek(slots, now))[0] as number;
  }

  it('holds a slot per request until its stream ends, refuses past the limit with retry-after 1, frees at the end (not when the row is written)', async () => {
    const c = clock();
    // Rows are built 3 s after their streams end at the earliest: a slot freed with the reconcile would still be
    // held when the poll below gives up.
    const t = await tiergate({ ledger: { lingerMs: 3000 }, tenants: { '*': { maxConcurrentRequests: 2, requestsPerMinute: 100 } } }, c.now);
    const a = await request(t, hi());
    const b = await request(t, hi());
    expect([a.o.kind, b.o.kind]).toEqual(['continue', 'continue']);
    const r = refusal((await request(t, hi())).o);
    expect([r.status, r.error.code, r.error.type]).toEqual([429, 'concurrent_requests', 'requests']);
    expect(r.error.message).toBe('Too many requests in flight for this tenant: limit 2, in flight 2. Try again in 1s, or once one of them has finished.');
    expect(getHeader(r.headers, 'retry-after')).toBe('1');
    expect(getHeader(r.headers, 'x-should-retry')).toBeUndefined(); // the SDK's own retry is what it should do
    // The minute's count is in its headers as on every 429 (all or nothing: the refused request is not in it);
    // there is no OpenAI header for requests in flight.
    expect(getHeader(r.headers, 'x-ratelimit-remaining-requests')).toBe('98');
    expect(await inFlight(t, c.t)).toBe(2);
    await respond(a.s, 30);
    await expect.poll(() => inFlight(t, c.t), { timeout: 1000 }).toBe(1);
    expect((await request(t, hi())).o.kind).toBe('continue');
    // A client that left frees its slot too.
    b.s.cancel();
    await expect.poll(() => inFlight(t, c.t), { timeout: 1000 }).toBe(1);
  });

  it('embeddings (routed on the headers) hold a slot like any request that goes to a backend', async () => {
    const c = clock();
    const t = await tiergate({ routing: { unclassifiedPaths: { '/v1/embeddings': { tier: 'weak' } } }, tenants: { '*': { maxConcurrentRequests: 1 } } }, c.now);
    const chat = await request(t, hi());
    expect(chat.o.kind).toBe('continue');
    const s = t.pool.open();
    expect(refusal(await s.sendRequestHeaders(postHeaders('/v1/embeddings'), false)).error.code).toBe('concurrent_requests');
    s.close();
    chat.s.close();
    await expect.poll(() => inFlight(t, c.t)).toBe(0);
    const e = t.pool.open();
    expect((await e.sendRequestHeaders(postHeaders('/v1/embeddings'), false)).kind).toBe('continue');
    expect(await inFlight(t, c.t)).toBe(1);
    e.close();
  });

  it('a request in flight longer than the lease keeps its slot: its instance renews it', async () => {
    const c = clock();
    const t = await tiergate({ budgets: { concurrencyLeaseMs: 1000 }, tenants: { '*': { maxConcurrentRequests: 1 } } }, c.now);
    const long = await request(t, hi());
    expect(long.o.kind).toBe('continue');
    // 3 s of the instance's clock in steps, the renewal (every ~333 ms) given real time to run between them.
    for (let i = 0; i < 6; i++) {
      c.t += 500;
      await new Promise((r) => setTimeout(r, 400));
    }
    expect(await inFlight(t, c.t)).toBe(1);
    expect(refusal((await request(t, hi())).o).error.code).toBe('concurrent_requests');
    long.s.close();
    await expect.poll(() => inFlight(t, c.t)).toBe(0);
  });

  it('Redis, two instances: the limit is shared; the slots of an instance that stopped renewing come back after the lease', async () => {
    const c = clock();
    const config: ConfigInput = { budgets: { concurrencyLeaseMs: 1000 }, tenants: { '*': { maxConcurrentRequests: 3 } } };
    const prefix = `conc${prefixes++}:`;
    const [one, two] = [await tiergate(config, c.now, 'redis', prefix), await tiergate(config, c.now, 'redis', prefix)];
    const held = [await request(one, hi()), await request(one, hi()), await request(two, hi())];
    expect(held.map((h) => h.o.kind)).toEqual(['continue', 'continue', 'continue']);
    expect(refusal((await request(two, hi())).o).error.code).toBe('concurrent_requests');
    expect(refusal((await request(one, hi())).o).error.code).toBe('concurrent_requests');
    // Instance one stops renewing (as a process that died would) with two requests in flight; two keeps renewing.
    vi.spyOn(one.app.budgets.store, 'renew').mockImplementation(async () => {});
    for (let i = 0; i < 3; i++) {
      c.t += 500;
      await new Promise((r) => setTimeout(r, 400));
    }
    expect(await inFlight(two, c.t)).toBe(1);
    const next = [await request(two, hi()), await request(two, hi())];
    expect(next.map((h) => h.o.kind)).toEqual(['continue', 'continue']);
    expect(refusal((await request(two, hi())).o).error.code).toBe('concurrent_requests');
    for (const h of [...held, ...next]) h.s.close();
    await expect.poll(() => inFlight(two, c.t)).toBe(0);
  });

  it('/budgets/{tenant} shows the requests in flight, with no reset time', async () => {
    const c = clock();
    const t = await tiergate({ tenants: { '*': { maxConcurrentRequests: 4 } } }, c.now);
    const port = await t.app.admin.listen('127.0.0.1:0');
    const a = await request(t, hi());
    const body = (await (await fetch(`http://127.0.0.1:${port}/budgets/default`)).json()) as { limits: Array<Record<string, unknown>> };
    expect(body.limits).toEqual([{ code: 'concurrent_requests', unit: 'concurrent', limit: 4, used: 1, remaining: 3 }]);
    a.s.close();
  });
});

describe('monthly budgets', () => {
  it('a monthly token budget refuses with monthly_token_budget until the month rolls over', async () => {
    const c = clock(Date.UTC(2026, 11, 31, 23, 0)); // an hour before the year ends, in UTC
    const t = await tiergate({ tenants: { '*': { monthlyTokenBudget: 2500 } } }, c.now);
    const body = hi({ max_tokens: 1000 });
    const admitted = [await request(t, body), await request(t, body)];
    expect(admitted.map((r) => r.o.kind)).toEqual(['continue', 'continue']);
    const third = refusal((await request(t, body)).o);
    expect([third.status, third.error.type, third.error.code]).toEqual([429, 'tokens', 'monthly_token_budget']);
    expect(Number(getHeader(third.headers, 'retry-after'))).toBe(3600);
    // The OpenAI SDK would sleep out that hour inside the application's call: told not to retry, it returns the 429.
    expect(getHeader(third.headers, 'x-should-retry')).toBe('false');
    for (const r of admitted) r.s.close();
    c.t += 3600_000;
    expect((await request(t, body)).o.kind).toBe('continue');
  });

  it('a monthly cost budget refuses with monthly_cost_budget until the calendar month in budgets.timeZone rolls over', async () => {
    // 23:30 on 30 November in Seoul (UTC+9): December begins there half an hour later.
    const c = clock(Date.UTC(2026, 10, 30, 14, 30));
    const t = await tiergate({ budgets: { timeZone: 'Asia/Seoul' }, tenants: { '*': { monthlyCostBudgetUsd: 0.015, dailyCostBudgetUsd: 1 } } }, c.now);
    const strong = hi({ model: 'strong-model', max_tokens: 1000 }); // ~$0.0100 reserved each
    const first = await request(t, strong);
    expect(first.o.kind).toBe('continue');
    const second = refusal((await request(t, strong)).o);
    expect([second.status, second.error.type, second.error.code]).toEqual([429, 'insufficient_quota', 'monthly_cost_budget']);
    // retry-after: until local midnight, not a day or a month away.
    expect(Number(getHeader(second.headers, 'retry-after'))).toBe(30 * 60);
    expect(getHeader(second.headers, 'x-should-retry')).toBe('false');
    first.s.close();
    c.t += 30 * 60_000;
    expect((await request(t, strong)).o.kind).toBe('continue');
  });

  it('a monthly cost budget alone (no daily one beside it) reserves each request\'s cost and refuses when spent', async () => {
    const c = clock(Date.UTC(2026, 10, 12, 12));
    const t = await tiergate({ tenants: { '*': { monthlyCostBudgetUsd: 0.015 } } }, c.now);
    const strong = hi({ model: 'strong-model', max_tokens: 1000 }); // ~$0.0100 reserved each
    const first = await request(t, strong);
    expect(first.o.kind).toBe('continue');
    const second = refusal((await request(t, strong)).o);
    expect([second.status, second.error.code]).toEqual([429, 'monthly_cost_budget']);
    first.s.close();
  });
});

describe('token budgets', () => {
  const DAILY: ConfigInput = { tenants: { '*': { dailyTokenBudget: 10_000, requestsPerMinute: 1000 } } };

  it.each(['memory', 'redis'] as const)('%s: reserve prompt + max_tokens, reconcile to reported usage; never more admitted than fits', async (store) => {
    const c = clock();
    const t = await tiergate(DAILY, c.now, store);
    const body = hi({ max_tokens: 1000 });
    const round1 = await Promise.all(Array.from({ length: 30 }, () => request(t, body, undefined, PATIENT)));
    const in1 = round1.filter((r) => r.o.kind === 'continue');
    const reservation = (await dayCounted(t, c.t)) / in1.length;
    expect(reservation).toBeGreaterThan(1000); // max_tokens plus the counted prompt
    expect(reservation).toBeLessThan(1030);
    expect(in1).toHaveLength(Math.floor(10_000 / reservation));
    for (const r of round1.filter((x) => x.o.kind !== 'continue')) expect(refusal(r.o).error.code).toBe('daily_token_budget');
    // Each admitted request reports 300 tokens used: the reservations shrink to that.
    await Promise.all(in1.map((r) => respond(r.s, 300)));
    for (const r of round1) r.s.close();
    await expect.poll(() => dayCounted(t, c.t)).toBe(300 * in1.length);
    const room = 10_000 - 300 * in1.length;
    const round2 = await Promise.all(Array.from({ length: 30 }, () => request(t, body, undefined, PATIENT)));
    const in2 = round2.filter((r) => r.o.kind === 'continue');
    expect(in2).toHaveLength(Math.floor(room / reservation));
    // These report more than they reserved (a backend counting differently): the overshoot is bounded by what
    // the requests in flight used beyond their reservations, and nothing more is admitted once over.
    await Promise.all(in2.map((r) => respond(r.s, Math.ceil(reservation) + 50)));
    for (const r of round2) r.s.close();
    const used = 300 * in1.length + (Math.ceil(reservation) + 50) * in2.length;
    await expect.poll(() => dayCounted(t, c.t)).toBe(used);
    expect(used - 10_000).toBeLessThanOrEqual(in2.length * (Math.ceil(reservation) + 50 - reservation));
    expect(refusal((await request(t, hi({ max_tokens: 1 }))).o).error.code).toBe('daily_token_budget');
  });

  it("the prompt reserved includes the tool calls and tool outputs in the history: an agent's files read back, chat or Responses", async () => {
    const c = clock();
    const t = await tiergate(DAILY, c.now);
    const file = 'export function add(a: number, b: number): number {\n  return a + b;\n}\n'.repeat(60);
    const fileTokens = await countTokens(file);
    expect(fileTokens).toBeGreaterThan(1000);
    // Chat: the file went out as a tool call's arguments (write_file), the way coding agents write.
    const args = JSON.stringify({ path: 'add.ts', text: file });
    const chat = await request(t, jsonBody({ model: 'auto', max_tokens: 100, messages: [
      { role: 'user', content: 'Write add.ts' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'write_file', arguments: args } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'ok' },
      { role: 'user', content: 'thanks' },
    ] }));
    expect(chat.o.kind).toBe('continue');
    const chatReserved = await dayCounted(t, c.t);
    expect(chatReserved).toBeGreaterThan(100 + (await countTokens(args)));
    chat.s.close();
    // The Responses API: the file came back as a shell command's output (Codex's `cat`).
    const s = t.pool.open();
    await s.sendRequestHeaders(postHeaders('/v1/responses'), false);
    const o = await s.sendRequestBody(jsonBody({ model: 'auto', store: false, max_output_tokens: 100, input: [
      { role: 'user', content: 'What does add.ts do?' },
      { type: 'shell_call', call_id: 'c1', action: { commands: ['cat add.ts'] }, status: 'completed' },
      { type: 'shell_call_output', call_id: 'c1', output: [{ stdout: file, stderr: '', outcome: { type: 'exit', exit_code: 0 } }] },
    ] }));
    expect(o.kind).toBe('continue');
    expect((await dayCounted(t, c.t)) - chatReserved).toBeGreaterThan(100 + fileTokens);
    s.close();
  });

  it.each(['memory', 'redis'] as const)("%s: reported usage settles the reservation as the response ends, before the stream closes or the row is built: the next request finds it freed", async (store) => {
    const c = clock();
    // A ledger batch that waits 10 s: a reconcile left to the row would still hold the reservation below.
    const t = await tiergate({ tenants: { '*': { dailyTokenBudget: 2500, dailyCostBudgetUsd: 1 } }, ledger: { lingerMs: 10_000 } }, c.now, store);
    const body = hi({ max_tokens: 1000 });
    const a = await request(t, body, 'first');
    expect(a.o.kind).toBe('continue');
    const reservation = await dayCounted(t, c.t);
    expect(reservation).toBeGreaterThan(1000);
    // The answer's last piece, with its usage; Envoy has not closed the stream yet (it does after the client got it).
    await a.s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await a.s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'weak-model', choices: [], usage: { prompt_tokens: 20, completion_tokens: 10, total_tokens: 30 } }), true);
    await expect.poll(() => dayCounted(t, c.t)).toBe(30);
    // 20 in and 10 out on weak-model ($0.10 and $0.40 per million): 2 + 4 micro-dollars.
    expect(await microUsdCounted(t, c.t)).toBe(6);
    const dollarsReserved = async () => (await microUsdCounted(t, c.t)) - 6;
    // A client that sends its next requests at once: two fit beside what was used (30 + 2 × ~1010 ≤ 2500), where
    // the first one's reservation still held would have left room for one.
    const b = await request(t, body);
    const d = await request(t, body);
    expect([b.o.kind, d.o.kind]).toEqual(['continue', 'continue']);
    const othersMicroUsd = await dollarsReserved();
    // The stream ends and its row is built: the same tokens and dollars as settled, reconciled once (not again).
    a.s.close();
    const row = await rowFor(t, 'first');
    expect(row.usage.total_tokens).toBe(30);
    expect(row.cost_usd?.total).toBe(0.000006);
    expect(await dayCounted(t, c.t)).toBe(30 + 2 * reservation);
    expect(await dollarsReserved()).toBe(othersMicroUsd);
    b.s.close();
    d.s.close();
  });

  it('a response that ends with trailers settles on them, with the usage a configured trailer reports', async () => {
    const c = clock();
    const t = await tiergate({ tenants: { '*': { dailyTokenBudget: 2500 } }, ledger: { lingerMs: 10_000 }, usage: { trailer: 'x-usage' } }, c.now);
    const a = await request(t, hi({ max_tokens: 1000 }), 'trailered', { ...RECOMMENDED_FILTER, processingMode: { ...RECOMMENDED_FILTER.processingMode, responseTrailerMode: 'SEND' } });
    await a.s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await a.s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'weak-model', choices: [] }), false);
    expect(await dayCounted(t, c.t)).toBeGreaterThan(1000); // the body is over, the response is not
    await a.s.sendResponseTrailers([['x-usage', JSON.stringify({ prompt_tokens: 20, completion_tokens: 20, total_tokens: 40 })]]);
    expect(await dayCounted(t, c.t)).toBe(40);
    a.s.close();
    expect((await rowFor(t, 'trailered')).usage.total_tokens).toBe(40);
    expect(await dayCounted(t, c.t)).toBe(40);
  });

  it('a response without reported usage keeps its reservation until its row estimates what it used', async () => {
    const c = clock();
    const t = await tiergate({ tenants: { '*': { dailyTokenBudget: 2500 } }, ledger: { lingerMs: 10_000 } }, c.now);
    const a = await request(t, hi({ max_tokens: 1000 }), 'estimated');
    const reservation = await dayCounted(t, c.t);
    await a.s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
    await a.s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'weak-model', choices: [{ index: 0, message: { role: 'assistant', content: 'Hi there' }, finish_reason: 'stop' }] }), true);
    expect(await dayCounted(t, c.t)).toBe(reservation);
    a.s.close();
    const row = await rowFor(t, 'estimated');
    expect(row.usage_source).toBe('estimated');
    expect(await dayCounted(t, c.t)).toBe(row.usage.total_tokens);
  });

  it('a stream cancelled after admission releases its reservation', async () => {
    const c = clock();
    const t = await tiergate({ tenants: { '*': { dailyTokenBudget: 2500 } } }, c.now);
    const body = hi({ max_tokens: 1000 });
    const a = await request(t, body);
    const b = await request(t, body);
    expect([a.o.kind, b.o.kind]).toEqual(['continue', 'continue']);
    expect(refusal((await request(t, body)).o).error.code).toBe('daily_token_budget');
    a.s.cancel(); // the client went away before any response
    // The reservation (~1000) is replaced by the estimate of what the upstream may have read: the prompt.
    await expect.poll(() => dayCounted(t, c.t)).toBeLessThan(1100);
    expect((await request(t, body)).o.kind).toBe('continue');
    b.s.close();
  });

  it('a stream that ends while its admission is still running: the late admission releases its reservation at once', async () => {
    const c = clock();
    const t = await tiergate({ tenants: { '*': { dailyTokenBudget: 2500, requestsPerMinute: 100 } } }, c.now, 'redis');
    const admin = servers.redis.client();
    try {
      // Redis holds every client's commands for 600 ms: the admission script waits, longer than Envoy's 200 ms.
      await admin.call('CLIENT', 'PAUSE', '600', 'ALL');
      const slow = await request(t, hi({ max_tokens: 1000 }), 'late-1');
      expect(slow.o).toMatchObject({ kind: 'error', status: 504 }); // Envoy stopped waiting and reset the stream
      // Once Redis answers, the admission lands for a stream that is gone: reserved, then released at once.
      await expect.poll(() => metricValue(t.app, 'tiergate_budget_late_admissions_total'), { timeout: 3000 }).toBe(1);
      await expect.poll(() => dayCounted(t, c.t)).toBe(0);
      // Before, it held ~1,000 of the 2,500 tokens for budgets.reservationTtlMs: two more such requests could not
      // both have been admitted.
      const a = await request(t, hi({ max_tokens: 1000 }));
      const b = await request(t, hi({ max_tokens: 1000 }));
      expect([a.o.kind, b.o.kind]).toEqual(['continue', 'continue']);
      a.s.close();
      b.s.close();
      // It reached tiergate, so it has its ledger row: cancelled before it was sent upstream, nothing used.
      const row = (await t.rows()).find((r) => r.request_id === 'late-1');
      expect(row).toMatchObject({ status: 'cancelled', usage: { total_tokens: 0 }, usage_source: 'none' });
    } finally {
      admin.disconnect();
    }
  });

  it('a request that can never fit is refused without retry-after', async () => {
    const c = clock();
    const t = await tiergate({ tenants: { '*': { tokensPerMinute: 500 } } }, c.now);
    const r = refusal((await request(t, hi({ max_tokens: 4000 }))).o);
    expect([r.status, r.error.code]).toEqual([429, 'tokens_per_minute']);
    expect(r.error.message).toMatch(/Request too large/);
    expect(getHeader(r.headers, 'retry-after')).toBeUndefined();
    expect(getHeader(r.headers, 'x-should-retry')).toBe('false');
  });

  it('the completion allowance counts every completion generated: n, or best_of on /v1/completions', async () => {
    const c = clock();
    const t = await tiergate({ tenants: { '*': { tokensPerMinute: 500 } } }, c.now);
    // ~200 per completion fits 500 once, not three times: refused as one that can never fit.
    expect((await request(t, hi({ max_tokens: 200, n: 1 }))).o.kind).toBe('continue');
    const three = refusal((await request(t, hi({ max_tokens: 200, n: 3 }))).o);
    expect([three.status, three.error.code]).toEqual([429, 'tokens_per_minute']);
    expect(three.error.message).toMatch(/Request too large/);
    const completion = async (body: Record<string, unknown>) => {
      const s = t.pool.open();
      await s.sendRequestHeaders(chatRequestHeaders().map(([k, v]) => [k, k === ':path' ? '/v1/completions' : v] as [string, string]), false);
      const o = await s.sendRequestBody(jsonBody({ model: 'auto', prompt: 'Say hi', max_tokens: 200, ...body }));
      s.close();
      return o;
    };
    const bestOf = refusal(await completion({ best_of: 3, n: 1 }));
    expect([bestOf.status, bestOf.error.code]).toEqual([429, 'tokens_per_minute']);
    // A count a backend would coerce from a string is refused before it can be under-reserved.
    const coerced = refusal(await completion({ best_of: '3' }));
    expect([coerced.status, coerced.error.code]).toEqual([400, 'invalid_request']);
  });

  it('a completions batch reserves the completions of every prompt, and token-id prompts reserve every id', async () => {
    const c = clock();
    let t = await tiergate({ tenants: { '*': { tokensPerMinute: 500, dailyTokenBudget: 100_000 } } }, c.now);
    const completion = async (body: Record<string, unknown>) => {
      const s = t.pool.open();
      await s.sendRequestHeaders(chatRequestHeaders().map(([k, v]) => [k, k === ':path' ? '/v1/completions' : v] as [string, string]), false);
      const o = await s.sendRequestBody(jsonBody({ model: 'auto', max_tokens: 200, ...body }));
      return { s, o };
    };
    // One prompt of ~200 fits 500; the same as a batch of three is 600 tokens of completions and can never fit.
    const one = await completion({ prompt: 'Say hi' });
    expect(one.o.kind).toBe('continue');
    one.s.close();
    for (const prompt of [['Say hi', 'Say ho', 'Say ha'], [[1, 2], [3, 4], [5, 6]]]) {
      const batch = await completion({ prompt });
      const r = refusal(batch.o);
      expect([r.status, r.error.code], JSON.stringify(prompt)).toEqual([429, 'tokens_per_minute']);
      batch.s.close();
    }
    // 400 token ids and max_tokens 50: the tokenizer sees no text, but the backend reads 400 tokens.
    const ids = Array.from({ length: 400 }, (_, i) => i);
    const r = refusal((await completion({ prompt: ids, max_tokens: 150 })).o);
    expect([r.status, r.error.code]).toEqual([429, 'tokens_per_minute']);
    // What it reserves, on an instance that has reserved nothing else.
    t = await tiergate({ tenants: { '*': { tokensPerMinute: 500, dailyTokenBudget: 100_000 } } }, c.now);
    const fits = await completion({ prompt: ids, max_tokens: 50 });
    expect(fits.o.kind).toBe('continue');
    const reserved = await dayCounted(t, c.t);
    expect(reserved).toBeGreaterThanOrEqual(400 + 50);
    expect(reserved).toBeLessThan(400 + 50 + 20);
    fits.s.close();
  });

  it('tool definitions, and the legacy functions, count in the prompt reserved', async () => {
    const c = clock();
    const t = await tiergate({ tenants: { '*': { tokensPerMinute: 500 } } }, c.now);
    // ~600 tokens of definitions: with max_tokens 50 the request could fit 500 only if they were not counted.
    const fn = { name: 'lookup', description: 'Look up the weather for a city and a day. '.repeat(60), parameters: { type: 'object' } };
    for (const extra of [{ tools: [{ type: 'function', function: fn }] }, { functions: [fn] }]) {
      const r = refusal((await request(t, hi({ max_tokens: 50, ...extra }))).o);
      expect([r.status, r.error.code], Object.keys(extra)[0]).toEqual([429, 'tokens_per_minute']);
    }
    expect((await request(t, hi({ max_tokens: 50 }))).o.kind).toBe('continue');
  });

  it('each image, audio or file part reserves budgets.mediaPartEstimate tokens, which the tokenizer cannot count', async () => {
    const c = clock();
    const image = { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } };
    const withImages = (n: number) => jsonBody({ model: 'auto', max_tokens: 50, messages: [{ role: 'user', content: [{ type: 'text', text: 'Say hi' }, ...Array.from({ length: n }, () => image)] }] });
    const t = await tiergate({ tenants: { '*': { dailyTokenBudget: 100_000, tokensPerMinute: 2500 } } }, c.now);
    // Two images fit 2,500 (2 x 1,000 + ~60), three could not: refused before the backend is called.
    const two = await request(t, withImages(2));
    expect(two.o.kind).toBe('continue');
    const reserved = await dayCounted(t, c.t);
    expect(reserved).toBeGreaterThanOrEqual(2000 + 50);
    expect(reserved).toBeLessThan(2000 + 100);
    const three = refusal((await request(t, withImages(3))).o);
    expect([three.status, three.error.code]).toEqual([429, 'tokens_per_minute']);
    await respond(two.s, 1800);
    // Reconciled to the reported usage, as any reservation.
    await expect.poll(() => dayCounted(t, c.t)).toBe(1800);
    // 0 turns the estimate off: the same three images are then reserved as text only.
    const off = await tiergate({ budgets: { mediaPartEstimate: 0 }, tenants: { '*': { tokensPerMinute: 2500 } } }, c.now);
    expect((await request(off, withImages(3))).o.kind).toBe('continue');
  });

  it('a prompt that writes out a special token (<|endoftext|>) is reserved like any text, not failed', async () => {
    // The tokenizer's default throws on these strings: with a token limit the request was answered 500.
    const c = clock();
    const t = await tiergate({ tenants: { '*': { dailyTokenBudget: 100_000, tokensPerMinute: 2500 } } }, c.now);
    const body = jsonBody({ model: 'auto', max_tokens: 50, messages: [{ role: 'user', content: 'Why does my fine-tune print <|endoftext|> and <|im_start|>?' }] });
    const { o, s } = await request(t, body);
    expect(o.kind).toBe('continue');
    const reserved = await dayCounted(t, c.t);
    expect(reserved).toBeGreaterThan(50 + 20);
    await respond(s, 120);
    await expect.poll(() => dayCounted(t, c.t)).toBe(120);
  });

  it('the daily budget rolls over at midnight in the configured time zone', async () => {
    const c = clock(Date.UTC(2026, 10, 22, 14, 59, 0)); // 23:59 in Seoul
    const t = await tiergate({ budgets: { timeZone: 'Asia/Seoul' }, tenants: { '*': { dailyTokenBudget: 1500 } } }, c.now);
    expect((await request(t, hi({ max_tokens: 1000 }))).o.kind).toBe('continue');
    const r = refusal((await request(t, hi({ max_tokens: 1000 }))).o);
    expect(getHeader(r.headers, 'retry-after')).toBe('60');
    expect(getHeader(r.headers, 'x-should-retry')).toBeUndefined(); // 60 s is still worth waiting out
    c.t = Date.UTC(2026, 10, 22, 15, 0, 0); // 00:00 in Seoul, still the 22nd in UTC
    expect((await request(t, hi({ max_tokens: 1000 }))).o.kind).toBe('continue');
  });

  it('gateway-wide and per-tier tokens per minute hold across tenants', async () => {
    const c = clock();
    const t = await tiergate({ budgets: { globalTokensPerMinute: 4000, tierTokensPerMinute: { weak: 2500 } } }, c.now);
    expect((await request(t, hi({ max_tokens: 1000 }))).o.kind).toBe('continue');
    expect((await request(t, hi({ max_tokens: 1000 }))).o.kind).toBe('continue');
    expect(refusal((await request(t, hi({ max_tokens: 1000 }))).o).error.code).toBe('tier_tokens_per_minute');
    // A tier's limit alone, with no other token limit: still reserved and held, for that tier only.
    const t3 = await tiergate({ budgets: { tierTokensPerMinute: { weak: 1500 } } }, c.now);
    expect((await request(t3, hi({ max_tokens: 1000 }))).o.kind).toBe('continue');
    expect(refusal((await request(t3, hi({ max_tokens: 1000 }))).o).error.code).toBe('tier_tokens_per_minute');
    expect((await request(t3, hi({ model: 'strong-model', max_tokens: 1000 }))).o.kind).toBe('continue');
    const t2 = await tiergate({ budgets: { globalTokensPerMinute: 1500 } }, c.now);
    expect((await request(t2, hi({ max_tokens: 1000 }))).o.kind).toBe('continue');
    expect(refusal((await request(t2, hi({ max_tokens: 1000 }))).o).error.code).toBe('global_tokens_per_minute');
  });

  it('every response carries the x-ratelimit headers; from 80% of the daily budget also x-budget-warning, logged once', async () => {
    const c = clock();
    const t = await tiergate({ tenants: { '*': { dailyTokenBudget: 10_000, requestsPerMinute: 50 } } }, c.now);
    // Each request uses all it reserved, so the day fills up as the reservations say.
    const headersOf = async (maxTokens: number) => {
      const { s } = await request(t, hi({ max_tokens: maxTokens }));
      await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      const h = [...s.responseHeaders];
      await s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'weak-model', choices: [], usage: { prompt_tokens: 10, completion_tokens: maxTokens, total_tokens: maxTokens + 10 } }), true);
      s.close();
      return h;
    };
    const first = await headersOf(5000);
    expect(getHeader(first, 'x-ratelimit-limit-requests')).toBe('50');
    expect(getHeader(first, 'x-ratelimit-remaining-requests')).toBe('49');
    expect(getHeader(first, 'x-ratelimit-reset-requests')).toBe('50s');
    expect(getHeader(first, 'x-ratelimit-limit-tokens')).toBe('10000');
    expect(Number(getHeader(first, 'x-ratelimit-remaining-tokens'))).toBeLessThan(5000);
    expect(getHeader(first, 'x-budget-warning')).toBeUndefined();
    await expect.poll(() => dayCounted(t, c.t)).toBe(5010);
    const second = await headersOf(3000);
    expect(getHeader(second, 'x-budget-warning')).toMatch(/^daily_token_budget 8\d% used$/);
    const third = await headersOf(100);
    expect(getHeader(third, 'x-budget-warning')).toMatch(/^daily_token_budget \d+% used$/);
    expect(t.logs.filter((l) => l.includes('"budget.warning"'))).toHaveLength(1);
    expect(await metricValue(t.app, 'tiergate_budget_warnings_total')).toBe(1);
  });
});
