// The admin HTTP listener: /healthz (process alive), /readyz (serving traffic), /metrics (Prometheus text), and
// /budgets/{tenant} (that tenant's limits as the budget store counts them now, JSON).
import { createServer, type Server } from 'node:http';
import { TENANT_ID } from './config/policy-schema.js';
import { splitHostPort } from './host-port.js';
import { decodedSegment } from './path-segment.js';
import type { Metrics } from './telemetry/metrics.js';

export interface AdminServer {
  server: Server;
  listen(hostPort: string): Promise<number>;
  close(): Promise<void>;
}

/**
 * A tenant's limits as they stand: JSON-ready; undefined when no request can be of that tenant under the config in
 * force; a rejection when the budget store cannot be read.
 */
export type BudgetStatusFn = (tenant: string) => Promise<unknown>;

export function createAdminServer(metrics: Metrics, ready: () => boolean, budgetStatus?: BudgetStatusFn): AdminServer {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    // Everything here is read-only: a POST or DELETE (a mistaken script, a scanner) is told so, not answered as a GET.
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('the admin listener answers GET and HEAD only\n');
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : 'not ready\n');
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    } else if (budgetStatus && path?.startsWith('/budgets/')) {
      const tenant = decodedSegment(path.slice('/budgets/'.length));
      if (tenant === undefined || !TENANT_ID.test(tenant)) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end('a tenant id is 1-64 characters of A-Z a-z 0-9 . _ -\n');
        return;
      }
      budgetStatus(tenant).then(
        (status) =>
          status === undefined
            ? res.writeHead(404, { 'content-type': 'text/plain' }).end(`no request can be of tenant ${tenant}: no API key acts for it in the config in force (with auth off, every request is tenant default)\n`)
            : res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(status)}\n`),
        (err: Error) => res.writeHead(503, { 'content-type': 'text/plain' }).end(`budget store unavailable: ${err.message}\n`),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  return {
    server,
    listen: (hostPort) => listenOn(server, hostPort),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export function listenOn(server: Server, hostPort: string): Promise<number> {
  const { host, port } = splitHostPort(hostPort);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}
