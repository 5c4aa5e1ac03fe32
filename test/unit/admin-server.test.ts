// The admin listener's answers (src/admin-server.ts), in process, with stand-ins for readiness, the metrics
// registry and the budget store: each answer, and each failure behind one. The lifecycle and budgets suites
// check the same listener inside a running tiergate.
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createAdminServer, type AdminServer, type BudgetStatusFn } from '../../src/admin-server.js';
import { createMetrics } from '../../src/telemetry/metrics.js';

let open: AdminServer[] = [];
afterEach(async () => {
  await Promise.all(open.map((a) => a.close()));
  open = [];
});

async function admin(opts: { ready?: () => boolean; budgetStatus?: BudgetStatusFn; metricsFail?: boolean } = {}) {
  const metrics = createMetrics();
  if (opts.metricsFail) metrics.registry.metrics = () => Promise.reject(new Error('a collector threw'));
  const a = createAdminServer(metrics, opts.ready ?? (() => true), opts.budgetStatus);
  open.push(a);
  const port = await a.listen('127.0.0.1:0');
  return async (path: string, method = 'GET') => {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { method });
    return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
  };
}

describe('the admin listener', () => {
  it('/healthz, /readyz both ways, and a query string ignored', async () => {
    let ready = false;
    const get = await admin({ ready: () => ready });
    expect(await get('/healthz')).toEqual({ status: 200, type: 'text/plain', text: 'ok\n' });
    expect(await get('/readyz')).toEqual({ status: 503, type: 'text/plain', text: 'not ready\n' });
    ready = true;
    expect(await get('/readyz?verbose=1')).toEqual({ status: 200, type: 'text/plain', text: 'ready\n' });
  });

  it("/metrics in Prometheus' text format; a registry that fails is a 500 saying why", async () => {
    const ok = await (await admin())('/metrics');
    expect([ok.status, ok.type]).toEqual([200, 'text/plain; version=0.0.4; charset=utf-8']);
    expect(ok.text).toContain('# TYPE tiergate_requests_total counter');
    expect(await (await admin({ metricsFail: true }))('/metrics')).toEqual({ status: 500, type: 'text/plain', text: 'a collector threw\n' });
  });

  it('anything else is 404, and any method but GET and HEAD 405, whatever the path', async () => {
    const get = await admin();
    for (const path of ['/', '/health', '/metrics/x', '/budgets/acme']) expect(await get(path), path).toEqual({ status: 404, type: 'text/plain', text: 'not found\n' });
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) expect(await get('/nowhere', method), method).toEqual({ status: 405, type: 'text/plain', text: 'the admin listener answers GET and HEAD only\n' });
    // With budgets served, other paths are still not found, and never asked of the store.
    const asked: string[] = [];
    const withBudgets = await admin({ budgetStatus: async (t) => void asked.push(t) });
    for (const path of ['/nowhere', '/budgets', '/budget/acme']) expect(await withBudgets(path), path).toEqual({ status: 404, type: 'text/plain', text: 'not found\n' });
    expect(asked).toEqual([]);
  });

  it('close stops the listener', async () => {
    const a = createAdminServer(createMetrics(), () => true);
    const port = await a.listen('127.0.0.1:0');
    await a.close();
    expect(a.server.listening).toBe(false);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });

  it('/budgets/{tenant}: the status as JSON, 404 for a tenant no request can be of, 503 when the store fails, 400 for an id that cannot be one', async () => {
    const asked: string[] = [];
    const get = await admin({
      budgetStatus: async (tenant) => {
        asked.push(tenant);
        if (tenant === 'down') throw new Error('connection refused');
        return tenant === 'ghost' ? undefined : { tenant, limits: [] };
      },
    });
    expect(await get('/budgets/acme.prod_1-a')).toEqual({ status: 200, type: 'application/json', text: '{"tenant":"acme.prod_1-a","limits":[]}\n' });
    expect(await get('/budgets/acme%2Dprod')).toMatchObject({ status: 200, text: '{"tenant":"acme-prod","limits":[]}\n' });
    expect(await get('/budgets/ghost')).toEqual({ status: 404, type: 'text/plain', text: 'no request can be of tenant ghost: no API key acts for it in the config in force (with auth off, every request is tenant default)\n' });
    expect(await get('/budgets/down')).toEqual({ status: 503, type: 'text/plain', text: 'budget store unavailable: connection refused\n' });
    const bad = { status: 400, type: 'text/plain', text: 'a tenant id is 1-64 characters of A-Z a-z 0-9 . _ -\n' };
    for (const path of ['/budgets/', '/budgets/a%2Fb', '/budgets/%E0%A4%A', '/budgets/a b', `/budgets/${'x'.repeat(65)}`]) expect(await get(path), path).toEqual(bad);
    // Only well-formed ids reach the store.
    expect(asked).toEqual(['acme.prod_1-a', 'acme-prod', 'ghost', 'down']);
  });

  it('a port that is taken rejects the listen, naming it', async () => {
    const first = createAdminServer(createMetrics(), () => true);
    open.push(first);
    const port = await first.listen('127.0.0.1:0');
    expect((first.server.address() as AddressInfo).port).toBe(port);
    const second = createAdminServer(createMetrics(), () => true);
    await expect(second.listen(`127.0.0.1:${port}`)).rejects.toThrow(`EADDRINUSE: address already in use 127.0.0.1:${port}`);
  });
});
