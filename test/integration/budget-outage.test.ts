// Redis stopped mid-run and restarted, with each failure rule: no crash, no hung request, fail-open enforcing
// the per-instance share of the limit and saying so, fail-closed answering 503, and automatic recovery.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { chatRequestHeaders, getHeader, type Headers, type Outcome } from '../../src/dev/envoy-client.js';
import { RedisServer } from '../helpers/redis-server.js';
import { budgetView, jsonBody, metricValue, minuteAlignedClock, startTiergate, type TestTiergate } from '../helpers/tiergate.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await RedisServer.start();
});
afterAll(async () => redis.down());

function config(onStoreFailure: 'open' | 'closed', keyPrefix: string, limits: { requestsPerMinute?: number; tokensPerMinute?: number } = { requestsPerMinute: 10 }, failures = 2): ConfigInput {
  return {
    tenants: { '*': limits },
    budgets: {
      store: 'redis',
      redis: { url: redis.url, keyPrefix, connectTimeoutMs: 50, commandTimeoutMs: 50 },
      onStoreFailure,
      expectedInstances: 2,
      breaker: { failures, cooldownMs: 200 },
    },
  };
}

/** One request; for an admitted one, the response headers the client would see. */
async function call(t: TestTiergate): Promise<{ o: Outcome; headers: Headers }> {
  const s = t.pool.open();
  await s.sendRequestHeaders(chatRequestHeaders(), false);
  const o = await s.sendRequestBody(jsonBody({ model: 'auto', messages: [{ role: 'user', content: 'Say hi' }] }));
  if (o.kind !== 'continue') {
    s.close();
    return { o, headers: o.kind === 'immediate' ? o.headers : [] };
  }
  await s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
  const headers = [...s.responseHeaders];
  s.close();
  return { o, headers };
}
const statusOf = (o: Outcome) => (o.kind === 'immediate' ? o.status : o.kind === 'continue' ? 200 : o.kind);

describe('budget store outage', () => {
  it('fail-open: per-instance share of the limit, marked degraded; recovers when Redis is back', async () => {
    const t = await startTiergate(config('open', 'outage-open:'), {}, { now: minuteAlignedClock() });
    try {
      const healthy = await call(t);
      expect(statusOf(healthy.o)).toBe(200);
      expect(getHeader(healthy.headers, 'x-tiergate-degraded')).toBeUndefined();

      await redis.down();
      const during = [];
      for (let i = 0; i < 8; i++) during.push(await call(t));
      // Every request got an answer; 10 per minute over 2 expected instances = 5 admitted here.
      expect(during.map((r) => statusOf(r.o))).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
      for (const r of during) expect(getHeader(r.headers, 'x-tiergate-degraded')).toBe('budget-store');
      expect(getHeader(during[0]?.headers ?? [], 'x-ratelimit-limit-requests')).toBe('5');
      expect(await metricValue(t.app, 'tiergate_budget_store_degraded')).toBe(1);
      expect(await metricValue(t.app, 'tiergate_budget_store_failures_total')).toBeGreaterThanOrEqual(2);
      // The breaker stops calling a Redis known to be down, and the log says so once, not per request.
      expect(await metricValue(t.app, 'tiergate_budget_store_failures_total')).toBeLessThan(8);
      expect(t.logs.filter((l) => l.includes('"budget.store_failed"')).length).toBe(1);

      await redis.up();
      await expect
        .poll(async () => getHeader((await call(t)).headers, 'x-tiergate-degraded') ?? 'healthy', { timeout: 5000, interval: 100 })
        .toBe('healthy');
      expect(await metricValue(t.app, 'tiergate_budget_store_degraded')).toBe(0);
    } finally {
      await t.stop();
    }
  });

  it('fail-closed: 503 while Redis is away, with retry-after; recovers when it is back', async () => {
    const t = await startTiergate(config('closed', 'outage-closed:'), {}, { now: minuteAlignedClock() });
    try {
      expect(statusOf((await call(t)).o)).toBe(200);
      const port = await t.app.admin.listen('127.0.0.1:0');
      await redis.down();
      // The admin listener's budget view says the store cannot be read, and answers at once.
      const view = await fetch(`http://127.0.0.1:${port}/budgets/default`);
      expect([view.status, (await view.text()).startsWith('budget store unavailable')]).toEqual([503, true]);
      for (let i = 0; i < 4; i++) {
        const { o, headers } = await call(t);
        expect(statusOf(o)).toBe(503);
        expect(o.kind === 'immediate' && JSON.parse(o.body.toString()).error.code).toBe('dependency_unavailable');
        expect(getHeader(headers, 'retry-after')).toBe('1');
      }
      // A request refused for its body is counted against the minute when the store answers; when it cannot, the
      // client still gets its own 400, not the store's 503.
      const bad = t.pool.open();
      await bad.sendRequestHeaders(chatRequestHeaders(), false);
      const refused = await bad.sendRequestBody(Buffer.from('{"messages": ['));
      bad.close();
      expect([statusOf(refused), refused.kind === 'immediate' && JSON.parse(refused.body.toString()).error.code]).toEqual([400, 'invalid_json']);
      await redis.up();
      await expect.poll(async () => statusOf((await call(t)).o), { timeout: 5000, interval: 100 }).toBe(200);
    } finally {
      await t.stop();
    }
  });

  it('a reconcile lost to an outage is replayed once Redis is back, ahead of the next admission: no phantom 429', async () => {
    const t = await startTiergate(config('open', 'outage-reconcile:', { tokensPerMinute: 100 }, 5), {}, { now: minuteAlignedClock() });
    const ask = async () => {
      const s = t.pool.open();
      await s.sendRequestHeaders(chatRequestHeaders(), false);
      const o = await s.sendRequestBody(jsonBody({ model: 'auto', max_tokens: 50, messages: [{ role: 'user', content: 'Say hi' }] }));
      return { s, o };
    };
    try {
      // Reserves ~60 of the minute's 100 tokens; its answer used 14, but Redis is down when it ends.
      const first = await ask();
      expect(statusOf(first.o)).toBe(200);
      await redis.down();
      await first.s.sendResponseHeaders([[':status', '200'], ['content-type', 'application/json']], false);
      await first.s.sendResponseBody(jsonBody({ object: 'chat.completion', model: 'weak-model', choices: [], usage: { prompt_tokens: 9, completion_tokens: 5, total_tokens: 14 } }), true);
      first.s.close();
      await expect.poll(() => metricValue(t.app, 'tiergate_budget_store_failures_total', { op: 'reconcile' })).toBe(1);
      await redis.up();
      // With no traffic at all, the reservation is settled soon after Redis is back: the budget view (which only
      // reads) shows the 14 tokens used. Before: the ~60 reserved stayed until the next admission.
      await expect.poll(budgetView(t, 'tokens_per_minute'), { timeout: 5000, interval: 100 }).toBe(14);
      const next = await ask();
      next.s.close();
      expect(statusOf(next.o)).toBe(200);
    } finally {
      await t.stop();
    }
  });

  it('an admission that timed out but ran in Redis after all (a stalled Redis) does not keep its reservation', async () => {
    const t = await startTiergate(config('open', 'outage-stalled:', { tokensPerMinute: 100_000 }, 5), {}, { now: minuteAlignedClock() });
    const tokensCounted = budgetView(t, 'tokens_per_minute');
    const pauser = redis.client();
    try {
      expect(await tokensCounted()).toBe(0); // connected, nothing counted yet
      await pauser.call('CLIENT', 'PAUSE', '300', 'ALL');
      const s = t.pool.open();
      await s.sendRequestHeaders(chatRequestHeaders(), false);
      const o = await s.sendRequestBody(jsonBody({ model: 'auto', max_tokens: 50, messages: [{ role: 'user', content: 'Say hi' }] }));
      // Served by the local limiter once the admission timed out…
      expect(statusOf(o)).toBe(200);
      expect(await metricValue(t.app, 'tiergate_budget_store_failures_total', { op: 'admit' })).toBe(1);
      s.close();
      // …while Redis ran that admission when the pause ended. Before: its ~60 tokens stayed reserved for
      // budgets.reservationTtlMs (10 minutes).
      await new Promise((r) => setTimeout(r, 400));
      await expect.poll(tokensCounted, { timeout: 3000, interval: 100 }).toBe(0);
    } finally {
      pauser.disconnect();
      await t.stop();
    }
  });
});

